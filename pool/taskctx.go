package pool

import (
	"context"
	"sync"
	"time"
)

// taskCtx is the context.Context handed to a task. It lives inside the task
// struct so that it costs no allocation, and makes its Done channel only
// when asked: most small tasks never look at it. It inherits values,
// deadline and cancellation from the Submit ctx (parent); following the
// parent also waits until someone waits on the ctx.
type taskCtx struct {
	parent context.Context
	mu     sync.Mutex
	err    error
	w      *waiters // made by the first Done or AfterFunc
}

// waiters is the part of a taskCtx that only tasks waiting on it need.
type waiters struct {
	done       chan struct{}
	stopParent func() bool // from context.AfterFunc on parent
	afterFuncs []*func()   // from AfterFunc, not yet run or stopped
}

var _ context.Context = (*taskCtx)(nil)

func (c *taskCtx) Deadline() (time.Time, bool) { return c.parent.Deadline() }

func (c *taskCtx) Value(key any) any { return c.parent.Value(key) }

func (c *taskCtx) Done() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waitersLocked().done
}

// waitersLocked makes the Done channel and starts following the parent's
// cancellation, the first time someone waits on the ctx.
func (c *taskCtx) waitersLocked() *waiters {
	if c.w != nil {
		return c.w
	}
	c.w = &waiters{done: make(chan struct{})}
	if c.err != nil {
		close(c.w.done)
	} else if c.parent.Done() != nil {
		c.w.stopParent = context.AfterFunc(c.parent, func() { c.cancel(c.parent.Err()) })
	}
	return c.w
}

func (c *taskCtx) Err() error {
	c.mu.Lock()
	err := c.err
	c.mu.Unlock()
	if err != nil {
		return err
	}
	if c.parent.Done() == nil {
		return nil
	}
	if err := c.parent.Err(); err != nil {
		// Record it now rather than wait for AfterFunc, so Done is closed
		// whenever Err reports an error.
		c.cancel(err)
		return err
	}
	return nil
}

// AfterFunc arranges for f to run in its own goroutine once the ctx is
// done, like context.AfterFunc. Having the method lets contexts derived
// from a task ctx (context.WithCancel, WithTimeout, ...) follow it without
// a goroutine each.
func (c *taskCtx) AfterFunc(f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	w := c.waitersLocked()
	if c.err != nil {
		go f()
		return func() bool { return false }
	}
	e := &f
	w.afterFuncs = append(w.afterFuncs, e)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, g := range w.afterFuncs {
			if g == e {
				w.afterFuncs = append(w.afterFuncs[:i], w.afterFuncs[i+1:]...)
				return true
			}
		}
		return false // already run, or stopped before
	}
}

// String helps when a ctx is printed in a log line.
func (c *taskCtx) String() string { return "conq/pool.taskCtx" }

// cancel ends the ctx with err if it has not ended yet.
func (c *taskCtx) cancel(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = err
	w := c.w
	if w == nil {
		c.mu.Unlock()
		return
	}
	close(w.done)
	stop, fs := w.stopParent, w.afterFuncs
	w.stopParent, w.afterFuncs = nil, nil
	c.mu.Unlock()
	if stop != nil {
		stop()
	}
	for _, f := range fs {
		go (*f)()
	}
}

// Stop cancels the ctx; the future calls it when a running task is
// cancelled (it implements future.Stopper).
func (c *taskCtx) Stop() { c.cancel(context.Canceled) }
