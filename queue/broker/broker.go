package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// State is where a task is in its life.
type State string

const (
	StatePending   State = "pending"   // ready to run
	StateScheduled State = "scheduled" // waits for ProcessAt
	StateActive    State = "active"    // leased to a worker
	StateRetry     State = "retry"     // failed, waits for its next attempt
	StateDead      State = "dead"      // out of retries, kept for inspection
	StateCompleted State = "completed" // finished, kept for Retention
)

// States lists every state in display order.
var States = []State{StatePending, StateScheduled, StateActive, StateRetry, StateDead, StateCompleted}

// ParseState accepts a state name.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == strings.ToLower(s) {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown task state %q (want one of pending, scheduled, active, retry, dead, completed)", s)
}

// Sentinel errors. Implementations wrap them with the task ID or queue.
var (
	ErrTaskNotFound   = errors.New("task not found")
	ErrTaskIDConflict = errors.New("task ID already exists")
	// ErrLeaseLost: the caller's lease token is no longer the task's (its
	// lease expired and the task was given to someone else, or it was
	// deleted). The caller must drop the task.
	ErrLeaseLost = errors.New("task lease lost")
	// ErrInvalidState: the operation does not apply to the task's state
	// (e.g. deleting an active task).
	ErrInvalidState = errors.New("operation not allowed in the task's state")
	ErrClosed       = errors.New("broker closed")
)

// AttemptError records one failed attempt.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind,omitempty"` // e.g. "error", "panic", "timeout", "lease_expired", "unknown_kind"
	Message string    `json:"message"`
	Stack   string    `json:"stack,omitempty"`
}

// Task is a task as stored by a broker. The fields in the first group are
// set by the producer and never change; the rest are kept by the broker.
type Task struct {
	ID         string        `json:"id"`
	Kind       string        `json:"kind"`
	Queue      string        `json:"queue"`
	Payload    []byte        `json:"payload"`
	Encoding   string        `json:"encoding,omitempty"`  // how Payload is encoded: "raw", "json", "args" (queue.Encoding*); "" reads as raw
	MaxRetries int           `json:"max_retries"`         // retries after the first attempt
	Timeout    time.Duration `json:"timeout,omitempty"`   // per attempt; 0 = worker default
	Deadline   time.Time     `json:"deadline,omitempty"`  // no attempt starts or runs past it
	Retention  time.Duration `json:"retention,omitempty"` // keep the completed task and result this long
	EnqueuedAt time.Time     `json:"enqueued_at"`
	ProcessAt  time.Time     `json:"process_at,omitempty"` // zero: now

	State       State          `json:"state"`
	Attempts    int            `json:"attempts"` // attempts started and finished or lost
	Errors      []AttemptError `json:"errors,omitempty"`
	Result      []byte         `json:"result,omitempty"`
	StartedAt   time.Time      `json:"started_at,omitempty"`
	CompletedAt time.Time      `json:"completed_at,omitempty"`

	// Lease, set on tasks returned by Fetch and while active.
	Token      uint64    `json:"token,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitempty"`
	WorkerID   string    `json:"worker_id,omitempty"`
}

// LeaseRef names a lease: the task and the fencing token it was fetched with.
type LeaseRef struct {
	Queue string
	ID    string
	Token uint64
}

// Ack completes a task.
type Ack struct {
	LeaseRef
	Result []byte
}

// Failure ends an attempt with an error. If Dead the task goes to the dead
// state; otherwise it is retried at RetryAt (pending at once if zero).
type Failure struct {
	LeaseRef
	Error   AttemptError
	RetryAt time.Time
	Dead    bool
}

// QueueInfo is a queue's state.
type QueueInfo struct {
	Name   string          `json:"name"`
	Paused bool            `json:"paused"`
	Counts map[State]int64 `json:"counts"`
}

// BatchError reports per-item failures of a batch call: Errs[i] is the
// error of item i, nil where it succeeded.
type BatchError struct{ Errs []error }

func (e *BatchError) Error() string {
	n, first := 0, error(nil)
	for _, err := range e.Errs {
		if err != nil {
			if first == nil {
				first = err
			}
			n++
		}
	}
	if n == 1 {
		return first.Error()
	}
	return fmt.Sprintf("%d of %d items failed; first: %v", n, len(e.Errs), first)
}

// Unwrap returns the item errors, so errors.Is(err, ErrTaskIDConflict) holds
// when any item failed with it.
func (e *BatchError) Unwrap() []error {
	var errs []error
	for _, err := range e.Errs {
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// DefaultListLimit is the page size of ListTasks when limit <= 0.
const DefaultListLimit = 100

// Broker stores tasks. All methods are safe for concurrent use and take ctx
// first. Implementations take their clock from their config, so tests can
// inject one.
type Broker interface {
	// Enqueue stores tasks, each atomically and independently: pending, or
	// scheduled if ProcessAt is in the future. A task whose ID exists in its
	// queue fails with ErrTaskIDConflict. Per-task failures come back as a
	// *BatchError; any other error means the call itself failed.
	Enqueue(ctx context.Context, tasks ...*Task) error

	// Fetch leases up to max pending tasks from the queues, taken in the
	// order given (the caller decides priorities), skipping paused queues.
	// Each returned task is active with a new Token, LeaseUntil = now+lease
	// and Attempts not yet incremented. It does not wait: no task, no error.
	Fetch(ctx context.Context, queues []string, max int, lease time.Duration, workerID string) ([]*Task, error)

	// WaitReady blocks until a task may be ready in one of the queues, ctx
	// ends, or max passes; a hint only, spurious returns are allowed.
	WaitReady(ctx context.Context, queues []string, max time.Duration) error

	// ExtendLeases renews leases to now+lease and returns those that are
	// lost (ErrLeaseLost semantics), which the caller must stop working on.
	ExtendLeases(ctx context.Context, leases []LeaseRef, lease time.Duration) (lost []LeaseRef, err error)

	// Complete finishes tasks; each must still hold its lease (else its
	// item error is ErrLeaseLost). Completed tasks with Retention > 0 are
	// kept with their result and the attempt counted (Attempts+1), others
	// are deleted. Per-item errors come back as *BatchError.
	Complete(ctx context.Context, acks ...Ack) error

	// Fail ends attempts with errors (Attempts+1, error appended), moving
	// each task to retry or dead. Per-item errors as *BatchError.
	Fail(ctx context.Context, failures ...Failure) error

	// Requeue gives active tasks back to pending without counting an
	// attempt (graceful shutdown). Per-item errors as *BatchError.
	Requeue(ctx context.Context, leases ...LeaseRef) error

	// Forward moves scheduled and retry tasks whose time has come to
	// pending, and reports how many.
	Forward(ctx context.Context) (int, error)

	// Recover finds active tasks whose lease expired: each counts an
	// attempt (error kind "lease_expired") and goes to pending, or dead
	// when it has no retries left. It reports how many.
	Recover(ctx context.Context) (int, error)

	// Cleanup deletes completed tasks whose retention has passed.
	Cleanup(ctx context.Context) (int, error)

	// GetTask returns a task by ID, looking in queue, or in every queue if
	// queue is "". ErrTaskNotFound if absent.
	GetTask(ctx context.Context, queue, id string) (*Task, error)

	// AwaitTask waits until the task is completed or dead and returns it;
	// ErrTaskNotFound if it does not exist (or its result was not kept).
	AwaitTask(ctx context.Context, queue, id string) (*Task, error)

	// Queues lists known queues with counts per state.
	Queues(ctx context.Context) ([]QueueInfo, error)

	// ListTasks lists tasks of a queue in a state, oldest first, from
	// offset. limit <= 0 means DefaultListLimit; a negative offset is 0.
	ListTasks(ctx context.Context, queue string, state State, offset, limit int) ([]*Task, error)

	// DeleteTask deletes a task that is not active (ErrInvalidState).
	DeleteTask(ctx context.Context, queue, id string) error

	// RetryTask moves a dead, retry or scheduled task to pending now.
	RetryTask(ctx context.Context, queue, id string) error

	// Pause stops Fetch from taking tasks of queue; Resume undoes it.
	Pause(ctx context.Context, queue string) error
	Resume(ctx context.Context, queue string) error

	// Close releases the broker's resources; later calls fail with ErrClosed.
	Close() error
}

// Clock tells the time; brokers and queue components take one so tests can
// move time by hand.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }
