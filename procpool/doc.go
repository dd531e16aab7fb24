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
// Each worker runs one task at a time. Submit returns a future.Future; Map
// runs a task over many arguments in order; SubmitJSON, CallJSON and MapJSON
// carry typed values as JSON.
//
// Supervision, written down:
//   - A worker that dies while running a task (exit, signal, segfault, OOM
//     kill) fails that task alone with a *WorkerCrashedError carrying its
//     exit status and last stderr lines, and is replaced.
//   - A task whose ctx ends, whose TaskTimeout passes or whose future is
//     cancelled gets a cancel frame; if the worker has not answered within
//     CancelGrace it is killed and replaced. The future fails with ctx's
//     error, ErrTaskTimeout or future.ErrCancelled; a worker that finishes
//     the task anyway keeps its result.
//   - A worker that sends a malformed, oversize or unexpected frame is killed
//     and replaced; its task fails with a *ProtocolError.
//   - New fails with a *StartError if a worker cannot start. Later start
//     failures are retried with exponential backoff; after MaxStartFailures
//     in a row with no worker alive, queued and new tasks fail with the
//     *StartError until a start succeeds again.
//   - Workers never outlive the pool: Shutdown and Close reap them, and on
//     Linux the kernel kills them if the pool's process dies (Pdeathsig);
//     the SDKs also exit when their request stream ends.
package procpool
