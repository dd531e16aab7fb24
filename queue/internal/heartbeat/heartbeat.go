// Package heartbeat publishes a record about a running component (a
// worker, a scheduler) to the broker every interval, with a TTL so that a
// component that dies disappears by itself, and removes it on shutdown.
package heartbeat

import (
	"context"
	"log/slog"
	"time"

	"github.com/conqhq/conq/queue/internal/maint"
)

// Heartbeat calls beat every interval (the first at once) and remove on
// Stop.
type Heartbeat struct {
	p      *maint.Periodic
	remove func(ctx context.Context) error
}

// New returns a heartbeat named name (for logs).
func New(name string, interval time.Duration, beat, remove func(ctx context.Context) error, log *slog.Logger) *Heartbeat {
	return &Heartbeat{
		p: &maint.Periodic{Name: name, Interval: interval, Logger: log, Do: func(ctx context.Context) (int, error) {
			return 0, beat(ctx)
		}},
		remove: remove,
	}
}

// Start starts beating.
func (h *Heartbeat) Start(ctx context.Context) error { return h.p.Start(ctx) }

// Stop stops beating and removes the record (within ctx).
func (h *Heartbeat) Stop(ctx context.Context) error {
	if err := h.p.Stop(ctx); err != nil {
		return err
	}
	return h.remove(ctx)
}
