package maint

import (
	"log/slog"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// NewForwarder moves due scheduled and retry tasks to pending. Its interval
// bounds how late a delayed task may start.
func NewForwarder(b broker.Broker, interval time.Duration, log *slog.Logger) *Periodic {
	return &Periodic{Name: "forwarder", Interval: interval, Do: b.Forward, Logger: log}
}
