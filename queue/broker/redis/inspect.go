package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
)

// GetTask reads a task atomically (one script call per shard). With queue
// "" it asks every known queue; every shard of every queue asked goes in
// one pipeline, so a sharded queue costs one round trip too.
func (b *Broker) GetTask(ctx context.Context, queue, id string) (*broker.Task, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	var queues []string
	if queue != "" {
		if err := validQueue(queue); err != nil {
			return nil, err
		}
		queues = []string{queue}
	} else {
		qs, err := b.sortedQueues(ctx)
		if err != nil {
			return nil, err
		}
		queues = qs
	}
	found, err := b.readTasks(ctx, queues, []string{id})
	if err != nil {
		return nil, wrapErr("get task", err)
	}
	if w := found[0]; w.queue != "" {
		return w.t, w.err
	}
	if queue == "" {
		return nil, fmt.Errorf("%w: %s", broker.ErrTaskNotFound, id)
	}
	return nil, fmt.Errorf("%w: %s in queue %s", broker.ErrTaskNotFound, id, queue)
}

// sortedQueues is knownQueues, sorted: the order in which lookups on
// every queue look.
func (b *Broker) sortedQueues(ctx context.Context) ([]string, error) {
	qs, err := b.knownQueues(ctx)
	slices.Sort(qs)
	return qs, err
}

// AwaitTask waits for the task to finish. Waits on one unsharded queue
// share the broker's poller (await.go), and so do waits on every queue
// (queue "") for a task found in one (awaitAnyQueue); the others poll
// GetTask with a backoff from 1 ms to 100 ms (pollTask): cheap for Redis,
// and tasks that finish fast are seen fast.
func (b *Broker) AwaitTask(ctx context.Context, queue, id string) (*broker.Task, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	if queue != "" {
		if err := validQueue(queue); err != nil {
			return nil, err
		}
		set, err := b.shardsOf(ctx, queue)
		if err != nil {
			return nil, wrapErr("await task", err)
		}
		if set.count() <= 1 && awaitShared {
			return b.awaits.await(ctx, queue, id)
		}
	} else if awaitShared {
		var t *broker.Task
		var terr error
		if err := b.awaitAnyQueue(ctx, []string{id}, func(_ int, x *broker.Task, err error) { t, terr = x, err }); err != nil {
			return nil, err
		}
		return t, terr
	}
	return b.pollTask(ctx, queue, id)
}

// pollTask waits for the task to finish by reading it with GetTask, at
// intervals doubling from 1 ms to 100 ms.
func (b *Broker) pollTask(ctx context.Context, queue, id string) (*broker.Task, error) {
	delay := time.Millisecond
	for {
		t, err := b.GetTask(ctx, queue, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if t.State == broker.StateCompleted || t.State == broker.StateDead {
			return t, nil
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// AwaitTasks implements broker.Broker. The tasks of one unsharded queue
// share the broker's poller as many waiters of one call (await.go); with
// queue "" each ID's queue is found first (awaitAnyQueue); the tasks of a
// sharded queue wait as AwaitTask does, on a goroutine each.
func (b *Broker) AwaitTasks(ctx context.Context, p broker.AwaitParams, done func(int, *broker.Task, error)) error {
	if err := b.check(); err != nil {
		return err
	}
	if len(p.IDs) == 0 {
		return nil
	}
	if p.Queue != "" {
		if err := validQueue(p.Queue); err != nil {
			return err
		}
		set, err := b.shardsOf(ctx, p.Queue)
		if err != nil {
			return wrapErr("await tasks", err)
		}
		if set.count() <= 1 && awaitShared {
			return b.awaits.awaitMany(ctx, p.Queue, p.IDs, done)
		}
	} else if awaitShared {
		return b.awaitAnyQueue(ctx, p.IDs, done)
	}
	type answer struct {
		i   int
		t   *broker.Task
		err error
	}
	ch := make(chan answer, len(p.IDs))
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, id := range p.IDs {
		go func() {
			t, err := b.pollTask(wctx, p.Queue, id)
			ch <- answer{i, t, err}
		}()
	}
	for range p.IDs {
		select {
		case a := <-ch:
			if a.err != nil && ctx.Err() != nil {
				return ctx.Err()
			}
			done(a.i, a.t, a.err)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Queues lists known queues, sorted by name, with their counts: one
// pipeline of LLEN, ZCOUNT and EXISTS over every shard of every queue.
// A sharded queue's counts are the sums over its shards, with the detail
// in QueueInfo.Shards.
func (b *Broker) Queues(ctx context.Context) ([]broker.QueueInfo, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	qs, err := b.knownQueues(ctx)
	if err != nil {
		return nil, err
	}
	shardMap, err := b.shardMap(ctx)
	if err != nil {
		return nil, wrapErr("queues", err)
	}
	slices.Sort(qs)
	type counts struct {
		pending *goredis.IntCmd
		zsets   [5]*goredis.IntCmd
		paused  *goredis.IntCmd
	}
	cs := make([][]counts, len(qs))
	_, err = b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, q := range qs {
			set := shardMap[q]
			cs[i] = make([]counts, set.count())
			for j := range cs[i] {
				k := b.queueKeys(set.tag(q, j))
				c := &cs[i][j]
				c.pending = p.LLen(ctx, k[kPending])
				for z, ki := range []int{kScheduled, kActive, kRetry, kDead, kCompleted} {
					// Below +inf: leaves out the sentinel (scripts/common.lua).
					c.zsets[z] = p.ZCount(ctx, k[ki], "-inf", "(+inf")
				}
				c.paused = p.Exists(ctx, k[kPaused])
			}
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("queues", err)
	}
	out := make([]broker.QueueInfo, len(qs))
	for i, q := range qs {
		info := broker.QueueInfo{Name: q, Counts: map[broker.State]int64{}}
		set := shardMap[q]
		for j, c := range cs[i] {
			sc := map[broker.State]int64{
				broker.StatePending:   c.pending.Val(),
				broker.StateScheduled: c.zsets[0].Val(),
				broker.StateActive:    c.zsets[1].Val(),
				broker.StateRetry:     c.zsets[2].Val(),
				broker.StateDead:      c.zsets[3].Val(),
				broker.StateCompleted: c.zsets[4].Val(),
			}
			paused := c.paused.Val() == 1
			info.Paused = info.Paused || paused
			for st, n := range sc {
				info.Counts[st] += n
			}
			if set != nil {
				tag := set.tag(q, j)
				info.Shards = append(info.Shards, broker.ShardInfo{
					Index: j, Tag: tag, Slot: tagSlot(tag), Node: b.nodeOf(ctx, tag), Paused: paused, Counts: sc,
				})
			}
		}
		out[i] = info
	}
	return out, nil
}

// nodeOf is the address of the master serving tag's slot, "" outside a
// cluster.
func (b *Broker) nodeOf(ctx context.Context, tag string) string {
	if b.cluster == nil {
		return ""
	}
	c, err := b.cluster.MasterForKey(ctx, "{"+tag+"}")
	if err != nil {
		return ""
	}
	return c.Options().Addr
}

var stateKey = map[broker.State]int{
	broker.StatePending: kPending, broker.StateScheduled: kScheduled, broker.StateActive: kActive,
	broker.StateRetry: kRetry, broker.StateDead: kDead, broker.StateCompleted: kCompleted,
}

// ListTasks lists a queue's tasks in one state, oldest first: pending in
// FIFO order, the others by their sorted-set score (process time, lease
// expiry, time of death, retention expiry). A sharded queue is listed by
// asking each shard for its first offset+limit tasks and merging them:
// by score, pending tasks by the time they were enqueued (FIFO holds per
// shard only), so deep pages cost O(shards x (offset+limit)).
func (b *Broker) ListTasks(ctx context.Context, p broker.ListParams) ([]*broker.Task, error) {
	queue, state, offset, limit := p.Queue, p.State, p.Offset, p.Limit
	if err := b.check(); err != nil {
		return nil, err
	}
	if err := validQueue(queue); err != nil {
		return nil, err
	}
	ki, ok := stateKey[state]
	if !ok {
		return nil, fmt.Errorf("%w: unknown state %q", errInvalidArg, state)
	}
	if offset < 0 {
		offset = 0
	}
	if limit <= 0 {
		limit = broker.DefaultListLimit
	}
	set, err := b.shardsOf(ctx, queue)
	if err != nil {
		return nil, wrapErr("list tasks", err)
	}
	n := set.count()
	from, count := offset, limit
	if n > 1 {
		from, count = 0, offset+limit
	}
	calls := make([]*scriptCall, n)
	for i := range calls {
		calls[i] = &scriptCall{script: scriptList, keys: b.keysFor(scriptList, set.tag(queue, i)), args: []any{ki + 1, from, count}}
	}
	if err := b.runScripts(ctx, calls, nil); err != nil {
		return nil, wrapErr("list tasks", err)
	}
	type listed struct {
		t     *broker.Task
		score float64
		shard int
	}
	var all []listed
	for shard, c := range calls {
		res, err := c.cmd.Slice()
		if err != nil {
			return nil, wrapErr("list tasks", err)
		}
		for i := 0; i+5 < len(res); i += 6 {
			id, _ := res[i].(string)
			if res[i+1] == nil {
				continue // an ID without record: skip rather than fail the listing
			}
			t, err := decodeTask(queue, id, res[i+1], res[i+2], res[i+3], res[i+4])
			if err != nil {
				return nil, err
			}
			t.Shard = shard
			var score float64
			if ki == kPending {
				score = float64(t.EnqueuedAt.UnixNano())
			} else if sv, ok := res[i+5].(string); ok {
				score, _ = strconv.ParseFloat(sv, 64)
			}
			all = append(all, listed{t, score, shard})
		}
	}
	if n > 1 {
		// Stable: within a shard the order is the shard's own.
		slices.SortStableFunc(all, func(a, b listed) int {
			if c := cmp.Compare(a.score, b.score); c != 0 {
				return c
			}
			return cmp.Compare(a.shard, b.shard)
		})
		all = all[min(offset, len(all)):]
		all = all[:min(limit, len(all))]
	}
	out := make([]*broker.Task, len(all))
	for i, l := range all {
		out[i] = l.t
	}
	return out, nil
}

// DeleteTask deletes a task that is not active.
func (b *Broker) DeleteTask(ctx context.Context, queue, id string) error {
	return b.oneTask(ctx, "delete task", scriptDelete, queue, id)
}

// RetryTask moves a dead, retry or scheduled task to pending now.
func (b *Broker) RetryTask(ctx context.Context, queue, id string) error {
	return b.oneTask(ctx, "retry task", scriptRetry, queue, id)
}

// locate returns the queue and shard tag of task id: given queue's only
// shard, else where GetTask finds it.
func (b *Broker) locate(ctx context.Context, queue, id string) (q, tag string, err error) {
	if queue != "" {
		if err := validQueue(queue); err != nil {
			return "", "", err
		}
		set, err := b.shardsOf(ctx, queue)
		if err != nil {
			return "", "", err
		}
		if set == nil {
			return queue, queue, nil
		}
	}
	t, err := b.GetTask(ctx, queue, id)
	if err != nil {
		return "", "", err
	}
	set, err := b.shardsOf(ctx, t.Queue)
	if err != nil {
		return "", "", err
	}
	return t.Queue, set.tag(t.Queue, t.Shard), nil
}

// oneTask runs a single-task script whose reply is 0, -1 (not found) or -2
// (invalid state) on the task's shard.
func (b *Broker) oneTask(ctx context.Context, op string, s *script, queue, id string) error {
	if err := b.check(); err != nil {
		return err
	}
	queue, tag, err := b.locate(ctx, queue, id)
	if err != nil {
		return err
	}
	now := b.cfg.Clock.Now()
	// The clock, for the scripts that may move a workflow on (delete).
	r, err := b.run(ctx, s, b.keysFor(s, tag), id, strconv.FormatInt(nanos(now), 10), strconv.FormatInt(millis(now), 10)).Int64()
	if err != nil {
		return wrapErr(op, err)
	}
	switch r {
	case 1:
		// Deleted, and the script left cross-slot work (xslot.go).
		b.crossSlot(ctx, []string{tag})
	case -1:
		return fmt.Errorf("%w: %s in queue %s", broker.ErrTaskNotFound, id, queue)
	case -2:
		return fmt.Errorf("%s %s in queue %s: %w", op, id, queue, broker.ErrInvalidState)
	}
	return nil
}

// Pause stops Fetch from taking tasks of queue: the paused flag of every
// shard, set in one pipeline.
func (b *Broker) Pause(ctx context.Context, queue string) error {
	if err := b.check(); err != nil {
		return err
	}
	if err := validQueue(queue); err != nil {
		return err
	}
	set, err := b.ensureShards(ctx, queue)
	if err != nil {
		return wrapErr("pause", err)
	}
	_, err = b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.SAdd(ctx, queuesKey(b.cfg.Prefix), queue)
		for i := range set.count() {
			p.Set(ctx, b.queueKeys(set.tag(queue, i))[kPaused], "1", 0)
		}
		return nil
	})
	if err != nil {
		return wrapErr("pause", err)
	}
	return nil
}

// Resume undoes Pause on every shard and wakes idle workers if tasks wait.
func (b *Broker) Resume(ctx context.Context, queue string) error {
	if err := b.check(); err != nil {
		return err
	}
	if err := validQueue(queue); err != nil {
		return err
	}
	set, err := b.ensureShards(ctx, queue)
	if err != nil {
		return wrapErr("resume", err)
	}
	calls := make([]*scriptCall, set.count())
	for i := range calls {
		calls[i] = &scriptCall{script: scriptResume, keys: b.keysFor(scriptResume, set.tag(queue, i))}
	}
	if err := b.runScripts(ctx, calls, nil); err != nil {
		return wrapErr("resume", err)
	}
	for _, c := range calls {
		if err := c.cmd.Err(); err != nil && !errors.Is(err, goredis.Nil) {
			return wrapErr("resume", err)
		}
	}
	return nil
}

// awaitAnyQueue is AwaitTasks for queue "". One read (readTasks) finds
// each ID where GetTask would, and the tasks found finished are answered
// from it. The others found in an unsharded queue then wait as one call
// per queue on the shared poller; the rest (found in a sharded queue, or
// nowhere yet) are polled (pollTask) on a goroutine each. Without this, a client streaming thousands of
// results without naming their queue (the HTTP API's results:stream, as
// the Python Executor calls it) cost a goroutine, a SMEMBERS and a
// get.lua call per ID per poll.
func (b *Broker) awaitAnyQueue(ctx context.Context, ids []string, done func(int, *broker.Task, error)) error {
	qs, err := b.sortedQueues(ctx)
	if err != nil {
		return err
	}
	found, err := b.readTasks(ctx, qs, ids)
	if err != nil {
		return wrapErr("await tasks", err)
	}
	var (
		mu       sync.Mutex // done is called one call at a time
		answered int
		wg       sync.WaitGroup
	)
	give := func(i int, t *broker.Task, err error) {
		mu.Lock()
		defer mu.Unlock()
		answered++
		done(i, t, err)
	}
	groups := map[string][]int{} // unsharded queue -> indexes into ids
	var alone []int              // the others
	for i, w := range found {
		switch {
		case w.err != nil:
			give(i, nil, w.err)
		case w.t != nil && (w.t.State == broker.StateCompleted || w.t.State == broker.StateDead):
			give(i, w.t, nil)
		case w.queue != "" && !w.sharded:
			groups[w.queue] = append(groups[w.queue], i)
		default:
			alone = append(alone, i)
		}
	}
	for q, idx := range groups {
		qids := make([]string, len(idx))
		for j, i := range idx {
			qids[j] = ids[i]
		}
		wg.Go(func() {
			// Its error is ctx's, seen below.
			_ = b.awaits.awaitMany(ctx, q, qids, func(j int, t *broker.Task, err error) { give(idx[j], t, err) })
		})
	}
	for _, i := range alone {
		wg.Go(func() {
			t, err := b.pollTask(ctx, found[i].queue, ids[i])
			if err != nil && ctx.Err() != nil {
				return // unanswered: ctx ended
			}
			give(i, t, err)
		})
	}
	wg.Wait()
	if answered < len(ids) {
		return ctx.Err()
	}
	return nil
}

// located is where readTasks found an ID (queue "" if nowhere), and the
// task as read there, or the error of decoding it.
type located struct {
	queue   string
	sharded bool
	t       *broker.Task
	err     error
}

// readTasks reads each ID where it is: in the first of queues one of whose
// shards holds it, and in that queue the ID's own shard first (where a
// plain task of this ID is), then the next ones. One pipeline of get.lua
// calls (every shard of every queue, up to awaitBatch IDs each): a lookup
// costs one round trip however many queues and shards it asks.
func (b *Broker) readTasks(ctx context.Context, queues, ids []string) ([]located, error) {
	out := make([]located, len(ids))
	if len(queues) == 0 {
		return out, nil
	}
	shardMap, err := b.shardMap(ctx)
	if err != nil {
		return nil, err
	}
	type part struct {
		queue     string
		shard, of int // of: the queue's number of shards
		from      int // index of the call's first ID
	}
	var calls []*scriptCall
	var parts []part
	for _, q := range queues {
		set := shardMap[q]
		n := set.count()
		for shard := range n {
			keys := b.keysFor(scriptGet, set.tag(q, shard))
			for from := 0; from < len(ids); from += awaitBatch {
				chunk := ids[from:min(from+awaitBatch, len(ids))]
				args := make([]any, len(chunk))
				for k, id := range chunk {
					args[k] = id
				}
				calls = append(calls, &scriptCall{script: scriptGet, keys: keys, args: args})
				parts = append(parts, part{q, shard, n, from})
			}
		}
	}
	if err := b.runScripts(ctx, calls, nil); err != nil {
		return nil, err
	}
	rank := make([]int, len(ids)) // of the shard found, from the ID's own shard
	for ci, c := range calls {
		res, err := c.cmd.Slice()
		if err != nil {
			return nil, err
		}
		p := parts[ci]
		for k := 0; 4*k+3 < len(res); k++ {
			i := p.from + k
			v := res[4*k : 4*k+4]
			if i >= len(out) || v[0] == nil {
				continue
			}
			r := (p.shard - shardOf(ids[i], p.of) + p.of) % p.of
			if out[i].queue != "" && (out[i].queue != p.queue || rank[i] <= r) {
				continue // found in an earlier queue, or a shard before this one
			}
			t, err := decodeTask(p.queue, ids[i], v[0], v[1], v[2], v[3])
			if t != nil {
				t.Shard = p.shard
			}
			out[i], rank[i] = located{queue: p.queue, sharded: p.of > 1, t: t, err: err}, r
		}
	}
	return out, nil
}
