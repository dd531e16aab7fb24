// Package maint holds the worker's periodic maintenance components: the
// forwarder, the recoverer and the janitor. Each is a Periodic calling one
// broker method.
package maint

import (
	"context"
	"log/slog"
	"time"

	"github.com/conqhq/conq/internal/startstop"
	"github.com/conqhq/conq/queue/internal/backoff"
)

// Periodic calls Do every Interval until shut down. After a failed call it
// retries sooner, with backoff capped at Interval, and logs each failure.
type Periodic struct {
	Name     string
	Interval time.Duration
	Do       func(ctx context.Context) (int, error)
	Logger   *slog.Logger

	startstop.Base
}

// Start runs the loop in a goroutine; the first call is immediate.
func (p *Periodic) Start(ctx context.Context) error { return p.Base.Start(ctx, p.loop) }

func (p *Periodic) loop(ctx context.Context) {
	bo := backoff.Backoff{Min: min(50*time.Millisecond, p.Interval), Max: p.Interval}
	for {
		wait := p.Interval
		n, err := p.Do(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			wait = bo.Next()
			p.Logger.Warn("queue: maintenance call failed; retrying", "component", p.Name, "err", err, "retry_in", wait)
		default:
			bo.Reset()
			if n > 0 {
				p.Logger.Debug("queue: maintenance", "component", p.Name, "tasks", n)
			}
		}
		if !backoff.Sleep(ctx, wait) {
			return
		}
	}
}
