// Package lease keeps the leases of a worker's in-flight tasks alive.
package lease

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/internal/backoff"
)

// maxBatch bounds one ExtendLeases call.
const maxBatch = 1000

// Extender renews, in one batched call every Interval, the leases of every
// task added to it, and cancels the task's context (with cause
// broker.ErrLeaseLost) when the broker reports the lease lost.
type Extender struct {
	Broker   broker.Broker
	Lease    time.Duration
	Interval time.Duration
	Logger   *slog.Logger

	mu     sync.Mutex
	leases map[broker.LeaseRef]context.CancelCauseFunc

	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{}
}

// Add tracks ref; cancel is called if its lease is lost.
func (e *Extender) Add(ref broker.LeaseRef, cancel context.CancelCauseFunc) {
	e.mu.Lock()
	if e.leases == nil {
		e.leases = make(map[broker.LeaseRef]context.CancelCauseFunc)
	}
	e.leases[ref] = cancel
	e.mu.Unlock()
}

// Remove stops tracking ref.
func (e *Extender) Remove(ref broker.LeaseRef) {
	e.mu.Lock()
	delete(e.leases, ref)
	e.mu.Unlock()
}

// Held returns the tracked leases.
func (e *Extender) Held() []broker.LeaseRef {
	e.mu.Lock()
	defer e.mu.Unlock()
	refs := make([]broker.LeaseRef, 0, len(e.leases))
	for ref := range e.leases {
		refs = append(refs, ref)
	}
	return refs
}

// Start runs the renewal loop.
func (e *Extender) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	e.done = make(chan struct{})
	go e.loop(ctx)
}

func (e *Extender) loop(ctx context.Context) {
	defer close(e.done)
	bo := backoff.Backoff{Min: min(50*time.Millisecond, e.Interval), Max: e.Interval}
	for {
		wait := e.Interval
		if err := e.ExtendOnce(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			wait = bo.Next()
			e.Logger.Warn("queue: extending leases failed; retrying", "err", err, "retry_in", wait)
		} else {
			bo.Reset()
		}
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}

// ExtendOnce renews every tracked lease now.
func (e *Extender) ExtendOnce(ctx context.Context) error {
	refs := e.Held()
	for len(refs) > 0 {
		n := min(len(refs), maxBatch)
		lost, err := e.Broker.ExtendLeases(ctx, refs[:n], e.Lease)
		if err != nil {
			return err
		}
		for _, ref := range lost {
			e.mu.Lock()
			cancel, ok := e.leases[ref]
			delete(e.leases, ref)
			e.mu.Unlock()
			if ok {
				e.Logger.Warn("queue: task lease lost; cancelling its handler", "queue", ref.Queue, "task_id", ref.ID)
				cancel(broker.ErrLeaseLost)
			}
		}
		refs = refs[n:]
	}
	return nil
}

// Shutdown stops the loop and waits for it, or for ctx.
func (e *Extender) Shutdown(ctx context.Context) error {
	if e.cancel == nil {
		return nil
	}
	e.once.Do(e.cancel)
	select {
	case <-e.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
