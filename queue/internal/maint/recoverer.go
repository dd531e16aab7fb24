package maint

import (
	"log/slog"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// NewRecoverer gives tasks whose lease expired (their worker died or lost
// the broker) back to pending, counting the lost attempt.
func NewRecoverer(b broker.Broker, interval time.Duration, log *slog.Logger) *Periodic {
	return &Periodic{Name: "recoverer", Interval: interval, Do: b.Recover, Logger: log}
}
