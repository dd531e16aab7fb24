package broker

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"time"
)

// Optional capabilities. A broker implements the ones it can; callers find
// them with a type assertion and report a clear error when one is missing.

// ErrDuplicateTask: a unique task was enqueued while another task holding
// the same unique key is still pending, scheduled, retrying or active (and
// its lock has not expired).
var ErrDuplicateTask = errors.New("duplicate task")

// UniqueEnqueuer stores tasks under a uniqueness lock.
type UniqueEnqueuer interface {
	// EnqueueUnique stores t like Enqueue, atomically with taking the lock
	// named key in t's queue for ttl. It fails with ErrDuplicateTask while
	// the lock is held and ErrTaskIDConflict if t's ID exists. The broker
	// releases the lock when the task completes, dies or is deleted
	// (only if the lock is still the task's), or when ttl passes,
	// whichever comes first.
	EnqueueUnique(ctx context.Context, t *Task, key string, ttl time.Duration) error
}

// TickClaimer lets any number of schedulers share periodic entries: each
// tick of an entry is enqueued by exactly one of them.
type TickClaimer interface {
	// ClaimTick enqueues t (atomically, in one step) if tick is later than
	// the last tick claimed for key in t's queue, and records tick as the
	// last one for ttl. It reports whether this call claimed it; a tick
	// already claimed, or whose task ID exists, is not an error. Callers
	// give t an ID derived from key and tick, so retrying after an error
	// cannot enqueue twice.
	ClaimTick(ctx context.Context, key string, tick time.Time, ttl time.Duration, t *Task) (bool, error)
	// LastTick returns the last tick claimed for key in queue, or the zero
	// time if none is recorded.
	LastTick(ctx context.Context, queue, key string) (time.Time, error)
}

// Limiter keeps limits shared by every worker of the broker: counting
// semaphores with leased slots, and token buckets. Names are chosen by the
// caller (the worker uses the task kind).
type Limiter interface {
	// AcquireSlot takes one of limit slots of name for holder until
	// now+lease and reports whether it got one. Slots whose lease passed
	// are free again, so a holder that dies gives its slot back. Acquiring
	// a slot holder already has renews it.
	AcquireSlot(ctx context.Context, name, holder string, limit int, lease time.Duration) (bool, error)
	// ExtendSlots renews the leases of holders' slots to now+lease.
	ExtendSlots(ctx context.Context, name string, holders []string, lease time.Duration) error
	// ReleaseSlot frees holder's slot; releasing a slot not held is a no-op.
	ReleaseSlot(ctx context.Context, name, holder string) error
	// TakeToken takes a token from the bucket name, which refills at rate
	// tokens a second and holds at most burst. It returns 0 when it took
	// one, otherwise how long until one is available (nothing is taken).
	TakeToken(ctx context.Context, name string, rate float64, burst int) (time.Duration, error)
}

// ErrTaskCancelled is the cancel cause of a handler whose task was
// cancelled (Canceler); the attempt ends dead with error kind "cancelled".
var ErrTaskCancelled = errors.New("task cancelled")

// ErrorKindCancelled is the AttemptError.Kind of a cancelled task.
const ErrorKindCancelled = "cancelled"

// Canceler cancels tasks.
type Canceler interface {
	// CancelTask cancels a task and returns the state it was in. A
	// pending, scheduled or retry task goes to dead at once with an error
	// of kind "cancelled" (Attempts unchanged), kept for inspection. An
	// active task is flagged: ExtendLeasesCancel reports its lease, and
	// whatever ends the attempt (Fail, Requeue, Recover) sends it to dead
	// with kind "cancelled". Dead and completed tasks fail with
	// ErrInvalidState; an absent one with ErrTaskNotFound. Cancelling a
	// flagged task again is a no-op.
	CancelTask(ctx context.Context, queue, id string) (State, error)
	// ExtendLeasesCancel is ExtendLeases that also reports, among the
	// renewed leases, those whose task is flagged for cancellation. They
	// stay leased so the worker can record the cancelled attempt.
	ExtendLeasesCancel(ctx context.Context, leases []LeaseRef, lease time.Duration) (lost, cancelled []LeaseRef, err error)
}

// Point is one second of a queue's throughput.
type Point struct {
	At        time.Time `json:"at"`        // start of the second
	Processed int64     `json:"processed"` // tasks completed
	Failed    int64     `json:"failed"`    // attempts failed (retried or dead, lease expiries and cancels included)
}

// StatsWindow is how far back StatsReader keeps counters.
const StatsWindow = 70 * time.Minute

// StatsReader reads per-queue counters that the broker keeps as it
// completes and fails tasks, per second, for StatsWindow.
type StatsReader interface {
	// Throughput returns one point per second of [from, to), truncated to
	// whole seconds, oldest first; seconds with nothing are zero points.
	Throughput(ctx context.Context, queue string, from, to time.Time) ([]Point, error)
}

// WorkerInfo is what a worker publishes about itself.
type WorkerInfo struct {
	ID          string        `json:"id"`
	Host        string        `json:"host"`
	PID         int           `json:"pid"`
	Queues      []string      `json:"queues"`
	Concurrency int           `json:"concurrency"`
	StartedAt   time.Time     `json:"started_at"`
	HeartbeatAt time.Time     `json:"heartbeat_at"`
	Running     []RunningTask `json:"running"`
}

// RunningTask is a task a worker is running.
type RunningTask struct {
	ID        string    `json:"id"`
	Queue     string    `json:"queue"`
	Kind      string    `json:"kind"`
	StartedAt time.Time `json:"started_at"`
}

// WorkerRegistry records live workers.
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

// ScheduleEntry is a periodic entry as a scheduler publishes it.
type ScheduleEntry struct {
	Name        string    `json:"name"`
	Spec        string    `json:"spec"`
	Kind        string    `json:"kind"`
	Queue       string    `json:"queue"`
	Next        time.Time `json:"next"`
	Prev        time.Time `json:"prev,omitzero"` // last tick fired (by any scheduler)
	Fired       int64     `json:"fired"`         // ticks this scheduler enqueued
	Error       string    `json:"error,omitzero"`
	SchedulerID string    `json:"scheduler_id"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// ScheduleRegistry records the entries of live schedulers.
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

// SortEntries orders entries by name, then scheduler ID.
func SortEntries(es []ScheduleEntry) {
	slices.SortFunc(es, func(a, b ScheduleEntry) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.SchedulerID, b.SchedulerID))
	})
}
