package engine

import (
	"context"
	"fmt"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Limit names in the broker: one namespace per kind and limit type.
func slotName(kind string) string   { return "concurrency:" + kind }
func bucketName(kind string) string { return "rate:" + kind }

// limitPoll bounds how long a task waiting for a concurrency slot sleeps
// between tries.
const limitPoll = 50 * time.Millisecond

// admit waits until j's task may start under its kind's limits, for at
// most LimitWait. It returns a func to call when the attempt is over, or
// ok false if the task should go back to the queue (no attempt counted).
func (e *Engine) admit(j *job) (release func(), ok bool) {
	l, limited := e.cfg.Limits[j.t.Kind]
	if !limited {
		return func() {}, true
	}
	lim := e.b
	ctx := j.ctx
	giveUp := time.Now().Add(e.cfg.LimitWait)
	holder := fmt.Sprintf("%s/%s/%d", j.ref.Queue, j.ref.ID, j.ref.Token)
	kind := j.t.Kind
	// sleep waits d, or less if LimitWait ends first; false: give up.
	sleep := func(d time.Duration) bool {
		left := time.Until(giveUp)
		if left <= 0 {
			return false
		}
		t := time.NewTimer(min(d, left))
		defer t.Stop()
		select {
		case <-t.C:
			return !e.stopping.Load()
		case <-ctx.Done():
			return false
		}
	}
	var bo time.Duration
	if l.Concurrency > 0 {
		for {
			got, err := lim.AcquireSlot(ctx, broker.SlotParams{Name: slotName(kind), Holder: holder, Limit: l.Concurrency, Lease: e.cfg.Lease})
			if err != nil && ctx.Err() == nil {
				e.log.Error("queue: acquiring a concurrency slot failed", "kind", kind, "err", err)
			}
			if got {
				break
			}
			bo = min(max(bo*2, 5*time.Millisecond), limitPoll)
			if !sleep(bo) {
				return nil, false
			}
		}
	}
	releaseSlot := func() {
		if l.Concurrency == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := lim.ReleaseSlot(ctx, slotName(kind), holder); err != nil {
			e.log.Warn("queue: releasing a concurrency slot failed; it frees itself when its lease ends", "kind", kind, "err", err)
		}
	}
	if l.Rate > 0 {
		for {
			wait, err := lim.TakeToken(ctx, broker.TokenParams{Name: bucketName(kind), Rate: l.Rate, Burst: l.Burst})
			if err != nil {
				if ctx.Err() == nil {
					e.log.Error("queue: taking a rate limit token failed", "kind", kind, "err", err)
				}
				wait = limitPoll
			}
			if err == nil && wait == 0 {
				break
			}
			if !sleep(wait) {
				releaseSlot()
				return nil, false
			}
		}
	}
	if l.Concurrency == 0 {
		return func() {}, true
	}
	// Keep the slot's lease in step with the task's while it runs.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(e.cfg.ExtendInterval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				ctx, cancel := context.WithTimeout(context.Background(), e.cfg.ExtendInterval)
				err := lim.ExtendSlots(ctx, broker.ExtendSlotsParams{Name: slotName(kind), Holders: []string{holder}, Lease: e.cfg.Lease})
				cancel()
				if err != nil {
					e.log.Warn("queue: renewing a concurrency slot failed", "kind", kind, "err", err)
				}
			}
		}
	}()
	return func() {
		close(stop)
		<-done
		releaseSlot()
	}, true
}
