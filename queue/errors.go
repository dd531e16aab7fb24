package queue

import (
	"errors"
	"fmt"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Errors shared with the broker package, so callers need import only queue.
var (
	ErrClosed         = broker.ErrClosed
	ErrTaskNotFound   = broker.ErrTaskNotFound
	ErrTaskIDConflict = broker.ErrTaskIDConflict
	ErrLeaseLost      = broker.ErrLeaseLost
	ErrInvalidState   = broker.ErrInvalidState
	// ErrDuplicateTask: a Unique task's lock is held by another task.
	ErrDuplicateTask = broker.ErrDuplicateTask
	// ErrTaskCancelled is the cause of a handler's ctx when its task was
	// cancelled (Inspector.CancelTask): context.Cause(ctx) tells it apart
	// from a timeout or a shutdown. The attempt ends dead, error kind
	// "cancelled", whatever the handler returns.
	ErrTaskCancelled = broker.ErrTaskCancelled
	// ErrUnsupported: the broker lacks an optional role the call needs
	// (unique tasks, cancelling, periodic tasks, limits, registries,
	// throughput counters).
	ErrUnsupported = broker.ErrUnsupported
	// ErrNotReplicated: the task is stored, but fewer replicas than the
	// broker was told to wait for confirmed it (the Redis broker's
	// WaitReplicas); enqueue it again with the same ID to be sure.
	ErrNotReplicated = broker.ErrNotReplicated
)

var (
	// ErrInvalidOption is wrapped by every error about a bad task option,
	// task kind, queue name or configuration value.
	ErrInvalidOption = errors.New("invalid option")
	// ErrQueueNotFound: the broker knows no queue of that name.
	ErrQueueNotFound = errors.New("queue not found")
	// ErrWorkerState: Start on a started worker, or Shutdown of one never
	// started.
	ErrWorkerState = errors.New("worker not in a state for this call")
)

// SkipRetry, returned by a handler (wrapped or not), sends the task to the
// dead state at once: retrying cannot help.
//
//	return fmt.Errorf("user %d does not exist: %w", id, queue.SkipRetry)
//
//lint:ignore ST1012 a control value, named like asynq.SkipRetry and filepath.SkipDir.
var SkipRetry = errors.New("skip retry")

// BatchError reports per-item failures of EnqueueMany: Errs[i] is item i's.
type BatchError = broker.BatchError

// AttemptError records one failed attempt of a task.
type AttemptError = broker.AttemptError

// RetryAfter wraps err so that the task's next attempt is in d, whatever the
// worker's RetryDelay says (a rate-limited API tells you when to come back).
// It does not grant retries beyond the task's MaxRetries.
func RetryAfter(d time.Duration, err error) error {
	return &retryAfterError{d: d, err: err}
}

type retryAfterError struct {
	d   time.Duration
	err error
}

func (e *retryAfterError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("retry after %v", e.d)
	}
	return e.err.Error()
}

func (e *retryAfterError) Unwrap() error { return e.err }

// HandlerError is an error a handler returns (wrapped or not) to say how
// its failed attempt is recorded: Kind and Stack go to the attempt's
// AttemptError (Kind defaults to "error"), Message is the error's text
// (Err's when empty). Err, if set, stays in the chain, so a HandlerError
// wrapping SkipRetry still skips retries.
//
//	return nil, &queue.HandlerError{Kind: "ValueError", Message: msg, Stack: traceback}
type HandlerError struct {
	Kind    string
	Message string
	Stack   string
	Err     error
}

func (e *HandlerError) Error() string {
	switch {
	case e.Message != "":
		return e.Message
	case e.Err != nil:
		return e.Err.Error()
	}
	return "handler failed"
}

func (e *HandlerError) Unwrap() error { return e.Err }

// PayloadTooLargeError: a task's payload is over ClientConfig.MaxPayloadSize.
type PayloadTooLargeError struct {
	Kind      string
	Size, Max int
}

func (e *PayloadTooLargeError) Error() string {
	return fmt.Sprintf("queue: payload of task kind %q is %d bytes, over the limit of %d bytes (ClientConfig.MaxPayloadSize)", e.Kind, e.Size, e.Max)
}

// UnknownKindError is the error of an attempt whose task kind has no
// handler. The task is retried (a newer worker may know the kind) and ends
// dead like any failing task; it is never dropped.
type UnknownKindError struct{ Kind string }

func (e *UnknownKindError) Error() string {
	return fmt.Sprintf("no handler registered for task kind %q", e.Kind)
}

// TaskFailedError is what Result returns for a dead task: every attempt
// failed, or one returned SkipRetry.
type TaskFailedError struct {
	ID, Queue, Kind string
	Attempts        int
	Errors          []AttemptError // oldest first
}

func (e *TaskFailedError) Error() string {
	msg := "no error recorded"
	if n := len(e.Errors); n > 0 {
		msg = e.Errors[n-1].Message
	}
	return fmt.Sprintf("task %s (kind %q, queue %q) failed after %d attempt(s): %s", e.ID, e.Kind, e.Queue, e.Attempts, msg)
}

// Last returns the error of the last attempt.
func (e *TaskFailedError) Last() (AttemptError, bool) {
	if len(e.Errors) == 0 {
		return AttemptError{}, false
	}
	return e.Errors[len(e.Errors)-1], true
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("queue: %s: %w", fmt.Sprintf(format, args...), ErrInvalidOption)
}
