package queue

import (
	"fmt"
	"time"

	"github.com/conqhq/conq/queue/internal/check"
)

// Ranges of the options, checked where they enter (the options here, task
// specifications, the CLI, the HTTP API; queue/internal/check holds them).
const (
	// MaxRetriesLimit is the most retries a task may have: at the default
	// backoff's 10 minutes between late attempts, that is 19 years.
	MaxRetriesLimit = check.MaxRetries
	// MaxDuration bounds every duration option (Timeout, ProcessIn,
	// Retention, Unique): 100 years.
	MaxDuration = check.MaxDuration
	// MaxListOffset bounds the offset of a task listing
	// (Inspector.Tasks through the CLI and the HTTP API).
	MaxListOffset = check.MaxListOffset
)

// Option sets how a task is enqueued. Options apply in order: the client's
// defaults, then the task's own, then those given to Enqueue; the last wins.
type Option func(*options)

type options struct {
	queue      string
	maxRetries int
	timeout    time.Duration
	deadline   time.Time
	processAt  time.Time
	processIn  time.Duration
	retention  time.Duration
	id         string
	unique     bool
	uniqueTTL  time.Duration
	uniqueKey  string
	errs       []error
}

func (o *options) fail(err error) { o.errs = append(o.errs, err) }

// Queue puts the task on the named queue (letters, digits, "_-.:").
func Queue(name string) Option {
	return func(o *options) {
		if err := validQueueName(name); err != nil {
			o.fail(err)
			return
		}
		o.queue = name
	}
}

// MaxRetries sets how many times a failed task is retried after its first
// attempt; 0 means one attempt only. At most MaxRetriesLimit.
func MaxRetries(n int) Option {
	return func(o *options) {
		if p := check.Retries(n); p != "" {
			o.fail(invalid("MaxRetries(%d): %s", n, p))
			return
		}
		o.maxRetries = n
	}
}

// Timeout bounds each attempt; the handler's ctx ends when it passes. 0
// means the worker's default; at most MaxDuration.
func Timeout(d time.Duration) Option {
	return func(o *options) {
		if p := check.Duration(d); p != "" {
			o.fail(invalid("Timeout(%v): %s", d, p))
			return
		}
		o.timeout = d
	}
}

// Deadline bounds the task as a whole: no attempt starts after it, a running
// one has its ctx end at it, and a task that would retry past it is dead.
// The zero time means none; others must lie between 1970 and 2200.
func Deadline(t time.Time) Option {
	return func(o *options) {
		if p := check.Time(t); p != "" && !t.IsZero() {
			o.fail(invalid("Deadline(%s): %s", t.Format(time.RFC3339), p))
			return
		}
		o.deadline = t
	}
}

// ProcessAt delays the task until t. It waits in the broker, not in any
// worker's memory. The zero time means now; others must lie between 1970
// and 2200 (a time in the past means now).
func ProcessAt(t time.Time) Option {
	return func(o *options) {
		if p := check.Time(t); p != "" && !t.IsZero() {
			o.fail(invalid("ProcessAt(%s): %s", t.Format(time.RFC3339), p))
			return
		}
		o.processAt, o.processIn = t, 0
	}
}

// ProcessIn delays the task by d from when it is enqueued; at most
// MaxDuration.
func ProcessIn(d time.Duration) Option {
	return func(o *options) {
		if p := check.Duration(d); p != "" {
			o.fail(invalid("ProcessIn(%v): %s", d, p))
			return
		}
		o.processIn, o.processAt = d, time.Time{}
	}
}

// Retention keeps the completed task and its result for d, so Result can
// fetch it. Without it a completed task is deleted at once (a dead task is
// always kept until deleted). At most MaxDuration.
func Retention(d time.Duration) Option {
	return func(o *options) {
		if p := check.Duration(d); p != "" {
			o.fail(invalid("Retention(%v): %s", d, p))
			return
		}
		o.retention = d
	}
}

// TaskID sets the task's ID instead of a random one. IDs are unique per
// queue: enqueueing an ID that exists fails with ErrTaskIDConflict, which
// makes TaskID a de-duplication key.
func TaskID(id string) Option {
	return func(o *options) {
		if err := validToken("ID", id, check.MaxID); err != nil {
			o.fail(err)
			return
		}
		o.id = id
	}
}

// DefaultUniqueTTL is the lock time of a task made unique by UniqueKey
// alone.
const DefaultUniqueTTL = 24 * time.Hour

// Unique makes the task unique for up to ttl: while a task of the same
// kind, queue and payload (or the same UniqueKey) is pending, scheduled,
// retrying or active, enqueueing another fails with ErrDuplicateTask. The
// lock is released when the first task completes, dies or is deleted, or
// when ttl passes, whichever comes first; after ttl a duplicate is accepted
// even if the first task has not run yet. Checking and taking the lock is
// atomic with the enqueue in the broker. ttl is at most MaxDuration.
func Unique(ttl time.Duration) Option {
	return func(o *options) {
		if ttl <= 0 {
			o.fail(invalid("Unique(%v): ttl must be positive", ttl))
			return
		}
		if p := check.Duration(ttl); p != "" {
			o.fail(invalid("Unique(%v): ttl %s", ttl, p))
			return
		}
		o.unique, o.uniqueTTL = true, ttl
	}
}

// UniqueKey makes the task unique under key instead of its kind and
// payload (the key is scoped to the task's queue). Without Unique the lock
// lasts DefaultUniqueTTL at most.
func UniqueKey(key string) Option {
	return func(o *options) {
		if err := validToken("unique key", key, check.MaxID); err != nil {
			o.fail(err)
			return
		}
		o.unique, o.uniqueKey = true, key
	}
}

// check validates the combination against now.
func (o *options) check(now time.Time) error {
	if len(o.errs) > 0 {
		return o.errs[0]
	}
	at := o.processAt
	if o.processIn > 0 {
		at = now.Add(o.processIn)
	}
	if !o.deadline.IsZero() {
		if !o.deadline.After(now) {
			return invalid("Deadline(%s) has already passed", o.deadline.Format(time.RFC3339))
		}
		if !at.IsZero() && !at.Before(o.deadline) {
			return fmt.Errorf("queue: task would be processed at %s, not before its deadline %s: %w",
				at.Format(time.RFC3339), o.deadline.Format(time.RFC3339), ErrInvalidOption)
		}
	}
	return nil
}
