package broker

import "time"

// Clock tells the time. A broker is given one in its config and hands it
// out (Broker.Clock): leases, schedules, retries, deadlines, heartbeats and
// metrics of every queue component read that one clock, so a test moves
// them all by hand at once and nothing can disagree with the broker.
type Clock interface{ Now() time.Time }

// SystemClock is the wall clock.
type SystemClock struct{}

func (SystemClock) Now() time.Time { return time.Now() }
