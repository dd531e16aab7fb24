package redis

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
)

// The operational capabilities of broker/ext.go. Cancel flags live in the
// queue's "cancels" hash, read by the scripts that renew and end leases.
// Throughput counters are hashes per queue and minute (statsKey), bumped
// by the complete, fail and recover scripts once per call. Worker and
// scheduler records are global to the prefix: a hash of JSON records and
// a sorted set of their expiry times, under one hash tag each.

// CancelTask implements broker.Canceler in one script call.
func (b *Broker) CancelTask(ctx context.Context, queue, id string) (broker.State, error) {
	if err := b.check(); err != nil {
		return "", err
	}
	queue, tag, err := b.locate(ctx, queue, id)
	if err != nil {
		return "", err
	}
	now := b.cfg.Clock.Now()
	res, err := b.run(ctx, scriptCancel, b.keysFor(scriptCancel, tag), id,
		strconv.FormatInt(millis(now), 10), cancelRecord(now, "cancelled while waiting to run"), strconv.FormatInt(nanos(now), 10)).Slice()
	if err != nil {
		return "", wrapErr("cancel task", err)
	}
	if len(res) < 2 {
		return "", fmt.Errorf("%w: cancel reply %v", errCorrupt, res)
	}
	if len(res) == 3 {
		// The cancelled task is a foreign workflow step: its end is an
		// event for its workflow's shard (xslot.go).
		b.crossSlot(ctx, []string{tag})
	}
	code, _ := res[0].(int64)
	letter, _ := res[1].(string)
	st := codeStates[letter]
	switch code {
	case -1:
		return "", fmt.Errorf("%w: %s in queue %s", broker.ErrTaskNotFound, id, queue)
	case -2:
		return st, fmt.Errorf("cancel task %s in queue %s: it is %s: %w", id, queue, st, broker.ErrInvalidState)
	}
	return st, nil
}

// Throughput implements broker.StatsReader: one HGETALL per minute of the
// range and shard, pipelined; a sharded queue's counters are summed.
func (b *Broker) Throughput(ctx context.Context, p broker.ThroughputParams) ([]broker.Point, error) {
	queue, from, to := p.Queue, p.From, p.To
	if err := b.check(); err != nil {
		return nil, err
	}
	if err := validQueue(queue); err != nil {
		return nil, err
	}
	start, end := from.Unix(), to.Unix()
	if end <= start {
		return nil, nil
	}
	set, err := b.shardsOf(ctx, queue)
	if err != nil {
		return nil, wrapErr("throughput", err)
	}
	first, last := floorDiv(start, 60), floorDiv(end-1, 60)
	cmds := make([]*goredis.MapStringStringCmd, 0, (last-first+1)*int64(set.count()))
	_, err = b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i := range set.count() {
			for m := first; m <= last; m++ {
				cmds = append(cmds, p.HGetAll(ctx, statsKey(b.cfg.Prefix, set.tag(queue, i), m)))
			}
		}
		return nil
	})
	if err != nil && !isNil(err) {
		return nil, wrapErr("throughput", err)
	}
	out := make([]broker.Point, end-start)
	for i := range out {
		out[i].At = time.Unix(start+int64(i), 0)
	}
	for _, c := range cmds {
		for f, v := range c.Val() {
			if len(f) < 2 {
				continue
			}
			sec, err1 := strconv.ParseInt(f[1:], 10, 64)
			n, err2 := strconv.ParseInt(v, 10, 64)
			if err1 != nil || err2 != nil || sec < start || sec >= end {
				continue
			}
			switch f[0] {
			case 'p':
				out[sec-start].Processed += n
			case 'f':
				out[sec-start].Failed += n
			}
		}
	}
	return out, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// registry is a set of JSON records with expiry times: workers or
// schedulers.
type registry struct{ data, expiry string }

func (b *Broker) registry(name string) registry {
	base := b.cfg.Prefix + ":{" + name + "}:"
	return registry{data: base + "data", expiry: base + "expiry"}
}

func (b *Broker) regPut(ctx context.Context, r registry, id string, v any, ttl time.Duration) error {
	if err := b.check(); err != nil {
		return err
	}
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	until := b.cfg.Clock.Now().Add(ttl)
	_, err = b.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HSet(ctx, r.data, id, data)
		p.ZAdd(ctx, r.expiry, goredis.Z{Score: float64(millis(until)), Member: id})
		return nil
	})
	return err
}

// regList returns the live records, by ID, and deletes expired ones, in
// one script.
func (b *Broker) regList(ctx context.Context, r registry) ([]string, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	now := strconv.FormatInt(millis(b.cfg.Clock.Now()), 10)
	return b.run(ctx, scriptRegistryList, []string{r.data, r.expiry}, now).StringSlice()
}

func (b *Broker) regRemove(ctx context.Context, r registry, id string) error {
	if err := b.check(); err != nil {
		return err
	}
	_, err := b.rdb.TxPipelined(ctx, func(p goredis.Pipeliner) error {
		p.HDel(ctx, r.data, id)
		p.ZRem(ctx, r.expiry, id)
		return nil
	})
	return err
}

// Heartbeat implements broker.WorkerRegistry.
func (b *Broker) Heartbeat(ctx context.Context, info broker.WorkerInfo, ttl time.Duration) error {
	if info.ID == "" {
		return fmt.Errorf("%w: heartbeat without a worker ID", errInvalidArg)
	}
	if err := b.regPut(ctx, b.registry("workers"), info.ID, info, ttl); err != nil {
		return wrapErr("heartbeat", err)
	}
	return nil
}

// ListWorkers implements broker.WorkerRegistry.
func (b *Broker) ListWorkers(ctx context.Context) ([]broker.WorkerInfo, error) {
	recs, err := b.regList(ctx, b.registry("workers"))
	if err != nil {
		return nil, wrapErr("list workers", err)
	}
	out := make([]broker.WorkerInfo, 0, len(recs))
	for _, r := range recs {
		var w broker.WorkerInfo
		if err := json.Unmarshal([]byte(r), &w); err != nil {
			b.cfg.Logger.WarnContext(ctx, "redis broker: skipping unreadable worker record", "err", err)
			continue
		}
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b broker.WorkerInfo) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	return out, nil
}

// RemoveWorker implements broker.WorkerRegistry.
func (b *Broker) RemoveWorker(ctx context.Context, id string) error {
	if err := b.regRemove(ctx, b.registry("workers"), id); err != nil {
		return wrapErr("remove worker", err)
	}
	return nil
}

// PublishEntries implements broker.ScheduleRegistry.
func (b *Broker) PublishEntries(ctx context.Context, id string, entries []broker.ScheduleEntry, ttl time.Duration) error {
	if id == "" {
		return fmt.Errorf("%w: entries without a scheduler ID", errInvalidArg)
	}
	es := slices.Clone(entries)
	for i := range es {
		es[i].SchedulerID = id
	}
	if es == nil {
		es = []broker.ScheduleEntry{}
	}
	if err := b.regPut(ctx, b.registry("schedulers"), id, es, ttl); err != nil {
		return wrapErr("publish entries", err)
	}
	return nil
}

// ListEntries implements broker.ScheduleRegistry.
func (b *Broker) ListEntries(ctx context.Context) ([]broker.ScheduleEntry, error) {
	recs, err := b.regList(ctx, b.registry("schedulers"))
	if err != nil {
		return nil, wrapErr("list entries", err)
	}
	out := []broker.ScheduleEntry{}
	for _, r := range recs {
		var es []broker.ScheduleEntry
		if err := json.Unmarshal([]byte(r), &es); err != nil {
			b.cfg.Logger.WarnContext(ctx, "redis broker: skipping unreadable scheduler record", "err", err)
			continue
		}
		out = append(out, es...)
	}
	broker.SortEntries(out)
	return out, nil
}

// RemoveEntries implements broker.ScheduleRegistry.
func (b *Broker) RemoveEntries(ctx context.Context, id string) error {
	if err := b.regRemove(ctx, b.registry("schedulers"), id); err != nil {
		return wrapErr("remove entries", err)
	}
	return nil
}
