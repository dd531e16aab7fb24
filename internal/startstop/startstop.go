// Package startstop is the one start/stop lifecycle of conq's background
// components (the queue's fetcher, acker, lease extender, heartbeats,
// maintenance and scheduler loop; the server's throughput sampler), modelled on river's
// rivershared/startstop: a component embeds Base, its Start calls
// Base.Start with its loop, and Stop is inherited.
//
// # Policy, written down
//
//   - A loop's context keeps the values of the ctx given to Start (trace
//     ids, loggers) but not its cancellation: only Stop ends a component,
//     so that a caller's request ending does not tear down a worker half
//     way. Stop cancels with cause ErrStop.
//   - Start twice is an error (ErrStarted); Stop before Start, or twice, is
//     a no-op, so shutdown paths can stop everything unconditionally.
//   - Stop waits for the loop to return, or for its ctx to end.
package startstop

import (
	"context"
	"errors"
	"sync"
)

var (
	// ErrStop is the cancel cause of a loop's context when Stop ends it.
	ErrStop = errors.New("component stopped")
	// ErrStarted: Start of a component already started (or stopped: a
	// component runs once).
	ErrStarted = errors.New("already started")
	// ErrNotRunning: Once.Stop of a component never started or already
	// stopped.
	ErrNotRunning = errors.New("not running")
)

// Base runs a component's loop once.
type Base struct {
	mu      sync.Mutex
	started bool
	cancel  context.CancelCauseFunc
	done    chan struct{}
}

// Start runs loop in a goroutine with a context derived from ctx's values.
func (b *Base) Start(ctx context.Context, loop func(ctx context.Context)) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return ErrStarted
	}
	b.started = true
	var lctx context.Context
	lctx, b.cancel = context.WithCancelCause(context.WithoutCancel(ctx))
	b.done = make(chan struct{})
	go func() {
		defer close(b.done)
		loop(lctx)
	}()
	return nil
}

// Stop cancels the loop and waits for it to return, or for ctx to end
// (then it returns ctx's error; the loop goes on until it notices).
func (b *Base) Stop(ctx context.Context) error {
	b.mu.Lock()
	cancel, done := b.cancel, b.done
	b.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel(ErrStop)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Once is the guard of a public component that starts once and stops once
// (Worker, Scheduler), whose start and stop are more than one loop.
type Once struct {
	mu               sync.Mutex
	started, stopped bool
}

// Start marks the component started; ErrStarted if it was.
func (o *Once) Start() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.started {
		return ErrStarted
	}
	o.started = true
	return nil
}

// Stop marks it stopped; ErrNotRunning if it was never started or is
// stopped already.
func (o *Once) Stop() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.started || o.stopped {
		return ErrNotRunning
	}
	o.stopped = true
	return nil
}
