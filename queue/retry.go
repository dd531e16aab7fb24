package queue

import (
	"math/rand/v2"
	"time"
)

// RetryDelayFunc says how long to wait before retrying a task whose attempt
// (1-based) failed with err.
type RetryDelayFunc func(attempt int, err error, t *TaskInfo) time.Duration

// ExponentialBackoff doubles the delay from Base for each attempt, up to
// Max, and spreads it by ±Jitter (a fraction) so that tasks that failed
// together do not retry together.
type ExponentialBackoff struct {
	Base   time.Duration
	Max    time.Duration
	Jitter float64
}

// Delay implements RetryDelayFunc.
func (b ExponentialBackoff) Delay(attempt int, _ error, _ *TaskInfo) time.Duration {
	d := b.Max
	if shift := attempt - 1; shift < 62 {
		if x := b.Base << max(shift, 0); x > 0 && x < b.Max {
			d = x
		}
	}
	if b.Jitter > 0 && d > 0 {
		j := float64(d) * min(b.Jitter, 1)
		d = time.Duration(float64(d) - j + rand.Float64()*2*j)
	}
	return d
}

// DefaultRetryDelay waits 1s, 2s, 4s, ... up to 10 minutes, ±20%.
var DefaultRetryDelay RetryDelayFunc = ExponentialBackoff{Base: time.Second, Max: 10 * time.Minute, Jitter: 0.2}.Delay
