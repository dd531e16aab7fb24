package maint

import (
	"log/slog"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// NewJanitor deletes completed tasks whose retention has passed.
func NewJanitor(b broker.Broker, interval time.Duration, log *slog.Logger) *Periodic {
	return &Periodic{Name: "janitor", Interval: interval, Do: b.Cleanup, Logger: log}
}
