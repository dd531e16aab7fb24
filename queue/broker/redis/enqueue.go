package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
)

// Enqueue stores tasks. Tasks are grouped by shard (queue, and in a
// sharded queue the shard of their ID) and sent in script calls of up to
// BatchSize tasks, all in one pipeline together with the SADD that
// registers the queues; on a cluster go-redis sends each node its part of
// the pipeline at once. Tasks without an ID get a random one; a zero
// EnqueuedAt becomes now. Their State is set to what they were stored as,
// their Shard to where.
func (b *Broker) Enqueue(ctx context.Context, tasks ...*broker.Task) error {
	if err := b.check(); err != nil {
		return err
	}
	if len(tasks) == 0 {
		return nil
	}
	now := b.cfg.Clock.Now()
	errs := make([]error, len(tasks))
	failed := false

	type group struct {
		tag string
		idx []int
	}
	var groups []*group
	byTag := make(map[string]*group)
	var queues []string
	var lastQ string
	var lastSet *shardSet
	for i, t := range tasks {
		if t == nil {
			errs[i], failed = fmt.Errorf("%w: nil task", errInvalidArg), true
			continue
		}
		if err := validQueue(t.Queue); err != nil {
			errs[i], failed = err, true
			continue
		}
		if t.Queue != lastQ || len(queues) == 0 {
			set, err := b.ensureShards(ctx, t.Queue)
			if err != nil {
				return wrapErr("enqueue", err)
			}
			lastQ, lastSet = t.Queue, set
			if !slices.Contains(queues, t.Queue) {
				queues = append(queues, t.Queue)
			}
		}
		tag := t.Queue
		t.Shard = 0
		if n := lastSet.count(); n > 1 {
			if t.ID == "" {
				t.ID = newID()
			}
			t.Shard = shardOf(t.ID, n)
			tag = lastSet.tag(t.Queue, t.Shard)
		}
		g := byTag[tag]
		if g == nil {
			g = &group{tag: tag}
			byTag[tag] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}

	var calls []*scriptCall
	var callIdx [][]int
	for _, g := range groups {
		keys := b.keysFor(scriptEnqueue, g.tag)
		// Duplicates within one call: the first wins. Later chunks see
		// earlier ones in Redis; within a chunk the script would not.
		var seen map[string]bool
		if len(g.idx) > 1 {
			seen = make(map[string]bool, len(g.idx))
		}
		for start := 0; start < len(g.idx); start += b.cfg.BatchSize {
			idx := g.idx[start:min(start+b.cfg.BatchSize, len(g.idx))]
			// ARGV: count of pending tasks, their (id, msg) pairs, then
			// (id, msg, meta, score) per scheduled task; the reply follows
			// the same order.
			args := make([]any, 1, 1+2*len(idx))
			pend := make([]int, 0, len(idx))
			var sched []int
			for _, i := range idx {
				t := tasks[i]
				if t.ID == "" {
					t.ID = newID()
				}
				if t.EnqueuedAt.IsZero() {
					t.EnqueuedAt = now
				}
				if seen != nil {
					if seen[t.ID] {
						errs[i], failed = fmt.Errorf("%w: %s in queue %s (twice in one call)", broker.ErrTaskIDConflict, t.ID, t.Queue), true
						continue
					}
					seen[t.ID] = true
				}
				if t.ProcessAt.After(now) {
					t.State = broker.StateScheduled
					sched = append(sched, i)
				} else {
					t.State = broker.StatePending
					pend = append(pend, i)
					args = append(args, t.ID, encodeMsg(t))
				}
			}
			args[0] = len(pend)
			for _, i := range sched {
				t := tasks[i]
				args = append(args, t.ID, encodeMsg(t), newMeta(t, broker.StateScheduled), strconv.FormatInt(millis(t.ProcessAt), 10))
			}
			if len(pend)+len(sched) == 0 {
				continue
			}
			calls = append(calls, &scriptCall{script: scriptEnqueue, keys: keys, args: args})
			callIdx = append(callIdx, append(pend, sched...))
		}
	}
	if len(calls) > 0 {
		var sadd *goredis.IntCmd
		var pre func(goredis.Pipeliner)
		reg := b.toRegister(queues)
		if len(reg) > 0 {
			pre = func(p goredis.Pipeliner) { sadd = p.SAdd(ctx, queuesKey(b.cfg.Prefix), reg...) }
		}
		err := b.runScriptsAcked(ctx, calls, pre)
		if err == nil && sadd != nil {
			err = sadd.Err()
		}
		if err != nil {
			b.forgetRegistered(reg)
			return wrapErr("enqueue", err)
		}
		if err := allFailed(calls); err != nil {
			return wrapErr("enqueue", err)
		}
		for ci, c := range calls {
			res, err := c.cmd.Int64Slice()
			if err == nil && len(res) != len(callIdx[ci]) {
				err = fmt.Errorf("%w: enqueue reply has %d items, want %d", errCorrupt, len(res), len(callIdx[ci]))
			}
			if err != nil {
				// The whole call failed: none of its tasks is stored.
				for _, i := range callIdx[ci] {
					errs[i], failed = wrapErr("enqueue", err), true
				}
				continue
			}
			for k, r := range res {
				i := callIdx[ci][k]
				switch {
				case r == 1:
					errs[i], failed = fmt.Errorf("%w: %s in queue %s", broker.ErrTaskIDConflict, tasks[i].ID, tasks[i].Queue), true
				case c.notReplicated != nil:
					errs[i], failed = fmt.Errorf("enqueue %s in queue %s: %w", tasks[i].ID, tasks[i].Queue, c.notReplicated), true
				}
			}
		}
	}
	if failed {
		return &broker.BatchError{Errs: errs}
	}
	return nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
