// Package backoff paces retries of failed broker calls.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff doubles a delay from Min up to Max, with ±25% jitter so that many
// workers hitting one broker do not retry in step. The zero value uses
// 50ms..5s. Not safe for concurrent use.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	lo, hi := b.Min, b.Max
	if lo <= 0 {
		lo = 50 * time.Millisecond
	}
	if hi <= 0 {
		hi = 5 * time.Second
	}
	d := lo << min(b.n, 30)
	if d > hi || d <= 0 {
		d = hi
	} else {
		b.n++
	}
	return d - d/4 + rand.N(d/2+1)
}

// Reset starts over from Min after a success.
func (b *Backoff) Reset() { b.n = 0 }

// Sleep waits d or until ctx ends, and reports whether the whole d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
