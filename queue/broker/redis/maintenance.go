package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// maintenanceLimit caps the tasks one maintenance script call moves, so a
// backlog never blocks Redis for long; the call is repeated while full.
const maintenanceLimit = 1000

// sweep runs s on every shard of every known queue (pipelined, so on a
// cluster each node gets its part at once) with args, repeating for shards
// whose reply says there is more, and sums the counts.
func (b *Broker) sweep(ctx context.Context, op string, s *script, args func(now time.Time) []any) (int, error) {
	return b.sweepWith(ctx, op, s, args, nil)
}

// sweepWith is sweep for scripts whose reply carries more items after
// {count, more}: each call's extra items go to extra.
func (b *Broker) sweepWith(ctx context.Context, op string, s *script, args func(now time.Time) []any, extra func(items []any)) (int, error) {
	if err := b.check(); err != nil {
		return 0, err
	}
	queues, err := b.knownQueues(ctx)
	if err != nil {
		return 0, err
	}
	shardMap, err := b.shardMap(ctx)
	if err != nil {
		return 0, wrapErr(op, err)
	}
	var tags []string
	for _, q := range queues {
		set := shardMap[q]
		for i := range set.count() {
			tags = append(tags, set.tag(q, i))
		}
	}
	total := 0
	for len(tags) > 0 {
		calls := make([]*scriptCall, len(tags))
		now := b.cfg.Clock.Now()
		a := args(now)
		for i, tag := range tags {
			calls[i] = &scriptCall{script: s, keys: b.keysAt(s, tag, now), args: a}
		}
		if err := b.runScripts(ctx, calls, nil); err != nil {
			return total, wrapErr(op, err)
		}
		var again []string
		var firstErr error
		for i, c := range calls {
			res, err := c.cmd.Slice()
			if err == nil && len(res) < 2 {
				err = fmt.Errorf("%w: %s reply %v", errCorrupt, op, res)
			}
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			n, _ := res[0].(int64)
			more, _ := res[1].(int64)
			total += int(n)
			if more == 1 {
				again = append(again, tags[i])
			}
			if extra != nil && len(res) > 2 {
				extra(res[2:])
			}
		}
		if firstErr != nil {
			return total, wrapErr(op, firstErr)
		}
		tags = again
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
	n, err := b.sweep(ctx, "recover", scriptRecover, func(now time.Time) []any {
		rec := `{"t":` + strconv.FormatInt(nanos(now), 10) + `,"k":"lease_expired","m":"lease expired"}`
		return []any{strconv.FormatInt(millis(now), 10), maintenanceLimit, rec, cancelRecord(now, "cancelled while running; lease expired"), strconv.FormatInt(nanos(now), 10)}
	})
	if n > 0 && b.xs != nil {
		// A recovered step that went dead may be a foreign one, whose end
		// is an event for its workflow's shard: a full pass soon.
		b.xs.hint(true)
	}
	return n, err
}

// Cleanup deletes completed tasks whose retention has passed, then
// finished workflows whose retention has passed (and their entries in the
// global workflow index). The count is of tasks, as the contract says.
func (b *Broker) Cleanup(ctx context.Context) (int, error) {
	args := func(now time.Time) []any {
		return []any{strconv.FormatInt(millis(now), 10), maintenanceLimit}
	}
	n, err := b.sweep(ctx, "cleanup", scriptCleanup, args)
	if err != nil {
		return n, err
	}
	var gone []any
	_, err = b.sweepWith(ctx, "cleanup workflows", scriptWfCleanup, args, func(items []any) {
		gone = append(gone, items...)
	})
	for start := 0; start < len(gone); start += maintenanceLimit {
		part := gone[start:min(start+maintenanceLimit, len(gone))]
		if e := b.rdb.HDel(ctx, workflowIndexKey(b.cfg.Prefix), anyStrings(part)...).Err(); e != nil && err == nil {
			err = wrapErr("cleanup workflows", e)
		}
	}
	if e := b.tendLibraries(ctx); e != nil {
		// Not the cleanup's failure: the libraries wait for the next run.
		b.cfg.Logger.DebugContext(ctx, "redis broker: tending the script libraries failed", "err", e)
	}
	return n, err
}

func anyStrings(items []any) []string {
	out := make([]string, 0, len(items))
	for _, it := range items {
		if s, ok := it.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
