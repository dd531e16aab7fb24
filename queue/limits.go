package queue

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Limit caps how a task kind runs across every worker sharing the broker.
// Limits are kept in the broker, so they hold however many workers run;
// every worker handling the kind must be given the same Limit (a worker
// with a higher one would let more through).
type Limit struct {
	// Concurrency is the most tasks of the kind run at once; 0: no cap.
	Concurrency int
	// Rate is the most tasks of the kind started per second, on average
	// (a token bucket); 0: no cap. Fractions are allowed: 0.5 is one task
	// every two seconds.
	Rate float64
	// Burst is how many tasks may start at once after an idle spell (the
	// bucket's size). Default a tenth of a second's worth of Rate, at least
	// 1: enough to absorb the wake-up latency of waiting workers, which a
	// bucket of 1 would turn into lost throughput.
	Burst int
}

// DefaultLimitWait is the default of WorkerConfig.LimitWait.
const DefaultLimitWait = time.Second

func (c *WorkerConfig) checkLimits() error {
	for kind, l := range c.Limits {
		if err := validToken("kind", kind, maxKind); err != nil {
			return fmt.Errorf("WorkerConfig.Limits: %w", err)
		}
		switch {
		case l.Concurrency < 0:
			return invalid("WorkerConfig.Limits[%q].Concurrency = %d: must not be negative", kind, l.Concurrency)
		case l.Rate < 0 || math.IsNaN(l.Rate) || math.IsInf(l.Rate, 0):
			return invalid("WorkerConfig.Limits[%q].Rate = %v: must be a positive number or 0", kind, l.Rate)
		case l.Burst < 0:
			return invalid("WorkerConfig.Limits[%q].Burst = %d: must not be negative", kind, l.Burst)
		case l.Concurrency == 0 && l.Rate == 0:
			return invalid("WorkerConfig.Limits[%q]: sets neither Concurrency nor Rate", kind)
		}
		if l.Burst == 0 && l.Rate > 0 {
			l.Burst = max(1, int(math.Ceil(l.Rate/10)))
			c.Limits[kind] = l
		}
	}
	if c.LimitWait < 0 {
		return invalid("WorkerConfig.LimitWait = %v: must not be negative", c.LimitWait)
	}
	if c.LimitWait == 0 {
		c.LimitWait = DefaultLimitWait
	}
	return nil
}

// Limit names in the broker: one namespace per kind and limit type.
func slotName(kind string) string   { return "concurrency:" + kind }
func bucketName(kind string) string { return "rate:" + kind }

// limitPoll bounds how long a task waiting for a concurrency slot sleeps
// between tries.
const limitPoll = 50 * time.Millisecond

// admit waits until j's task may start under its kind's limits, for at
// most LimitWait. It returns a func to call when the attempt is over, or
// ok false if the task should go back to the queue (no attempt counted).
func (w *Worker) admit(j *job) (release func(), ok bool) {
	l, limited := w.cfg.Limits[j.t.Kind]
	if !limited {
		return func() {}, true
	}
	lim := w.limiter
	ctx := j.ctx
	giveUp := time.Now().Add(w.cfg.LimitWait)
	holder := fmt.Sprintf("%s/%s/%d", j.t.Queue, j.t.ID, j.t.Token)
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
			return !w.stopping.Load()
		case <-ctx.Done():
			return false
		}
	}
	var bo time.Duration
	if l.Concurrency > 0 {
		for {
			got, err := lim.AcquireSlot(ctx, slotName(kind), holder, l.Concurrency, w.cfg.LeaseDuration)
			if err != nil && ctx.Err() == nil {
				w.log.Error("queue: acquiring a concurrency slot failed", "kind", kind, "err", err)
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
			w.log.Warn("queue: releasing a concurrency slot failed; it frees itself when its lease ends", "kind", kind, "err", err)
		}
	}
	if l.Rate > 0 {
		for {
			wait, err := lim.TakeToken(ctx, bucketName(kind), l.Rate, l.Burst)
			if err != nil {
				if ctx.Err() == nil {
					w.log.Error("queue: taking a rate limit token failed", "kind", kind, "err", err)
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
		tick := time.NewTicker(w.cfg.ExtendInterval)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				ctx, cancel := context.WithTimeout(context.Background(), w.cfg.ExtendInterval)
				err := lim.ExtendSlots(ctx, slotName(kind), []string{holder}, w.cfg.LeaseDuration)
				cancel()
				if err != nil {
					w.log.Warn("queue: renewing a concurrency slot failed", "kind", kind, "err", err)
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

// errNoLimiter explains a worker configured with limits on a broker that
// cannot keep them.
func errNoLimiter(b broker.Broker) error {
	return fmt.Errorf("queue: WorkerConfig.Limits needs a broker that keeps shared limits (broker.Limiter); %T does not: %w", b, ErrUnsupported)
}
