// Package lease keeps the leases of a worker's in-flight tasks alive.
package lease

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/conqhq/conq/internal/startstop"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/internal/backoff"
)

// maxBatch bounds one ExtendLeases call.
const maxBatch = 1000

// Extender renews, in one batched call every Interval, the leases of every
// task added to it, and cancels the task's context (with cause
// broker.ErrLeaseLost) when the broker reports the lease lost. It also
// cancels, with cause broker.ErrTaskCancelled, the contexts of tasks the
// broker reports flagged for cancellation, and keeps renewing their leases
// until they are removed, so the worker can record the attempt. Both come
// from the one renewal call, Broker.ExtendLeases.
type Extender struct {
	Broker   broker.Broker
	Lease    time.Duration
	Interval time.Duration
	Logger   *slog.Logger

	mu     sync.Mutex
	leases map[broker.LeaseRef]*held

	passMu   sync.Mutex // one renewal pass at a time (the loop's or CheckSince's)
	lastPass time.Time  // start of the last pass that succeeded

	startstop.Base
}

type held struct {
	cancel    context.CancelCauseFunc
	cancelled bool // told to cancel already
	settling  bool // its outcome is on its way to the broker (Settling)
}

// Add tracks ref; cancel is called if its lease is lost or its task
// cancelled.
func (e *Extender) Add(ref broker.LeaseRef, cancel context.CancelCauseFunc) {
	e.mu.Lock()
	if e.leases == nil {
		e.leases = make(map[broker.LeaseRef]*held)
	}
	e.leases[ref] = &held{cancel: cancel}
	e.mu.Unlock()
}

// Settling marks ref's outcome as handed to the acker: its lease is still
// renewed until Remove, but a renewal that finds it gone (the outcome
// recorded a moment before) is expected, not a lost lease. A lease that
// really was lost is reported by the outcome's own broker call.
func (e *Extender) Settling(ref broker.LeaseRef) {
	e.mu.Lock()
	if h := e.leases[ref]; h != nil {
		h.settling = true
	}
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
func (e *Extender) Start(ctx context.Context) error { return e.Base.Start(ctx, e.loop) }

func (e *Extender) loop(ctx context.Context) {
	bo := backoff.Backoff{Min: min(50*time.Millisecond, e.Interval), Max: e.Interval}
	for {
		wait := e.Interval
		if err := e.pass(ctx); err != nil {
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

// pass is ExtendOnce, recording when a successful one started.
func (e *Extender) pass(ctx context.Context) error {
	e.passMu.Lock()
	defer e.passMu.Unlock()
	start := time.Now()
	err := e.ExtendOnce(ctx)
	if err == nil {
		e.lastPass = start
	}
	return err
}

// CheckSince makes sure that a renewal pass started at or after t has
// completed, running one now if none has: a cancel flagged before t has
// then reached the context of every lease held at t. Callers waiting at
// the same time share passes, so a worker that asks before starting each
// task makes at most one broker call per the interval its callers allow.
// Why: the loop renews every Interval (10 s by default), and a prefetched
// task cancelled in the meantime would otherwise start anyway.
func (e *Extender) CheckSince(ctx context.Context, t time.Time) error {
	e.passMu.Lock()
	defer e.passMu.Unlock()
	if !e.lastPass.Before(t) { // a pass since t: ours to share (perhaps run while we waited for the lock)
		return nil
	}
	start := time.Now()
	err := e.ExtendOnce(ctx)
	if err == nil {
		e.lastPass = start
	}
	return err
}

// ExtendOnce renews every tracked lease now.
func (e *Extender) ExtendOnce(ctx context.Context) error {
	refs := e.Held()
	for len(refs) > 0 {
		n := min(len(refs), maxBatch)
		res, err := e.Broker.ExtendLeases(ctx, broker.ExtendParams{Leases: refs[:n], Lease: e.Lease})
		if err != nil {
			return err
		}
		for _, ref := range res.Lost {
			e.mu.Lock()
			h, ok := e.leases[ref]
			delete(e.leases, ref)
			e.mu.Unlock()
			switch {
			case ok && h.settling:
				e.Logger.Debug("queue: lease ended while its outcome was recorded", "queue", ref.Queue, "task_id", ref.ID)
			case ok:
				e.Logger.Warn("queue: task lease lost; cancelling its handler", "queue", ref.Queue, "task_id", ref.ID)
				h.cancel(broker.ErrLeaseLost)
			}
		}
		for _, ref := range res.Cancelled {
			e.mu.Lock()
			h, ok := e.leases[ref]
			first := ok && !h.cancelled
			if first {
				h.cancelled = true
			}
			e.mu.Unlock()
			if first {
				e.Logger.Info("queue: task cancelled; cancelling its handler", "queue", ref.Queue, "task_id", ref.ID)
				h.cancel(broker.ErrTaskCancelled)
			}
		}
		refs = refs[n:]
	}
	return nil
}
