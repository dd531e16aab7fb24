// Package maint holds the worker's periodic maintenance components: the
// forwarder, the recoverer and the janitor. Each is a Periodic calling one
// broker method.
package maint

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/conqhq/conq/queue/internal/backoff"
)

// Periodic calls Do every Interval until shut down. After a failed call it
// retries sooner, with backoff capped at Interval, and logs each failure.
type Periodic struct {
	Name     string
	Interval time.Duration
	Do       func(ctx context.Context) (int, error)
	Logger   *slog.Logger

	once   sync.Once
	cancel context.CancelFunc
	done   chan struct{}
}

// Start runs the loop in a goroutine; the first call is immediate.
func (p *Periodic) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	p.cancel = cancel
	p.done = make(chan struct{})
	go p.loop(ctx)
}

func (p *Periodic) loop(ctx context.Context) {
	defer close(p.done)
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

// Shutdown stops the loop and waits for it, or for ctx.
func (p *Periodic) Shutdown(ctx context.Context) error {
	if p.cancel == nil {
		return nil
	}
	p.once.Do(p.cancel)
	select {
	case <-p.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
