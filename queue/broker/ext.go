package broker

import (
	"context"
	"errors"
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
