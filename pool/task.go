package pool

import (
	"context"
	"fmt"

	"github.com/conqhq/conq/future"
)

// task is everything one submission needs, in one allocation.
type task[T any] struct {
	future.Promise[T]
	ctx  taskCtx
	fn   func(context.Context) (T, error)
	pool *Pool
}

func (t *task[T]) run(w *worker) {
	p := t.pool
	if parent := t.ctx.parent; parent.Done() != nil {
		if err := parent.Err(); err != nil {
			t.drop(fmt.Errorf("%w: %w", future.ErrCancelled, err))
			return
		}
	}
	// Publish before checking aborting: abort sets aborting and then looks
	// at current, so one of the two sides sees the other.
	w.current.Store(&t.ctx)
	if p.aborting.Load() {
		w.current.Store(nil)
		p.cutShort.Store(true)
		t.drop(errShutdownCancelled)
		return
	}
	if !t.Start(&t.ctx) {
		w.current.Store(nil)
		p.cancelled.Add(1)
		return
	}
	p.started.Add(1)
	v, err := t.call()
	w.current.Store(nil)
	t.ctx.cancel(context.Canceled)
	t.fn = nil // let it be collected while the future lives on
	if err != nil {
		p.failed.Add(1)
	} else {
		p.completed.Add(1)
	}
	t.Resolve(v, err)
}

func (t *task[T]) call() (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero T
			v, err = zero, future.NewPanicError(r)
		}
	}()
	return t.fn(&t.ctx)
}

// drop cancels a task that will not run.
func (t *task[T]) drop(err error) {
	t.Cancel(err) // false if the future was cancelled already; counted all the same
	t.pool.cancelled.Add(1)
	t.fn = nil
}
