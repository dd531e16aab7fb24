package future

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// State is where a future is in its life.
type State int32

const (
	Pending   State = iota // submitted, not started
	Running                // the work has started
	Done                   // finished with a value or an error
	Cancelled              // cancelled before it started
)

func (s State) String() string {
	switch s {
	case Pending:
		return "pending"
	case Running:
		return "running"
	case Done:
		return "done"
	case Cancelled:
		return "cancelled"
	}
	return fmt.Sprintf("State(%d)", int32(s))
}

// ErrCancelled is the error of a future cancelled before it started. It
// matches context.Canceled with errors.Is.
var ErrCancelled = fmt.Errorf("future cancelled: %w", context.Canceled)

// The errors every conq executor shares, so that errors.Is gives one answer
// whichever layer returned them: pool.ErrClosed, procpool.ErrClosed and
// queue.ErrClosed are ErrClosed; pool.ErrQueueFull is ErrQueueFull.
var (
	// ErrClosed: the executor has begun shutting down and takes no more
	// work; work it had accepted but will not run fails with an error
	// matching it.
	ErrClosed = errors.New("conq: closed")
	// ErrQueueFull: a non-blocking submission (TrySubmit) found no room.
	ErrQueueFull = errors.New("conq: queue full")
)

// PanicError is the error of a task that panicked.
type PanicError struct {
	Value any    // what was passed to panic
	Stack []byte // stack of the panicking goroutine
}

func (e *PanicError) Error() string { return fmt.Sprintf("panic: %v", e.Value) }

// Unwrap returns the panic value if it is an error, so errors.Is sees through.
func (e *PanicError) Unwrap() error {
	if err, ok := e.Value.(error); ok {
		return err
	}
	return nil
}

// NewPanicError builds a *PanicError from a recovered value; call it inside
// the deferred function so the stack is the panicking one.
func NewPanicError(v any) *PanicError { return &PanicError{Value: v, Stack: debug.Stack()} }

// Stopper is implemented by executors that can interrupt running work.
type Stopper interface{ Stop() }

// closedChan is returned by Done for futures that finished before anyone asked.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// Future is the result of work that may not have finished yet. Its methods
// are safe for concurrent use.
type Future[T any] struct {
	state     atomic.Int32
	mu        sync.Mutex
	done      chan struct{} // made on demand; closed when finished
	val       T
	err       error
	stopper   Stopper
	callbacks []func(T, error)
	draining  bool // a goroutine is running callbacks
}

// State reports the current state.
func (f *Future[T]) State() State { return State(f.state.Load()) }

func (f *Future[T]) finished() bool {
	s := f.State()
	return s == Done || s == Cancelled
}

// Done returns a channel closed when the future is done or cancelled.
func (f *Future[T]) Done() <-chan struct{} {
	if f.finished() {
		return closedChan
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.finished() {
		return closedChan
	}
	if f.done == nil {
		f.done = make(chan struct{})
	}
	return f.done
}

// Result waits for the future and returns its value and error. If ctx ends
// first it returns ctx's error and the future carries on.
func (f *Future[T]) Result(ctx context.Context) (T, error) {
	if !f.finished() {
		select {
		case <-f.Done():
		case <-ctx.Done():
			if f.finished() { // both ready: the outcome beats ctx's error
				return f.val, f.err
			}
			var zero T
			return zero, ctx.Err()
		}
	}
	return f.val, f.err
}

// Err waits like Result and returns only the error.
func (f *Future[T]) Err(ctx context.Context) error {
	_, err := f.Result(ctx)
	return err
}

// Cancel cancels the future if its work has not started and reports whether
// it is now cancelled. A running future is asked to stop (its ctx is
// cancelled) and Cancel returns false.
func (f *Future[T]) Cancel() bool {
	f.mu.Lock()
	switch f.State() {
	case Cancelled:
		f.mu.Unlock()
		return true
	case Pending:
		var zero T
		f.finishLocked(Cancelled, zero, ErrCancelled) // unlocks
		return true
	case Running:
		s := f.stopper
		f.mu.Unlock()
		if s != nil {
			s.Stop()
		}
		return false
	}
	f.mu.Unlock()
	return false
}

// OnDone registers fn to run once the future is done or cancelled. See the
// package documentation for ordering and panics.
func (f *Future[T]) OnDone(fn func(T, error)) {
	f.mu.Lock()
	if !f.finished() || f.draining {
		f.callbacks = append(f.callbacks, fn)
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	runCallback(fn, f.val, f.err)
}

// finishLocked records the outcome, wakes waiters and runs callbacks. It is
// called with f.mu held and releases it.
func (f *Future[T]) finishLocked(s State, v T, err error) {
	f.val, f.err = v, err
	f.state.Store(int32(s))
	f.stopper = nil
	if f.done != nil {
		close(f.done)
	}
	if len(f.callbacks) == 0 {
		f.mu.Unlock()
		return
	}
	f.draining = true
	for len(f.callbacks) > 0 {
		cbs := f.callbacks
		f.callbacks = nil
		f.mu.Unlock()
		for _, cb := range cbs {
			runCallback(cb, v, err)
		}
		f.mu.Lock()
	}
	f.draining = false
	f.mu.Unlock()
}

func runCallback[T any](fn func(T, error), v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			slog.Error("conq: future callback panicked", "panic", r, "stack", string(debug.Stack()))
		}
	}()
	fn(v, err)
}

// Promise is the write side of a Future, held by the executor running the
// work. The zero Promise is a pending future; embed it to save an allocation.
type Promise[T any] struct{ f Future[T] }

// NewPromise returns a new pending promise.
func NewPromise[T any]() *Promise[T] { return new(Promise[T]) }

// Future returns the read side.
func (p *Promise[T]) Future() *Future[T] { return &p.f }

// Start marks the work as running and reports whether it may run: false if
// the future was cancelled first. stop, if not nil, is called when the
// running future is cancelled.
func (p *Promise[T]) Start(stop Stopper) bool {
	f := &p.f
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.State() != Pending {
		return false
	}
	f.stopper = stop
	f.state.Store(int32(Running))
	return true
}

// Resolve completes the future with v and err. It reports false if the
// future was already finished.
func (p *Promise[T]) Resolve(v T, err error) bool {
	f := &p.f
	f.mu.Lock()
	if f.finished() {
		f.mu.Unlock()
		return false
	}
	f.finishLocked(Done, v, err)
	return true
}

// Cancel cancels a pending future with err (ErrCancelled if nil); it
// reports false if the work had already started or finished.
func (p *Promise[T]) Cancel(err error) bool {
	if err == nil {
		err = ErrCancelled
	}
	f := &p.f
	f.mu.Lock()
	if f.State() != Pending {
		f.mu.Unlock()
		return false
	}
	var zero T
	f.finishLocked(Cancelled, zero, err)
	return true
}

// Resolved returns a future that is already done with v and err.
func Resolved[T any](v T, err error) *Future[T] {
	p := NewPromise[T]()
	p.Resolve(v, err)
	return p.Future()
}

// IsCancelled reports whether err means the work was cancelled before it ran.
func IsCancelled(err error) bool { return errors.Is(err, ErrCancelled) }
