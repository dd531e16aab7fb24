// Package procpool runs tasks in a pool of long-lived worker processes, for
// work that must leave the Go process: code in Python or another language,
// or code that may crash, leak or hang and must not take the caller with it.
//
// A Pool starts Config.Workers copies of Config.Command. Each worker speaks
// the conq process protocol (docs/protocol.md) on two dedicated file
// descriptors, fd 3 for requests and fd 4 for responses, so its stdout and
// stderr stay free: both are forwarded line by line to Config.Logger, tagged
// with the worker id. Workers are written with the Go SDK (package
// procpool/worker) or the Python SDK (sdk/python/conq.py).
//
// A worker takes as many calls at once as it announces (protocol 2 "slots",
// asked for with Config.Slots; one for protocol 1 workers such as the
// Python SDK's). Submit returns a future.Future; Map runs a task over many
// arguments in order; SubmitJSON, CallJSON and MapJSON carry typed values as
// JSON; SubmitMeta describes the call to the worker (queue/procexec sends
// the queue task's id, attempt, deadline...). Arguments and results from
// Config.ShmThreshold bytes (1 MiB) travel through shared memory on Linux;
// NewBuffer, SubmitBuffer and CallBuffer let the caller write the argument
// into, and read the result from, shared memory without any copy.
//
// # Policy, written down
//
// Supervision:
//   - A worker that dies (exit, signal, segfault, OOM kill) fails exactly the
//     calls it held, each with a *WorkerCrashedError carrying its exit status
//     and last stderr lines, and is replaced. Calls on other workers and
//     calls still queued are not affected.
//   - A worker that runs its calls one at a time in order (feature
//     "ordered": the Python SDK's plain functions) is kept up to
//     Config.Pipeline calls, the running one and those queued in its pipe,
//     while its calls are short: under PipelineMaxCall on average, and the
//     running one so far; never behind a call whose argument is in shared
//     memory is another queued. If it dies, only the call it was running
//     (the first unanswered) fails as crashed; the calls behind it never
//     started and go to its replacement first. A queued call's TaskTimeout,
//     and the kill that follows its cancel, start when it starts; its cancel
//     frame goes at once, so the worker skips it.
//   - A call that waited 250 ms or more in the pool's queue runs the check
//     its ctx carries (internal/precheck) before it starts: a queue task's
//     ctx asks the broker for a cancel request then, so a task cancelled
//     while it waited for a free worker does not start.
//   - A call whose ctx ends, whose TaskTimeout passes or whose future is
//     cancelled gets a cancel frame; that call alone is stopped. If the
//     worker has not answered it within CancelGrace, the worker is killed
//     and replaced (and the other calls it held fail as crashed). The future
//     fails with ctx's error, ErrTaskTimeout or future.ErrCancelled; a worker
//     that finishes the call anyway keeps its result.
//   - A worker that sends a malformed, oversize or unexpected frame is killed
//     and replaced; the calls it held fail with a *ProtocolError.
//   - Recycling (MaxTasksPerWorker, counting calls) and Shutdown stop sending
//     calls to a worker, wait for those in flight, then close its request
//     stream.
//   - Shared memory: the pool's segments are reused across calls, except
//     those a worker held when it died (a descendant could still write
//     them); the worker's segments that the pool mapped are unmapped when it
//     dies or destroys them, except while a Buffer holds one. Shutdown closes
//     the pool's spare segments; an unreleased Buffer is released by the
//     garbage collector. Segments are memfds sealed against resizing, and
//     the pool maps a worker's only after checking the seal, so a worker
//     cannot make the pool fault.
//   - New fails with a *StartError if a worker cannot start. Later start
//     failures are retried with exponential backoff; after MaxStartFailures
//     in a row with no worker alive, queued and new tasks fail with the
//     *StartError until a start succeeds again.
//   - Workers never outlive the pool: Shutdown and Close reap them, and on
//     Linux the kernel kills them if the pool's process dies (Pdeathsig);
//     the SDKs also exit when their request stream ends.
//
// Process trees: the pool owns each worker's whole process tree. Whenever a
// worker ends (crash, kill, timeout, recycling, Shutdown, an idle exit),
// every descendant the pool can find is killed with SIGKILL, and a worker's
// end is seen from the process itself, never only from end of file on its
// pipes: a worker that exits while a child it forked still holds those
// pipes fails its task with a *WorkerCrashedError at once. How descendants
// are found is Config.Containment:
//   - Always: each worker leads a process group of its own, killed as a
//     group on every exit path. The kill happens while the exited worker is
//     still a zombie (waitid with WNOWAIT), so the group id cannot have been
//     reused by then.
//   - ContainCgroup (the default on Linux when the pool's process may create
//     cgroups: cgroup v2 and a writable cgroup of its own, for example root
//     or a systemd unit with Delegate=yes): each worker is cloned straight
//     into a cgroup of its own, conq-<pid>-<n>/w<worker id> under the pool's
//     cgroup, and cgroup.kill ends the tree. setsid, double forks and
//     daemons stay inside. The cgroups are removed with the workers; ones
//     left by a pool process that was SIGKILLed are emptied and removed by
//     the next pool started in the same cgroup.
//   - ContainSubreaper (the default when no cgroup can be made): the pool's
//     process becomes a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so
//     orphans of a worker's tree are reparented to it rather than to init,
//     and every worker gets a random CONQ_WORKER_TOKEN in its environment,
//     which descendants inherit; the tree is killed by group and by token.
//     This is a process-wide setting, and it concerns the whole program
//     embedding the pool: while it is on (from the first such pool to the
//     last one closed), orphans of every descendant of the program, not only
//     of workers, are reparented to it, and getppid() in them returns the
//     program's pid, not 1. The pool reaps only processes it recognises as
//     worker descendants (by token, or by the process group of a worker),
//     never other children, so os/exec's Wait elsewhere in the program is
//     not disturbed; but an orphan of the program's own children is then
//     the program's zombie until the program exits. Choose ContainGroup if
//     that matters, or give the program a writable cgroup.
//   - ContainGroup: the process group only.
//
// What a worker may still leak: under ContainCgroup, a descendant that
// moves itself to another cgroup (it needs the privileges to), or a process
// started on its behalf by something else, such as systemd-run, a D-Bus
// activated service or a container runtime; under ContainSubreaper, also a
// descendant that leaves the worker's process group and execs with an
// environment without CONQ_WORKER_TOKEN (env -i, some daemonizers), one
// that leaves the group and exits before the pool has seen it alive (the
// pool looks at its children when one dies and every second; the exited
// one stays the program's zombie until the program exits), and
// anything reparented to another subreaper between the worker and the pool
// (a descendant that is itself a subreaper, such as a container shim);
// under ContainGroup, any descendant that calls setsid or setpgid. If the
// pool's process is SIGKILLed, workers die by Pdeathsig, but their
// descendants live on (in the leftover cgroup until the next pool cleans
// it, or reparented to init). Outside Linux only ContainGroup exists, and
// the group is killed only when the pool kills the worker.
package procpool
