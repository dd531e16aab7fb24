package broker

import (
	"context"
	"strings"
	"time"
)

// Broker is the whole contract: a broker implements every role. The roles
// are split only so a reader (and a broker that lacks the optional ones)
// can take them one at a time; callers hold a Broker and never type-assert
// for a capability. A wrapper that embeds Broker (brokertest.Faulty, a
// tracing or metrics wrapper) therefore passes every call through by
// construction.
//
// All methods are safe for concurrent use and take ctx first. Errors are
// those of errors.go.
type Broker interface {
	Core
	Optional
}

// Core is what every broker must do: store, lease, settle, maintain and
// inspect tasks, and tell the time.
type Core interface {
	Producer
	Consumer
	Maintainer
	Inspector

	// Clock is the broker's clock, set once in its config (default the wall
	// clock). Every queue component reads the time from it.
	Clock() Clock

	// Close releases the broker's resources; later calls fail with ErrClosed.
	Close() error
}

// Optional is the part of the contract a broker may lack: such a broker
// embeds Unsupported, whose methods answer ErrUnsupported, and leaves the
// capability out of Capabilities.
type Optional interface {
	UniqueEnqueuer
	Canceler
	TickClaimer
	Limiter
	WorkerRegistry
	ScheduleRegistry
	StatsReader
	Sharder
	Workflower

	// Capabilities lists the optional roles the broker implements; the
	// methods of the others fail with ErrUnsupported. Callers check it to
	// fail early (a worker given limits, a scheduler) or to do without (the
	// server samples throughput itself).
	Capabilities() Capability
}

// Producer stores new tasks.
type Producer interface {
	// Enqueue stores tasks, each atomically and independently: pending, or
	// scheduled if ProcessAt is in the future. A task whose ID exists in its
	// queue fails with ErrTaskIDConflict. EnqueuedAt defaults to now.
	// Per-task failures come back as a *BatchError; any other error means
	// the call itself failed.
	Enqueue(ctx context.Context, tasks ...*Task) error
}

// Consumer is the worker's side: lease tasks, keep the leases, settle them.
// Complete, Fail, Requeue and ExtendLeases succeed only while the caller's
// fencing token is the task's current one.
type Consumer interface {
	// Fetch leases up to p.Max pending tasks from p.Queues, taken in the
	// order given (the caller decides priorities), skipping paused queues.
	// Each returned task is active with a new Token, LeaseUntil =
	// now+p.Lease and Attempts not yet incremented. It does not wait: no
	// task, no error.
	Fetch(ctx context.Context, p FetchParams) ([]*Task, error)

	// WaitReady blocks until a task may be ready in one of p.Queues, ctx
	// ends, or p.Max passes; a hint only, spurious returns are allowed.
	WaitReady(ctx context.Context, p WaitParams) error

	// ExtendLeases renews leases to now+p.Lease: the one lease renewal of
	// the contract. It reports the leases lost (not renewed) and, among
	// the renewed ones, those whose task is flagged for cancellation; they
	// stay leased so the worker can record the cancelled attempt. A broker
	// without CapCancel reports no cancelled leases.
	ExtendLeases(ctx context.Context, p ExtendParams) (ExtendResult, error)

	// Complete finishes tasks; each must still hold its lease (else its
	// item error is ErrLeaseLost). Completed tasks with Retention > 0 are
	// kept with their result and the attempt counted (Attempts+1), others
	// are deleted. Per-item errors come back as *BatchError.
	Complete(ctx context.Context, acks ...Ack) error

	// Fail ends attempts with errors (Attempts+1, error appended, its At
	// filled in if zero), moving each task to retry or dead. A task flagged
	// for cancellation goes to dead with kind "cancelled" whatever was
	// asked. Per-item errors as *BatchError.
	Fail(ctx context.Context, failures ...Failure) error

	// Requeue gives active tasks back to pending without counting an
	// attempt (graceful shutdown, limits); a task flagged for cancellation
	// goes to dead instead. Per-item errors as *BatchError.
	Requeue(ctx context.Context, leases ...LeaseRef) error
}

// Maintainer moves tasks whose time has come. Some process must call these
// periodically (workers do, unless told not to).
type Maintainer interface {
	// Forward moves scheduled and retry tasks whose time has come to
	// pending, and reports how many.
	Forward(ctx context.Context) (int, error)

	// Recover finds active tasks whose lease expired: each counts an
	// attempt (error kind "lease_expired") and goes to pending, or dead
	// when it has no retries left or was flagged for cancellation. It
	// reports how many.
	Recover(ctx context.Context) (int, error)

	// Cleanup deletes completed tasks whose retention has passed.
	Cleanup(ctx context.Context) (int, error)
}

// Inspector looks at tasks and queues, and manages them.
type Inspector interface {
	// GetTask returns a task by ID, looking in queue, or in every queue if
	// queue is "". ErrTaskNotFound if absent.
	GetTask(ctx context.Context, queue, id string) (*Task, error)

	// AwaitTask waits until the task is completed or dead and returns it;
	// ErrTaskNotFound if it does not exist (or its result was not kept).
	AwaitTask(ctx context.Context, queue, id string) (*Task, error)

	// AwaitTasks is AwaitTask for many tasks at once: it calls
	// done(i, task, err) once for each p.IDs[i] as it finishes (or is
	// found missing, err ErrTaskNotFound, or meets an error), in the order
	// they finish, one call at a time, and returns nil when every ID was
	// answered, or ctx's error when ctx ended first (the unanswered ones
	// get no call). A broker serves it without a goroutine per ID: a wait
	// for ten thousand results is one registration, not ten thousand.
	AwaitTasks(ctx context.Context, p AwaitParams, done func(i int, t *Task, err error)) error

	// Queues lists known queues with counts per state.
	Queues(ctx context.Context) ([]QueueInfo, error)

	// ListTasks lists tasks as p says (see ListParams).
	ListTasks(ctx context.Context, p ListParams) ([]*Task, error)

	// DeleteTask deletes a task that is not active (ErrInvalidState).
	DeleteTask(ctx context.Context, queue, id string) error

	// RetryTask moves a dead, retry or scheduled task to pending now.
	RetryTask(ctx context.Context, queue, id string) error

	// Pause stops Fetch from taking tasks of queue; Resume undoes it.
	Pause(ctx context.Context, queue string) error
	Resume(ctx context.Context, queue string) error
}

// UniqueEnqueuer stores tasks under a uniqueness lock (CapUnique).
type UniqueEnqueuer interface {
	// EnqueueUnique stores p.Task like Enqueue, atomically with taking the
	// lock p.Key in the task's queue for p.TTL. It fails with
	// ErrDuplicateTask while the lock is held and ErrTaskIDConflict if the
	// ID exists. The broker releases the lock when the task completes, dies
	// or is deleted (only if the lock is still the task's), or when the TTL
	// passes, whichever comes first.
	EnqueueUnique(ctx context.Context, p UniqueParams) error
}

// Canceler cancels tasks (CapCancel).
type Canceler interface {
	// CancelTask cancels a task and returns the state it was in. A
	// pending, scheduled or retry task goes to dead at once with an error
	// of kind "cancelled" (Attempts unchanged), kept for inspection. An
	// active task is flagged: ExtendLeases reports its lease as cancelled,
	// and whatever ends the attempt (Fail, Requeue, Recover) sends it to
	// dead with kind "cancelled". Dead and completed tasks fail with
	// ErrInvalidState; an absent one with ErrTaskNotFound. Cancelling a
	// flagged task again is a no-op.
	CancelTask(ctx context.Context, queue, id string) (State, error)
}

// TickClaimer lets any number of schedulers share periodic entries: each
// tick of an entry is enqueued by exactly one of them (CapTicks).
type TickClaimer interface {
	// ClaimTick enqueues p.Task (atomically, in one step) if p.Tick is
	// later than the last tick claimed for p.Key in the task's queue, and
	// records it as the last one for p.TTL. It reports whether this call
	// claimed it; a tick already claimed, or whose task ID exists, is not
	// an error. Callers give the task an ID derived from key and tick, so
	// retrying after an error cannot enqueue twice.
	ClaimTick(ctx context.Context, p ClaimParams) (bool, error)
	// LastTick returns the last tick claimed for key in queue, or the zero
	// time if none is recorded.
	LastTick(ctx context.Context, queue, key string) (time.Time, error)
}

// Limiter keeps limits shared by every worker of the broker: counting
// semaphores with leased slots, and token buckets (CapLimits). Names are
// chosen by the caller (the worker uses the task kind).
type Limiter interface {
	// AcquireSlot takes one of p.Limit slots of p.Name for p.Holder until
	// now+p.Lease and reports whether it got one. Slots whose lease passed
	// are free again, so a holder that dies gives its slot back. Acquiring
	// a slot the holder has already renews it.
	AcquireSlot(ctx context.Context, p SlotParams) (bool, error)
	// ExtendSlots renews the leases of the holders' slots; an expired slot
	// is not brought back.
	ExtendSlots(ctx context.Context, p ExtendSlotsParams) error
	// ReleaseSlot frees holder's slot; releasing a slot not held is a no-op.
	ReleaseSlot(ctx context.Context, name, holder string) error
	// TakeToken takes a token from a bucket. It returns 0 when it took one,
	// otherwise how long until one is available (nothing is taken).
	TakeToken(ctx context.Context, p TokenParams) (time.Duration, error)
}

// WorkerRegistry records live workers (CapWorkers).
type WorkerRegistry interface {
	// Heartbeat stores info (replacing the worker's previous record) until
	// now+ttl.
	Heartbeat(ctx context.Context, info WorkerInfo, ttl time.Duration) error
	// ListWorkers returns the workers whose record has not expired, by ID.
	ListWorkers(ctx context.Context) ([]WorkerInfo, error)
	// RemoveWorker deletes a worker's record; removing an absent one is a
	// no-op.
	RemoveWorker(ctx context.Context, id string) error
}

// ScheduleRegistry records the entries of live schedulers (CapSchedules).
type ScheduleRegistry interface {
	// PublishEntries stores the entries of scheduler id (replacing its
	// previous ones) until now+ttl.
	PublishEntries(ctx context.Context, id string, entries []ScheduleEntry, ttl time.Duration) error
	// ListEntries returns the entries of every scheduler whose record has
	// not expired, ordered by name, then scheduler ID.
	ListEntries(ctx context.Context) ([]ScheduleEntry, error)
	// RemoveEntries deletes scheduler id's entries.
	RemoveEntries(ctx context.Context, id string) error
}

// StatsReader reads per-queue counters that the broker keeps as it
// completes and fails tasks, per second, for StatsWindow (CapStats).
type StatsReader interface {
	// Throughput returns one point per second of [p.From, p.To), truncated
	// to whole seconds, oldest first; seconds with nothing are zero points.
	Throughput(ctx context.Context, p ThroughputParams) ([]Point, error)
}

// Sharder spreads a queue over several shards, each with its own hash
// slot, so that one queue can use every node of a Redis Cluster
// (CapShards). Tasks are placed by ID (unique tasks by their key), fetched
// from every shard, and inspected as one queue (QueueInfo.Shards has the
// detail). FIFO order holds per shard only.
type Sharder interface {
	// SetShards sets the number of shards of p.Queue to p.Shards (1 is an
	// unsharded queue). The count only grows: a lower one fails with an
	// error naming the current count. Other processes see the new count
	// within a few seconds; until then they still fetch and place tasks
	// over the old shards, which stay in use.
	SetShards(ctx context.Context, p ShardParams) error
}

// Capability is a set of optional roles.
type Capability uint32

// The optional roles.
const (
	CapUnique    Capability = 1 << iota // UniqueEnqueuer
	CapCancel                           // Canceler (and cancelled leases in ExtendLeases)
	CapTicks                            // TickClaimer
	CapLimits                           // Limiter
	CapWorkers                          // WorkerRegistry
	CapSchedules                        // ScheduleRegistry
	CapStats                            // StatsReader
	CapShards                           // Sharder (the Redis broker: a queue over several slots)

	// CapAll is every optional role both built-in brokers have. The Redis
	// broker adds CapShards; the memory broker, one process, has no use
	// for shards.
	CapAll = CapUnique | CapCancel | CapTicks | CapLimits | CapWorkers | CapSchedules | CapStats
)

var capNames = []string{"unique", "cancel", "ticks", "limits", "workers", "schedules", "stats", "shards"}

// Has reports whether c includes every role of x.
func (c Capability) Has(x Capability) bool { return c&x == x }

func (c Capability) String() string {
	var names []string
	for i, n := range capNames {
		if c&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, "|")
}
