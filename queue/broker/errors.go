package broker

import (
	"errors"
	"fmt"

	"github.com/conqhq/conq/future"
)

// The errors of the contract, all in this file. Implementations wrap the
// sentinels with the task ID, queue or call (test with errors.Is); the
// queue package re-exports them under the same names.
var (
	// ErrTaskNotFound: no task of that ID (in that queue, when one is
	// named).
	ErrTaskNotFound = errors.New("task not found")
	// ErrTaskIDConflict: Enqueue of an ID that exists in its queue.
	ErrTaskIDConflict = errors.New("task ID already exists")
	// ErrLeaseLost: the caller's lease token is no longer the task's (its
	// lease expired and the task was given to someone else, or it was
	// deleted). The caller must drop the task.
	ErrLeaseLost = errors.New("task lease lost")
	// ErrInvalidState: the operation does not apply to the task's state
	// (e.g. deleting an active task).
	ErrInvalidState = errors.New("operation not allowed in the task's state")
	// ErrClosed: a call after Close. It is future.ErrClosed, the one
	// "closed" sentinel of every conq layer (pool, procpool, queue).
	ErrClosed = future.ErrClosed
	// ErrDuplicateTask: a unique task was enqueued while another task
	// holding the same unique key is still pending, scheduled, retrying or
	// active (and its lock has not expired).
	ErrDuplicateTask = errors.New("duplicate task")
	// ErrTaskCancelled is the cancel cause of a handler whose task was
	// cancelled (CancelTask); the attempt ends dead with error kind
	// "cancelled".
	ErrTaskCancelled = errors.New("task cancelled")
	// ErrUnsupported: the broker does not implement an optional role (see
	// Optional and Unsupported); its Capabilities do not list it.
	ErrUnsupported = errors.New("not supported by the broker")
	// ErrNotReplicated: a write the broker was told to have acknowledged
	// by replicas (the Redis broker's WaitReplicas) is stored on the
	// master, but fewer replicas confirmed it in time, so it may not
	// survive a failover. Enqueueing the task again with the same ID is
	// safe: ErrTaskIDConflict then means it is stored.
	ErrNotReplicated = errors.New("write not acknowledged by enough replicas")
)

// BatchError reports per-item failures of a batch call: Errs[i] is the
// error of item i, nil where it succeeded. Any other error of a batch call
// means the call itself failed.
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

// Only returns the error of a one-item batch call: the item's error when
// err is a *BatchError of one item, err itself otherwise.
func Only(err error) error {
	var be *BatchError
	if errors.As(err, &be) && len(be.Errs) == 1 {
		return be.Errs[0]
	}
	return err
}
