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

// Fetch leases up to max tasks, queue by queue in the order given, moving
// to the next queue only while the batch is not full. Within a sharded
// queue the batch is split over its shards (fetchShards).
func (b *Broker) Fetch(ctx context.Context, p broker.FetchParams) ([]*broker.Task, error) {
	queues, max, lease, workerID := p.Queues, p.Max, p.Lease, p.WorkerID
	if err := b.check(); err != nil {
		return nil, err
	}
	if max <= 0 || len(queues) == 0 {
		return nil, nil
	}
	shardMap, err := b.shardMap(ctx)
	if err != nil {
		return nil, wrapErr("fetch", err)
	}
	now := b.cfg.Clock.Now()
	until := now.Add(lease)
	args := fetchArgs{
		luNs:     strconv.FormatInt(nanos(until), 10),
		score:    strconv.FormatInt(millis(until), 10),
		nowNs:    strconv.FormatInt(nanos(now), 10),
		workerID: workerID,
	}
	var out []*broker.Task
	for _, q := range queues {
		if validQueue(q) != nil {
			continue
		}
		set := shardMap[q]
		if set == nil && b.cfg.DefaultShards > 1 {
			// Workers agree with producers at once on a new queue's shards.
			var err error
			if set, err = b.ensureShards(ctx, q); err != nil {
				return nil, wrapErr("fetch", err)
			}
		}
		var err error
		if set != nil {
			out, err = b.fetchShards(ctx, q, set, max, args, out)
		} else {
			out, err = b.fetchShard(ctx, q, q, 0, max, args, out)
		}
		if err != nil {
			if len(out) > 0 {
				// The leased tasks are the caller's now; a lost reply
				// is recovered when its leases expire.
				b.cfg.Logger.WarnContext(ctx, "redis broker: fetch stopped early", "queue", q, "err", err)
				return out, nil
			}
			return nil, wrapErr("fetch", err)
		}
		if len(out) >= max {
			break
		}
	}
	return out, nil
}

type fetchArgs struct{ luNs, score, nowNs, workerID string }

// fetchShard leases up to max-len(out) tasks of one shard, BatchSize per
// script call, until the shard has no more.
func (b *Broker) fetchShard(ctx context.Context, q, tag string, shard, max int, a fetchArgs, out []*broker.Task) ([]*broker.Task, error) {
	keys := b.keysFor(scriptFetch, tag)
	for len(out) < max {
		n := min(max-len(out), b.cfg.BatchSize)
		res, err := b.run(ctx, scriptFetch, keys, n, a.luNs, a.score, a.nowNs, a.workerID).Slice()
		if err != nil {
			return out, err
		}
		var got int
		out, got = b.decodeFetched(ctx, q, shard, res, out)
		if got < n {
			break // shard drained (or paused)
		}
	}
	return out, nil
}

// decodeFetched appends the tasks of a fetch reply and returns how many
// the reply held.
func (b *Broker) decodeFetched(ctx context.Context, q string, shard int, res []any, out []*broker.Task) ([]*broker.Task, int) {
	for i := 0; i+3 < len(res); i += 4 {
		id, _ := res[i].(string)
		t, err := decodeTask(q, id, res[i+1], res[i+2], res[i+3], nil)
		if err != nil {
			b.cfg.Logger.ErrorContext(ctx, "redis broker: skipping unreadable task", "queue", q, "shard", shard, "id", id, "err", err)
			continue
		}
		t.Shard = shard
		out = append(out, t)
	}
	return out, len(res) / 4
}

// fetchShards leases up to max-len(out) tasks of a sharded queue. Round 1
// asks every shard for an equal share (the remainder going to the shards
// after a start index that turns with every call, so each shard comes
// first equally often), all in one pipeline: one round trip, as go-redis
// sends each node its part at once. Later rounds ask only the shards that
// filled their share, for what is still missing. A shard with tasks is
// never starved by a busier one: round 1 always asks it.
func (b *Broker) fetchShards(ctx context.Context, q string, set *shardSet, max int, a fetchArgs, out []*broker.Task) ([]*broker.Task, error) {
	n := set.count()
	live := make([]int, 0, n) // shards that may have more, in asking order
	start := int(b.rot.Add(1) % uint32(n))
	for k := range n {
		live = append(live, (start+k)%n)
	}
	var firstErr error
	for len(out) < max && len(live) > 0 {
		want := max - len(out)
		asked := live
		if want < len(asked) {
			asked = asked[:want]
		}
		share, extra := want/len(asked), want%len(asked)
		calls := make([]*scriptCall, len(asked))
		shares := make([]int, len(asked))
		for k, i := range asked {
			shares[k] = min(share, b.cfg.BatchSize)
			if k < extra && shares[k] < b.cfg.BatchSize {
				shares[k]++
			}
			calls[k] = &scriptCall{script: scriptFetch, keys: b.keysFor(scriptFetch, set.tag(q, i)),
				args: []any{shares[k], a.luNs, a.score, a.nowNs, a.workerID}}
		}
		if err := b.runScripts(ctx, calls, nil); err != nil {
			return out, err
		}
		var next []int
		for k, c := range calls {
			res, err := c.cmd.Slice()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue // this shard is unreachable now: skip it this call
			}
			var got int
			out, got = b.decodeFetched(ctx, q, asked[k], res, out)
			if got >= shares[k] {
				next = append(next, asked[k])
			}
		}
		// Shards not asked this round (want < live) stay in line.
		live = append(next, live[len(asked):]...)
	}
	if len(out) == 0 && firstErr != nil {
		return out, firstErr
	}
	return out, nil
}

// WaitReady blocks until a task may be ready in one of the queues (any of
// their shards). Enqueue, Forward, Fail, Requeue, Recover, RetryTask and
// Resume push tokens on a shard's notify list when its tasks become
// pending, so an idle worker wakes within a round trip. On one server it
// is one BLPOP over every notify list (one blocked connection per caller);
// on a cluster, where lists of different slots cannot share a BLPOP, the
// process's notify hub waits on each list once for all its callers
// (wait.go). ctx is honoured even while BLPOP blocks.
func (b *Broker) WaitReady(ctx context.Context, p broker.WaitParams) error {
	queues, max := p.Queues, p.Max
	if err := b.check(); err != nil {
		return err
	}
	if max <= 0 || len(queues) == 0 {
		return ctx.Err()
	}
	shardMap, err := b.shardMap(ctx)
	if err != nil {
		return b.waitFailed(ctx, max, err)
	}
	keys := make([]string, 0, len(queues))
	for _, q := range queues {
		if validQueue(q) != nil {
			continue
		}
		set := shardMap[q]
		if set == nil && b.cfg.DefaultShards > 1 {
			if set, err = b.ensureShards(ctx, q); err != nil {
				return b.waitFailed(ctx, max, err)
			}
		}
		for i := range set.count() {
			keys = append(keys, b.queueKeys(set.tag(q, i))[kNotify])
		}
	}
	if len(keys) == 0 {
		return nil
	}
	timeout := max
	if timeout < time.Millisecond {
		timeout = time.Millisecond
	}
	if b.hub != nil {
		if err := b.hub.wait(ctx, keys, timeout); err != nil && ctx.Err() == nil {
			return b.waitFailed(ctx, max, err)
		}
		return ctx.Err()
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
			return b.waitFailed(ctx, max, err)
		}
		return nil
	}
}

// waitFailed backs off a little on errors, so a worker loop around
// WaitReady does not spin while Redis is away, and returns err.
func (b *Broker) waitFailed(ctx context.Context, max time.Duration, err error) error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	t := time.NewTimer(min(max, 100*time.Millisecond))
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
	return wrapErr("wait", err)
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
	calls, idx, err := b.groupLeases(ctx, leases, scriptExtend, now, head, func(i int) []any {
		return []any{leases[i].ID, strconv.FormatUint(leases[i].Token, 10)}
	})
	if err != nil {
		return nil, nil, wrapErr("extend leases", err)
	}
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

// groupLeases builds one script call per shard (queue and shard index)
// and chunk for items of a batch call: head is the call's leading ARGV,
// item(i) the arguments of item i. It returns the calls and, for each call,
// the item indexes it carries; the extra last index list holds items whose
// queue or shard is invalid (their leases cannot exist).
func (b *Broker) groupLeases(ctx context.Context, refs []broker.LeaseRef, s *script, now time.Time, head []any, item func(i int) []any) ([]*scriptCall, [][]int, error) {
	type shardRef struct {
		queue string
		shard int
	}
	var shardMap map[string]*shardSet
	order := []shardRef{}
	byShard := map[shardRef][]int{}
	var invalid []int
	for i, r := range refs {
		if validQueue(r.Queue) != nil || r.Shard < 0 {
			invalid = append(invalid, i)
			continue
		}
		if r.Shard > 0 && shardMap == nil {
			var err error
			if shardMap, err = b.shardMap(ctx); err != nil {
				return nil, nil, err
			}
		}
		if r.Shard >= shardMap[r.Queue].count() {
			invalid = append(invalid, i)
			continue
		}
		k := shardRef{r.Queue, r.Shard}
		if _, ok := byShard[k]; !ok {
			order = append(order, k)
		}
		byShard[k] = append(byShard[k], i)
	}
	var calls []*scriptCall
	var idx [][]int
	for _, k := range order {
		all := byShard[k]
		tag := shardMap[k.queue].tag(k.queue, k.shard)
		for start := 0; start < len(all); start += b.cfg.BatchSize {
			part := all[start:min(start+b.cfg.BatchSize, len(all))]
			args := append([]any(nil), head...)
			for _, i := range part {
				args = append(args, item(i)...)
			}
			calls = append(calls, &scriptCall{script: s, keys: b.keysAt(s, tag, now), args: args})
			idx = append(idx, part)
		}
	}
	return calls, append(idx, invalid), nil
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
		why := validQueue(refs[i].Queue)
		if why == nil {
			why = fmt.Errorf("queue %s has no shard %d", refs[i].Queue, refs[i].Shard)
		}
		errs[i], failed = fmt.Errorf("%w: task %s: %v", broker.ErrLeaseLost, refs[i].ID, why), true
	}
	if failed {
		return &broker.BatchError{Errs: errs}
	}
	return nil
}
