package redis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/groupcommit"
	"github.com/conqhq/conq/queue/broker"
)

// Enqueue stores tasks. Tasks are grouped by shard (queue, and in a
// sharded queue the shard of their ID) and sent in script calls of up to
// BatchSize tasks, all in one pipeline together with the SADD that
// registers the queues; on a cluster go-redis sends each node its part of
// the pipeline at once. Tasks without an ID get a random one; a zero
// EnqueuedAt becomes now. Their State is set to what they were stored as,
// their Shard to where.
//
// Concurrent calls are combined (group commit, internal/groupcommit): a
// lone call is sent at once, with its caller's ctx; calls that find one on
// its way wait and go together, up to BatchSize tasks, each still decided
// as if alone (a task ID that two of them enqueue is stored once, the
// other gets ErrTaskIDConflict). Everything a call sets on its tasks, and
// their messages, are done in the caller's goroutine before it is sent, so
// a caller whose ctx ends while it waits may use its tasks at once.
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
	req := &enqueueReq{}
	var lastQ string
	var lastSet *shardSet
	var seen map[string]bool // per shard tag and ID: "<tag>\x00<id>"
	if len(tasks) > 1 {
		seen = make(map[string]bool, len(tasks))
	}
	for i, t := range tasks {
		if t == nil {
			errs[i], failed = fmt.Errorf("%w: nil task", errInvalidArg), true
			continue
		}
		if err := validQueue(t.Queue); err != nil {
			errs[i], failed = err, true
			continue
		}
		if t.Queue != lastQ || lastSet == nil {
			set, err := b.ensureShards(ctx, t.Queue)
			if err != nil {
				return wrapErr("enqueue", err)
			}
			lastQ, lastSet = t.Queue, set
			if !slices.Contains(req.queues, t.Queue) {
				req.queues = append(req.queues, t.Queue)
			}
		}
		if t.ID == "" {
			t.ID = newID()
		}
		tag := t.Queue
		t.Shard = 0
		if n := lastSet.count(); n > 1 {
			t.Shard = shardOf(t.ID, n)
			tag = lastSet.tag(t.Queue, t.Shard)
		}
		if t.EnqueuedAt.IsZero() {
			t.EnqueuedAt = now
		}
		// Duplicates within one call: the first wins.
		if seen != nil {
			k := tag + "\x00" + t.ID
			if seen[k] {
				errs[i], failed = fmt.Errorf("%w: %s in queue %s (twice in one call)", broker.ErrTaskIDConflict, t.ID, t.Queue), true
				continue
			}
			seen[k] = true
		}
		it := enqueueItem{task: i, tag: tag, id: t.ID, queue: t.Queue}
		if t.ProcessAt.After(now) {
			t.State = broker.StateScheduled
			it.sched = true
			it.meta = newMeta(t, broker.StateScheduled)
			it.score = strconv.FormatInt(millis(t.ProcessAt), 10)
		} else {
			t.State = broker.StatePending
		}
		it.msg = encodeMsg(t)
		req.items = append(req.items, it)
	}
	if len(req.items) > 0 {
		res, err := b.enqueues.Do(ctx, req)
		switch {
		case errors.Is(err, groupcommit.ErrClosed):
			return broker.ErrClosed
		case err != nil:
			return wrapErr("enqueue", err)
		case res.err != nil:
			return wrapErr("enqueue", res.err)
		}
		for k, e := range res.errs {
			if e != nil {
				errs[req.items[k].task], failed = e, true
			}
		}
	}
	if failed {
		return &broker.BatchError{Errs: errs}
	}
	return nil
}

// An enqueueReq is one Enqueue call's tasks, ready to send: what the group
// commit (newEnqueuer) combines.
type enqueueReq struct {
	items  []enqueueItem
	queues []string // to register
}

type enqueueItem struct {
	task      int // position in the caller's tasks
	tag       string
	id, queue string
	msg       []byte
	sched     bool // scheduled: meta and score are its zset entry
	meta      string
	score     string
}

// enqueueRes is the outcome of a request: err for the whole of it, else
// one error (or nil) per item.
type enqueueRes struct {
	err  error
	errs []error
}

// newEnqueuer is the group commit of b's Enqueue calls: batches of up to
// BatchSize tasks (a larger call goes alone).
func newEnqueuer(b *Broker) *groupcommit.Group[*enqueueReq, enqueueRes] {
	return &groupcommit.Group[*enqueueReq, enqueueRes]{
		Run:       b.enqueueBatch,
		MaxBatch:  256,
		Weight:    func(r *enqueueReq) int { return len(r.items) },
		MaxWeight: b.cfg.BatchSize,
	}
}

// enqueueBatch sends the requests' items in enqueue script calls of up to
// BatchSize tasks a shard, all in one pipeline, and answers each request.
func (b *Broker) enqueueBatch(ctx context.Context, reqs []*enqueueReq) []enqueueRes {
	out := make([]enqueueRes, len(reqs))
	for i, r := range reqs {
		out[i].errs = make([]error, len(r.items))
	}
	// Items by shard, in the order given; an ID that an earlier request
	// of the batch enqueues in the same shard is a conflict (Redis would
	// have refused the later call).
	type ref struct{ req, item int }
	type group struct {
		tag  string
		refs []ref
	}
	var groups []*group
	byTag := map[string]*group{}
	var seen map[string]bool
	if len(reqs) > 1 {
		seen = map[string]bool{}
	}
	var queues []string
	for ri, r := range reqs {
		for _, q := range r.queues {
			if !slices.Contains(queues, q) {
				queues = append(queues, q)
			}
		}
		for k := range r.items {
			it := &r.items[k]
			if seen != nil {
				key := it.tag + "\x00" + it.id
				if seen[key] {
					out[ri].errs[k] = fmt.Errorf("%w: %s in queue %s", broker.ErrTaskIDConflict, it.id, it.queue)
					continue
				}
				seen[key] = true
			}
			g := byTag[it.tag]
			if g == nil {
				g = &group{tag: it.tag}
				byTag[it.tag] = g
				groups = append(groups, g)
			}
			g.refs = append(g.refs, ref{ri, k})
		}
	}
	var calls []*scriptCall
	var callRefs [][]ref
	for _, g := range groups {
		keys := b.keysFor(scriptEnqueue, g.tag)
		for start := 0; start < len(g.refs); start += b.cfg.BatchSize {
			chunk := g.refs[start:min(start+b.cfg.BatchSize, len(g.refs))]
			// ARGV: count of pending tasks, their (id, msg) pairs, then
			// (id, msg, meta, score) per scheduled task; the reply follows
			// the same order.
			args := make([]any, 1, 1+2*len(chunk))
			order := make([]ref, 0, len(chunk))
			var sched []ref
			for _, x := range chunk {
				it := &reqs[x.req].items[x.item]
				if it.sched {
					sched = append(sched, x)
					continue
				}
				args = append(args, it.id, it.msg)
				order = append(order, x)
			}
			args[0] = len(order)
			for _, x := range sched {
				it := &reqs[x.req].items[x.item]
				args = append(args, it.id, it.msg, it.meta, it.score)
			}
			calls = append(calls, &scriptCall{script: scriptEnqueue, keys: keys, args: args})
			callRefs = append(callRefs, append(order, sched...))
		}
	}
	if len(calls) == 0 {
		return out
	}
	whole := func(err error) []enqueueRes {
		for i := range out {
			out[i] = enqueueRes{err: err}
		}
		return out
	}
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
		return whole(err)
	}
	if err := allFailed(calls); err != nil {
		return whole(err)
	}
	for ci, c := range calls {
		res, err := c.cmd.Int64Slice()
		if err == nil && len(res) != len(callRefs[ci]) {
			err = fmt.Errorf("%w: enqueue reply has %d items, want %d", errCorrupt, len(res), len(callRefs[ci]))
		}
		for k, x := range callRefs[ci] {
			it := &reqs[x.req].items[x.item]
			switch {
			case err != nil:
				// The whole call failed: none of its tasks is stored.
				out[x.req].errs[x.item] = wrapErr("enqueue", err)
			case res[k] == 1:
				out[x.req].errs[x.item] = fmt.Errorf("%w: %s in queue %s", broker.ErrTaskIDConflict, it.id, it.queue)
			case c.notReplicated != nil:
				out[x.req].errs[x.item] = fmt.Errorf("enqueue %s in queue %s: %w", it.id, it.queue, c.notReplicated)
			}
		}
	}
	return out
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
