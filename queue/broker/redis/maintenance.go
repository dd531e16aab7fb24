package redis

import (
	"context"
	"strconv"
	"time"
)

// maintenanceLimit caps the tasks one maintenance script call moves, so a
// backlog never blocks Redis for long; the call is repeated while full.
const maintenanceLimit = 1000

// sweep runs s on every known queue (pipelined) with args, repeating for
// queues whose reply says there is more, and sums the counts.
func (b *Broker) sweep(ctx context.Context, op string, s *script, args func(now time.Time) []any) (int, error) {
	if err := b.check(); err != nil {
		return 0, err
	}
	queues, err := b.knownQueues(ctx)
	if err != nil {
		return 0, err
	}
	total := 0
	for len(queues) > 0 {
		calls := make([]*scriptCall, len(queues))
		now := b.cfg.Clock.Now()
		a := args(now)
		for i, q := range queues {
			calls[i] = &scriptCall{script: s, keys: b.keysAt(s, q, now), args: a}
		}
		if err := b.runScripts(ctx, calls, nil); err != nil {
			return total, wrapErr(op, err)
		}
		var again []string
		var firstErr error
		for i, c := range calls {
			res, err := c.cmd.Int64Slice()
			if err != nil || len(res) != 2 {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			total += int(res[0])
			if res[1] == 1 {
				again = append(again, queues[i])
			}
		}
		if firstErr != nil {
			return total, wrapErr(op, firstErr)
		}
		queues = again
	}
	return total, nil
}

// Forward moves due scheduled and retry tasks to pending.
func (b *Broker) Forward(ctx context.Context) (int, error) {
	return b.sweep(ctx, "forward", scriptForward, func(now time.Time) []any {
		return []any{strconv.FormatInt(millis(now), 10), maintenanceLimit}
	})
}

// Recover gives tasks with expired leases back to pending (or dead).
func (b *Broker) Recover(ctx context.Context) (int, error) {
	return b.sweep(ctx, "recover", scriptRecover, func(now time.Time) []any {
		rec := `{"t":` + strconv.FormatInt(nanos(now), 10) + `,"k":"lease_expired","m":"lease expired"}`
		return []any{strconv.FormatInt(millis(now), 10), maintenanceLimit, rec, cancelRecord(now, "cancelled while running; lease expired")}
	})
}

// Cleanup deletes completed tasks whose retention has passed.
func (b *Broker) Cleanup(ctx context.Context) (int, error) {
	return b.sweep(ctx, "cleanup", scriptCleanup, func(now time.Time) []any {
		return []any{strconv.FormatInt(millis(now), 10), maintenanceLimit}
	})
}
