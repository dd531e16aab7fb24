package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
)

// Fetch leases up to max tasks, one script call per queue in the order
// given, moving to the next queue only while the batch is not full.
func (b *Broker) Fetch(ctx context.Context, p broker.FetchParams) ([]*broker.Task, error) {
	queues, max, lease, workerID := p.Queues, p.Max, p.Lease, p.WorkerID
	if err := b.check(); err != nil {
		return nil, err
	}
	if max <= 0 || len(queues) == 0 {
		return nil, nil
	}
	now := b.cfg.Clock.Now()
	until := now.Add(lease)
	luNs := strconv.FormatInt(nanos(until), 10)
	score := strconv.FormatInt(millis(until), 10)
	nowNs := strconv.FormatInt(nanos(now), 10)
	var out []*broker.Task
	for _, q := range queues {
		if validQueue(q) != nil {
			continue
		}
		keys := b.keysFor(scriptFetch, q)
		for len(out) < max {
			n := min(max-len(out), b.cfg.BatchSize)
			res, err := scriptFetch.Run(ctx, b.rdb, keys, n, luNs, score, nowNs, workerID).Slice()
			if err != nil {
				if len(out) > 0 {
					// The leased tasks are the caller's now; a lost reply
					// is recovered when its leases expire.
					b.cfg.Logger.WarnContext(ctx, "redis broker: fetch stopped early", "queue", q, "err", err)
					return out, nil
				}
				return nil, wrapErr("fetch", err)
			}
			got := len(res) / 4
			for i := 0; i+3 < len(res); i += 4 {
				id, _ := res[i].(string)
				t, err := decodeTask(q, id, res[i+1], res[i+2], res[i+3], nil)
				if err != nil {
					b.cfg.Logger.ErrorContext(ctx, "redis broker: skipping unreadable task", "queue", q, "id", id, "err", err)
					continue
				}
				out = append(out, t)
			}
			if got < n {
				break // queue drained (or paused)
			}
		}
		if len(out) >= max {
			break
		}
	}
	return out, nil
}

// WaitReady blocks on the queues' notify lists with BLPOP. Enqueue,
// Forward, Fail, Requeue, Recover, RetryTask and Resume push tokens there
// when tasks become pending, so an idle worker costs one blocked connection
// and wakes within a round trip. ctx is honoured even while BLPOP blocks.
func (b *Broker) WaitReady(ctx context.Context, p broker.WaitParams) error {
	queues, max := p.Queues, p.Max
	if err := b.check(); err != nil {
		return err
	}
	if max <= 0 || len(queues) == 0 {
		return ctx.Err()
	}
	keys := make([]string, 0, len(queues))
	for _, q := range queues {
		if validQueue(q) == nil {
			keys = append(keys, b.queueKeys(q)[kNotify])
		}
	}
	if len(keys) == 0 {
		return nil
	}
	timeout := max
	if timeout < time.Millisecond {
		timeout = time.Millisecond
	}
	done := make(chan error, 1)
	go func() {
		// Not tied to ctx: go-redis would drop the connection on cancel.
		// The call ends by itself within timeout.
		bctx := context.WithoutCancel(ctx)
		var err error
		if timeout >= time.Second {
			// go-redis's BLPop sends whole seconds but knows to extend
			// the read deadline by the timeout.
			err = b.rdb.BLPop(bctx, timeout.Truncate(time.Second), keys...).Err()
		} else {
			// Sub-second timeouts (Redis 6+) go as a raw command; they
			// fit in the client's normal read timeout.
			args := make([]any, 0, len(keys)+2)
			args = append(args, "BLPOP")
			for _, k := range keys {
				args = append(args, k)
			}
			args = append(args, strconv.FormatFloat(timeout.Seconds(), 'f', 3, 64))
			err = b.rdb.Do(bctx, args...).Err()
		}
		if errors.Is(err, goredis.Nil) {
			err = nil
		}
		done <- err
	}()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err := <-done:
		if err != nil {
			if b.closed.Load() {
				return broker.ErrClosed
			}
			// Back off a little on errors so a worker loop around
			// WaitReady does not spin while Redis is away.
			t := time.NewTimer(min(max, 100*time.Millisecond))
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			return wrapErr("wait", err)
		}
		return nil
	}
}

// ExtendLeases renews leases with one script call per queue, pipelined,
// and reports those lost and those flagged for cancellation.
func (b *Broker) ExtendLeases(ctx context.Context, p broker.ExtendParams) (broker.ExtendResult, error) {
	lost, cancelled, err := b.extendLeases(ctx, p.Leases, p.Lease)
	return broker.ExtendResult{Lost: lost, Cancelled: cancelled}, err
}

func (b *Broker) extendLeases(ctx context.Context, leases []broker.LeaseRef, lease time.Duration) (lost, cancelled []broker.LeaseRef, err error) {
	if err := b.check(); err != nil {
		return nil, nil, err
	}
	if len(leases) == 0 {
		return nil, nil, nil
	}
	now := b.cfg.Clock.Now()
	until := now.Add(lease)
	head := []any{strconv.FormatInt(nanos(until), 10), strconv.FormatInt(millis(until), 10)}
	calls, idx := b.groupLeases(leases, scriptExtend, now, head, func(i int) []any {
		return []any{leases[i].ID, strconv.FormatUint(leases[i].Token, 10)}
	})
	if len(calls) > 0 {
		if err := b.runScripts(ctx, calls, nil); err != nil {
			return nil, nil, wrapErr("extend leases", err)
		}
		for ci, c := range calls {
			res, err := c.cmd.Int64Slice()
			if err != nil {
				return nil, nil, wrapErr("extend leases", err)
			}
			for _, k := range res {
				switch {
				case k >= 1 && int(k) <= len(idx[ci]):
					lost = append(lost, leases[idx[ci][k-1]])
				case k <= -1 && int(-k) <= len(idx[ci]):
					cancelled = append(cancelled, leases[idx[ci][-k-1]])
				}
			}
		}
	}
	for _, i := range idx[len(calls)] { // invalid queue names
		lost = append(lost, leases[i])
	}
	return lost, cancelled, nil
}

// groupLeases builds one script call per queue and chunk for items of a
// batch call: head is the call's leading ARGV, item(i) the arguments of
// item i. It returns the calls and, for each call, the item indexes it
// carries; the extra last index list holds items whose queue is invalid.
func (b *Broker) groupLeases(refs []broker.LeaseRef, s *script, now time.Time, head []any, item func(i int) []any) ([]*scriptCall, [][]int) {
	order := []string{}
	byQueue := map[string][]int{}
	var invalid []int
	for i, r := range refs {
		if validQueue(r.Queue) != nil {
			invalid = append(invalid, i)
			continue
		}
		if _, ok := byQueue[r.Queue]; !ok {
			order = append(order, r.Queue)
		}
		byQueue[r.Queue] = append(byQueue[r.Queue], i)
	}
	var calls []*scriptCall
	var idx [][]int
	for _, q := range order {
		all := byQueue[q]
		for start := 0; start < len(all); start += b.cfg.BatchSize {
			part := all[start:min(start+b.cfg.BatchSize, len(all))]
			args := append([]any(nil), head...)
			for _, i := range part {
				args = append(args, item(i)...)
			}
			calls = append(calls, &scriptCall{script: s, keys: b.keysAt(s, q, now), args: args})
			idx = append(idx, part)
		}
	}
	return calls, append(idx, invalid)
}

// itemResults turns per-item reply codes (0 ok, 1 lease lost) of calls
// made by groupLeases into a *BatchError, or the call error if all failed.
func itemResults(op string, refs []broker.LeaseRef, calls []*scriptCall, idx [][]int) error {
	if err := allFailed(calls); err != nil {
		return wrapErr(op, err)
	}
	errs := make([]error, len(refs))
	failed := false
	for ci, c := range calls {
		res, err := c.cmd.Int64Slice()
		if err == nil && len(res) != len(idx[ci]) {
			err = fmt.Errorf("%w: %s reply has %d items, want %d", errCorrupt, op, len(res), len(idx[ci]))
		}
		for k, i := range idx[ci] {
			switch {
			case err != nil:
				errs[i] = wrapErr(op, err)
			case res[k] == 1:
				errs[i] = fmt.Errorf("%w: task %s in queue %s (token %d)", broker.ErrLeaseLost, refs[i].ID, refs[i].Queue, refs[i].Token)
			default:
				continue
			}
			failed = true
		}
	}
	for _, i := range idx[len(calls)] {
		errs[i], failed = fmt.Errorf("%w: task %s: %v", broker.ErrLeaseLost, refs[i].ID, validQueue(refs[i].Queue)), true
	}
	if failed {
		return &broker.BatchError{Errs: errs}
	}
	return nil
}
