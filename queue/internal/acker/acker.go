// Package acker records task outcomes in batches: one goroutine gathers the
// completions, failures and requeues that handlers produce and sends each
// kind to the broker in a single call.
package acker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/conqhq/conq/internal/startstop"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/internal/backoff"
)

// Op is what to do with a task.
type Op uint8

const (
	OpComplete Op = iota
	OpFail
	OpRequeue
)

// Item is one outcome. Ref names the lease; Result goes with OpComplete and
// Failure (whose LeaseRef is filled from Ref) with OpFail.
type Item struct {
	Op      Op
	Ref     broker.LeaseRef
	Result  []byte
	Failure broker.Failure
}

// Acker batches outcomes. Broker errors are retried with backoff until
// Stop's ctx ends; item errors (such as broker.ErrLeaseLost) are final.
type Acker struct {
	Broker    broker.Broker
	BatchSize int // default 256
	Logger    *slog.Logger
	// Settled is called once per item after the broker answered: err is nil,
	// an item error, or the call's error if it was given up.
	Settled func(it *Item, err error)

	startstop.Base
	mu     sync.RWMutex
	closed bool
	in     chan Item
	ctx    context.Context // of broker calls; cancelled when Stop gives up retrying
	cancel context.CancelFunc
}

// Start runs the batching goroutine. It ends when Stop has closed the
// input and every item is settled, not when its context is cancelled.
func (a *Acker) Start(ctx context.Context) error {
	if a.BatchSize <= 0 {
		a.BatchSize = 256
	}
	a.in = make(chan Item, 4*a.BatchSize)
	a.ctx, a.cancel = context.WithCancel(context.WithoutCancel(ctx))
	return a.Base.Start(ctx, func(context.Context) { a.loop() })
}

// Push queues an outcome; it blocks while the buffer is full and reports
// false once the acker is shut down.
func (a *Acker) Push(it Item) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.closed {
		return false
	}
	a.in <- it
	return true
}

func (a *Acker) loop() {
	batch := make([]Item, 0, a.BatchSize)
	for {
		it, ok := <-a.in
		if !ok {
			return
		}
		batch = append(batch[:0], it)
	drain:
		for len(batch) < a.BatchSize {
			select {
			case it, ok := <-a.in:
				if !ok {
					break drain
				}
				batch = append(batch, it)
			default:
				break drain
			}
		}
		a.flush(batch)
	}
}

func (a *Acker) flush(batch []Item) {
	var acks []broker.Ack
	var fails []broker.Failure
	var requeues []broker.LeaseRef
	var ackItems, failItems, requeueItems []*Item
	for i := range batch {
		it := &batch[i]
		switch it.Op {
		case OpComplete:
			acks = append(acks, broker.Ack{LeaseRef: it.Ref, Result: it.Result})
			ackItems = append(ackItems, it)
		case OpFail:
			f := it.Failure
			f.LeaseRef = it.Ref
			fails = append(fails, f)
			failItems = append(failItems, it)
		case OpRequeue:
			requeues = append(requeues, it.Ref)
			requeueItems = append(requeueItems, it)
		}
	}
	if len(acks) > 0 {
		a.call("complete", ackItems, func(ctx context.Context) error { return a.Broker.Complete(ctx, acks...) })
	}
	if len(fails) > 0 {
		a.call("fail", failItems, func(ctx context.Context) error { return a.Broker.Fail(ctx, fails...) })
	}
	if len(requeues) > 0 {
		a.call("requeue", requeueItems, func(ctx context.Context) error { return a.Broker.Requeue(ctx, requeues...) })
	}
}

func (a *Acker) call(what string, items []*Item, fn func(ctx context.Context) error) {
	bo := backoff.Backoff{Min: 20 * time.Millisecond, Max: 2 * time.Second}
	for {
		err := fn(a.ctx)
		var be *broker.BatchError
		switch {
		case err == nil:
			for _, it := range items {
				a.Settled(it, nil)
			}
			return
		case errors.As(err, &be) && len(be.Errs) == len(items):
			for i, it := range items {
				a.Settled(it, be.Errs[i])
			}
			return
		case a.ctx.Err() != nil:
			a.Logger.Error("queue: gave up recording task outcomes; their leases will expire and the tasks run again",
				"op", what, "tasks", len(items), "err", err)
			for _, it := range items {
				a.Settled(it, err)
			}
			return
		}
		d := bo.Next()
		a.Logger.Warn("queue: recording task outcomes failed; retrying", "op", what, "tasks", len(items), "err", err, "retry_in", d)
		backoff.Sleep(a.ctx, d)
	}
}

// Stop stops taking items and flushes those queued. If ctx ends first,
// pending broker retries are abandoned and ctx's error returned.
func (a *Acker) Stop(ctx context.Context) error {
	if a.in == nil {
		return nil
	}
	stop := context.AfterFunc(ctx, a.cancel)
	defer stop()
	a.mu.Lock()
	if !a.closed {
		a.closed = true
		close(a.in)
	}
	a.mu.Unlock()
	// Wait for every item to be settled: once ctx ends the broker calls
	// give up at once, so this does not outlast ctx by more than a call.
	_ = a.Base.Stop(context.WithoutCancel(ctx))
	a.cancel()
	return ctx.Err()
}
