package procpool

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/conqhq/conq/internal/wire"
)

// Config configures a Pool. Zero fields take the defaults documented on
// each; Command is required.
type Config struct {
	// Command is the worker program and its arguments, run without a shell.
	Command []string
	// Env is added to the pool's own environment for the workers.
	Env []string
	// Dir is the workers' working directory; empty means the pool's.
	Dir string

	// Workers is the number of worker processes. Default runtime.NumCPU().
	Workers int
	// QueueSize bounds the tasks waiting for a worker; Submit blocks while
	// it is full. Default 64 per worker.
	QueueSize int
	// Slots is how many calls at once each worker process is asked to take
	// (CONQ_SLOTS). The SDKs take that many unless the program says
	// otherwise; a worker announces what it takes in its ready frame and
	// the pool keeps that many calls in flight on it (protocol 2; a
	// protocol 1 worker takes one). 0 asks nothing: the SDKs take one.
	Slots int
	// Pipeline is how many calls the pool keeps on a worker that runs one
	// at a time in order (feature "ordered": the Python SDK's plain
	// functions): the running one and those queued in its pipe behind it,
	// so the worker finds its next call waiting instead of sleeping through
	// a round trip. Calls are queued only while the worker's calls take
	// under PipelineMaxCall on average, and never behind a call whose
	// argument is in shared memory; a queued call's TaskTimeout counts from
	// its start. At most the slots the worker announced. 0 means
	// DefaultPipeline; 1 turns it off (one call at a time).
	Pipeline int

	// ShmThreshold is the size from which arguments and results travel
	// through shared memory instead of the pipes, to workers that map it
	// (Linux; the "shm" feature of protocol 2). Default 1 MiB; negative:
	// never.
	ShmThreshold int

	// TaskTimeout limits each task's run time; 0 means no limit beyond the
	// ctx given to Submit.
	TaskTimeout time.Duration
	// StartTimeout bounds a worker's start, up to its ready frame. Default 10s.
	StartTimeout time.Duration
	// CancelGrace is how long a cancelled task may take to stop before its
	// worker is killed and replaced. Default 2s.
	CancelGrace time.Duration
	// ShutdownGrace is how long an idle worker may take to exit once told to
	// (recycling, Shutdown) before it is killed. Default 5s.
	ShutdownGrace time.Duration

	// MaxTasksPerWorker recycles a worker gracefully after that many tasks;
	// 0 means never.
	MaxTasksPerWorker int
	// MaxPayload bounds task arguments and results, in bytes. Default 64 MiB.
	MaxPayload int
	// MaxStartFailures is the number of consecutive failed worker starts,
	// with no worker alive, after which the pool fails queued and new tasks
	// with the start error instead of letting them wait. Restarts continue
	// with exponential backoff; the first success heals the pool. Default 3.
	MaxStartFailures int
	// RestartBackoff is the first delay after a failed start, doubled up to
	// MaxRestartBackoff. Defaults 100ms and 10s.
	RestartBackoff    time.Duration
	MaxRestartBackoff time.Duration

	// Containment is how the pool keeps track of the processes a worker
	// starts, so that none outlives the worker (see "Process trees" in the
	// package documentation). Default ContainAuto.
	Containment Containment

	// Logger receives pool events and the workers' stdout and stderr, one
	// record per line, tagged with the worker id. Default slog.Default().
	Logger *slog.Logger
}

// Containment says how a pool finds every descendant of a worker in order
// to kill it with the worker. Each mode includes the ones below it.
type Containment int

const (
	// ContainAuto uses a cgroup per worker when the pool's process may
	// create cgroups (Linux, cgroup v2, a writable cgroup of its own), and
	// otherwise makes the pool's process a child subreaper. Elsewhere than
	// on Linux it is ContainGroup.
	ContainAuto Containment = iota
	// ContainCgroup puts each worker in a cgroup v2 of its own, created
	// under the pool's cgroup, and kills the whole cgroup when the worker
	// ends: descendants cannot leave it without privileges. New fails if
	// cgroups are not available.
	ContainCgroup
	// ContainSubreaper makes the pool's process a child subreaper
	// (PR_SET_CHILD_SUBREAPER, process-wide) so that orphaned descendants
	// are reparented to it rather than to init, and recognises them by an
	// environment variable they inherit. New fails off Linux.
	ContainSubreaper
	// ContainGroup only kills each worker's process group: descendants
	// that call setsid or setpgid escape.
	ContainGroup
)

func (c Containment) String() string {
	switch c {
	case ContainAuto:
		return "auto"
	case ContainCgroup:
		return "cgroup"
	case ContainSubreaper:
		return "subreaper"
	case ContainGroup:
		return "group"
	}
	return fmt.Sprintf("Containment(%d)", int(c))
}

// Defaults.
const (
	DefaultQueuePerWorker    = 64
	DefaultStartTimeout      = 10 * time.Second
	DefaultCancelGrace       = 2 * time.Second
	DefaultShutdownGrace     = 5 * time.Second
	DefaultMaxPayload        = 64 << 20
	DefaultShmThreshold      = 1 << 20
	DefaultMaxStartFailures  = 3
	DefaultRestartBackoff    = 100 * time.Millisecond
	DefaultMaxRestartBackoff = 10 * time.Second
	DefaultPipeline          = 8
	// PipelineMaxCall: calls of an "ordered" worker are queued behind its
	// running call only while its calls take less than this on average, so
	// a queued call waits a few milliseconds at most, not behind a long
	// call.
	PipelineMaxCall = time.Millisecond
)

// maxPipeline bounds Config.Pipeline.
const maxPipeline = 1024

// maxPayloadLimit keeps every frame length within the uint32 prefix.
const maxPayloadLimit = 1<<32 - 1 - wire.HeaderSize - wire.MaxNameLen

func (c Config) withDefaults() Config {
	if c.Workers == 0 {
		c.Workers = runtime.NumCPU()
	}
	if c.QueueSize == 0 && c.Workers > 0 {
		c.QueueSize = DefaultQueuePerWorker * c.Workers
	}
	if c.Pipeline == 0 {
		c.Pipeline = DefaultPipeline
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.CancelGrace == 0 {
		c.CancelGrace = DefaultCancelGrace
	}
	if c.ShutdownGrace == 0 {
		c.ShutdownGrace = DefaultShutdownGrace
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.ShmThreshold == 0 {
		c.ShmThreshold = DefaultShmThreshold
	}
	if c.MaxStartFailures == 0 {
		c.MaxStartFailures = DefaultMaxStartFailures
	}
	if c.RestartBackoff == 0 {
		c.RestartBackoff = DefaultRestartBackoff
	}
	if c.MaxRestartBackoff == 0 {
		c.MaxRestartBackoff = DefaultMaxRestartBackoff
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if len(c.Command) == 0 || c.Command[0] == "" {
		errs = append(errs, errors.New("missing Command (the worker program and its arguments)"))
	}
	if c.Workers < 0 {
		errs = append(errs, fmt.Errorf("Workers = %d, want > 0", c.Workers))
	}
	if c.Slots < 0 || c.Slots > maxSlots {
		errs = append(errs, fmt.Errorf("Slots = %d, want 0..%d", c.Slots, maxSlots))
	}
	if c.Pipeline < 0 || c.Pipeline > maxPipeline {
		errs = append(errs, fmt.Errorf("Config.Pipeline = %d, want 0..%d", c.Pipeline, maxPipeline))
	}
	if c.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("QueueSize = %d, want >= 0", c.QueueSize))
	}
	for name, d := range map[string]time.Duration{
		"TaskTimeout": c.TaskTimeout, "StartTimeout": c.StartTimeout, "CancelGrace": c.CancelGrace,
		"ShutdownGrace": c.ShutdownGrace, "RestartBackoff": c.RestartBackoff, "MaxRestartBackoff": c.MaxRestartBackoff,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("%s = %v, want >= 0", name, d))
		}
	}
	if c.MaxTasksPerWorker < 0 {
		errs = append(errs, fmt.Errorf("MaxTasksPerWorker = %d, want >= 0", c.MaxTasksPerWorker))
	}
	if c.MaxPayload < 0 || c.MaxPayload > maxPayloadLimit {
		errs = append(errs, fmt.Errorf("MaxPayload = %d, want 1..%d", c.MaxPayload, maxPayloadLimit))
	}
	if c.Containment < ContainAuto || c.Containment > ContainGroup {
		errs = append(errs, fmt.Errorf("Containment = %d, want one of the Contain constants", int(c.Containment)))
	}
	if c.MaxStartFailures < 0 {
		errs = append(errs, fmt.Errorf("MaxStartFailures = %d, want > 0", c.MaxStartFailures))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("procpool: invalid config: %w", err)
	}
	return nil
}

// maxFrame is the frame length limit, prefix excluded, both ways.
func (c Config) maxFrame() int { return c.MaxPayload + wire.HeaderSize + wire.MaxNameLen }
