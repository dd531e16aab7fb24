package queue

import (
	"fmt"
	"math"
	"time"

	"github.com/conqhq/conq/queue/internal/check"
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

// defaultLimitWait is the default of WorkerConfig.LimitWait.
const defaultLimitWait = time.Second

func (c *WorkerConfig) checkLimits() error {
	for kind, l := range c.Limits {
		if err := validToken("kind", kind, check.MaxKind); err != nil {
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
		c.LimitWait = defaultLimitWait
	}
	return nil
}

// errNoLimiter explains a worker configured with limits on a broker that
// cannot keep them.
func errNoLimiter(b Broker) error {
	return fmt.Errorf("queue: WorkerConfig.Limits needs a broker that keeps shared limits; %T does not: %w", b, ErrUnsupported)
}
