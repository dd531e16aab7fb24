package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Workflows across slots: the mover and the forwarder.
//
// A workflow lives in one home shard (its first step's queue, in the shard
// of its ID), and every transition of it is a script in that slot. A step
// whose queue is another (a foreign step) has its task in another slot,
// which those scripts cannot touch on Redis Cluster; standalone Redis goes
// through the same path (nothing here tells the two apart).
//
//   - Start: the script that starts a foreign step (wf_create, or the
//     settle that finished its inputs) writes an order into the home
//     shard's wfoutbox, atomically with the rest of that step
//     (workflow.lua wfStart). The mover reads orders (HSCAN), applies them
//     in their target shard (wf_xapply.lua: enqueue, idempotent by the
//     step's link, remembered in wfmoved), then drops each order from the
//     outbox if it is unchanged (wf_xdone.lua). At-least-once moves and an
//     idempotent enqueue make each step enqueued once.
//   - End: the foreign task is an ordinary task of its queue (leases,
//     retries, fencing tokens as any) whose wfsteps entry is a foreign
//     link. The settle script that ends it (complete, fail dead, cancel,
//     delete, recover, requeue of a cancelled task) records the end in its
//     own shard's wfevents, in the same script and fenced like the settle
//     itself. The forwarder reads events, applies them in the home shard
//     (wf_xevents.lua, the same step-end logic as a local step; a step
//     already finished ignores a repeated event), then deletes them.
//   - Cancel and failure: the home script that finishes the workflow
//     cancels a foreign step still in the outbox at once (its order
//     becomes one that stores the task dead) and sends a cancel order for
//     one already moved; that task's end comes back as an event.
//
// Both run right after the call that left work (Complete, Fail, Requeue,
// CancelTask, DeleteTask, CreateWorkflow, CancelWorkflow: their script says
// so in its reply) in that call, and in a background loop every
// Config.CrossSlotPoll over every shard, which finishes what a process that
// died between the two left behind. A foreign step thus costs a few more
// round trips at its start and its end (one pass: two HSCANs, one script
// in each slot, one cleanup), and up to CrossSlotPoll after a crash.

// xslotScan is the COUNT of one pass's HSCAN of an outbox or event hash.
const xslotScan = 200

// xslotRounds bounds the passes one run makes while passes find more work.
const xslotRounds = 16

// xslot is the background part: a loop that polls every shard and runs
// passes for shards hinted by calls whose inline pass failed.
type xslot struct {
	mu    sync.Mutex
	hints map[string]bool
	all   bool // a full pass is wanted (after Recover)
	kick  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

// startXSlot starts the background loop unless Config.CrossSlotPoll is
// negative.
func (b *Broker) startXSlot() {
	if b.cfg.CrossSlotPoll < 0 {
		return
	}
	x := &xslot{hints: map[string]bool{}, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	b.xs = x
	go b.xslotLoop(x)
}

func (x *xslot) close() {
	close(x.stop)
	<-x.done
}

// hint asks the loop for a pass on tags (all shards if all).
func (x *xslot) hint(all bool, tags ...string) {
	x.mu.Lock()
	for _, t := range tags {
		x.hints[t] = true
	}
	x.all = x.all || all
	x.mu.Unlock()
	select {
	case x.kick <- struct{}{}:
	default:
	}
}

func (b *Broker) xslotLoop(x *xslot) {
	defer close(x.done)
	tick := time.NewTicker(b.cfg.CrossSlotPoll)
	defer tick.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-x.stop
		cancel()
	}()
	for {
		all := false
		select {
		case <-x.stop:
			return
		case <-tick.C:
			all = true
		case <-x.kick:
		}
		x.mu.Lock()
		var tags []string
		for t := range x.hints {
			tags = append(tags, t)
		}
		all = all || x.all
		x.hints, x.all = map[string]bool{}, false
		x.mu.Unlock()
		pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
		var err error
		if all {
			err = b.MoveCrossSlot(pctx)
		} else {
			err = b.runXSlot(pctx, tags)
		}
		pcancel()
		if err != nil && ctx.Err() == nil {
			b.cfg.Logger.Debug("redis broker: cross-slot workflow pass", "err", err)
			x.hint(false, tags...)
		}
	}
}

// crossSlot runs the mover and the forwarder on tags now, in the caller's
// call (after a settle whose script left work there). Its errors are not
// the caller's: the work stays stored, for the background loop.
func (b *Broker) crossSlot(ctx context.Context, tags []string) {
	if b.xs == nil || len(tags) == 0 {
		return
	}
	if err := b.runXSlot(ctx, tags); err != nil {
		b.xs.hint(false, tags...)
	}
}

// MoveCrossSlot runs the mover and the forwarder over every shard of
// every known queue until they find nothing to do (or xslotRounds passes):
// what the background loop does every Config.CrossSlotPoll. A broker with
// CrossSlotPoll negative runs them only when this is called.
func (b *Broker) MoveCrossSlot(ctx context.Context) error {
	if err := b.check(); err != nil {
		return err
	}
	queues, err := b.knownQueues(ctx)
	if err != nil {
		return err
	}
	shardMap, err := b.shardMap(ctx)
	if err != nil {
		return wrapErr("cross-slot pass", err)
	}
	var tags []string
	for _, q := range queues {
		set := shardMap[q]
		for i := range set.count() {
			tags = append(tags, set.tag(q, i))
		}
	}
	return b.runXSlot(ctx, tags)
}

func (b *Broker) runXSlot(ctx context.Context, tags []string) error {
	for round := 0; len(tags) > 0 && round < xslotRounds; round++ {
		next, err := b.xslotPass(ctx, tags)
		if err != nil {
			return err
		}
		tags = next
	}
	return nil
}

type xOrder struct{ home, id, val string }

type xEvent struct {
	shard, field string // where it is stored
	home         string
	args         []any // link, how, attempts, message, result, alt
}

// xslotPass reads the outboxes and event hashes of tags, applies what it
// found, and returns the shards that have (or may have) more work.
func (b *Broker) xslotPass(ctx context.Context, tags []string) ([]string, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	type scan struct{ out, ev *goredis.ScanCmd }
	scans := make([]scan, len(tags))
	if _, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, tag := range tags {
			keys := b.queueKeys(tag)
			scans[i] = scan{p.HScan(ctx, keys[kWfOutbox], 0, "", xslotScan), p.HScan(ctx, keys[kWfEvents], 0, "", xslotScan)}
		}
		return nil
	}); err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	next := map[string]bool{}
	byTarget := map[string][]xOrder{}
	byHome := map[string][]xEvent{}
	var firstErr error
	for i, tag := range tags {
		kv, cur, err := scans[i].out.Result()
		if err == nil {
			if cur != 0 {
				next[tag] = true
			}
			for k := 0; k+1 < len(kv); k += 2 {
				val := kv[k+1]
				f, e := splitFields(val[min(1, len(val)):])
				if e != nil || len(f) < 3 {
					err = fmt.Errorf("%w: outbox order of %s: %q", errCorrupt, kv[k], val)
					continue
				}
				byTarget[f[0]] = append(byTarget[f[0]], xOrder{home: tag, id: kv[k], val: val})
			}
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
		kv, cur, err = scans[i].ev.Result()
		if err == nil {
			if cur != 0 {
				next[tag] = true
			}
			for k := 0; k+1 < len(kv); k += 2 {
				ev, e := parseXEvent(tag, kv[k], kv[k+1])
				if e != nil {
					err = e
					continue
				}
				byHome[ev.home] = append(byHome[ev.home], ev)
			}
		}
		if err != nil && firstErr == nil {
			firstErr = err
		}
	}
	now := b.cfg.Clock.Now()
	nowMs, nowNs := strconv.FormatInt(millis(now), 10), strconv.FormatInt(nanos(now), 10)

	// Moves: one wf_xapply per target shard, then one wf_xdone per home
	// shard for the orders applied.
	if len(byTarget) > 0 {
		var calls []*scriptCall
		var groups [][]xOrder
		var targets []string
		for target, os := range byTarget {
			args := []any{nowMs, nowNs}
			for _, o := range os {
				args = append(args, o.id, o.val)
			}
			calls = append(calls, &scriptCall{script: scriptWfXApply, keys: b.keysFor(scriptWfXApply, target), args: args})
			groups = append(groups, os)
			targets = append(targets, target)
		}
		if err := b.runScripts(ctx, calls, nil); err != nil {
			return nil, err
		}
		done := map[string][]any{}
		for ci, c := range calls {
			res, err := c.cmd.Int64Slice()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			if len(res) > 0 && res[0] == 1 {
				next[targets[ci]] = true
			}
			for _, o := range groups[ci] {
				done[o.home] = append(done[o.home], o.id, o.val)
			}
		}
		calls = calls[:0]
		var homes []string
		for home, args := range done {
			calls = append(calls, &scriptCall{script: scriptWfXDone, keys: b.keysFor(scriptWfXDone, home), args: args})
			homes = append(homes, home)
		}
		if len(calls) > 0 {
			if err := b.runScripts(ctx, calls, nil); err != nil {
				return nil, err
			}
			for ci, c := range calls {
				left, err := c.cmd.Int64()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if left > 0 {
					next[homes[ci]] = true
				}
			}
		}
	}

	// Events: one wf_xevents per home shard, then the events applied are
	// deleted where they are stored.
	if len(byHome) > 0 {
		var calls []*scriptCall
		var groups [][]xEvent
		var homes []string
		for home, evs := range byHome {
			args := []any{nowNs, nowMs}
			for _, ev := range evs {
				args = append(args, ev.args...)
			}
			calls = append(calls, &scriptCall{script: scriptWfXEvents, keys: b.keysFor(scriptWfXEvents, home), args: args})
			groups = append(groups, evs)
			homes = append(homes, home)
		}
		if err := b.runScripts(ctx, calls, nil); err != nil {
			return nil, err
		}
		applied := map[string][]string{}
		for ci, c := range calls {
			left, err := c.cmd.Int64()
			if err != nil {
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			if left > 0 {
				next[homes[ci]] = true
			}
			for _, ev := range groups[ci] {
				applied[ev.shard] = append(applied[ev.shard], ev.field)
			}
		}
		if len(applied) > 0 {
			// An event deleted by a pass that lost this race was applied
			// too: deleting it twice is harmless, and one stored after
			// the apply can only be a later end of a finished step.
			if _, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for shard, fields := range applied {
					p.HDel(ctx, b.queueKeys(shard)[kWfEvents], fields...)
				}
				return nil
			}); err != nil && firstErr == nil {
				firstErr = err
			}
		}
	}
	out := make([]string, 0, len(next))
	for t := range next {
		out = append(out, t)
	}
	if firstErr != nil {
		return out, wrapErr("cross-slot pass", firstErr)
	}
	return out, nil
}

// parseXEvent reads an event stored in shard: field the foreign link
// "@<step>,<handle>,<len>:<home tag><workflow ID>", value the fields how,
// attempts, message, result, alt.
func parseXEvent(shard, field, val string) (xEvent, error) {
	bad := func() (xEvent, error) {
		return xEvent{}, fmt.Errorf("%w: workflow event %q in %s", errCorrupt, field, shard)
	}
	rest, ok := strings.CutPrefix(field, "@")
	if !ok {
		return bad()
	}
	step, rest, ok1 := strings.Cut(rest, ",")
	handle, rest, ok2 := strings.Cut(rest, ",")
	ln, rest, ok3 := strings.Cut(rest, ":")
	n, err := strconv.Atoi(ln)
	if !ok1 || !ok2 || !ok3 || err != nil || n < 0 || n > len(rest) {
		return bad()
	}
	home, wfid := rest[:n], rest[n:]
	f, err := splitFields(val)
	if err != nil || len(f) != 5 {
		return bad()
	}
	return xEvent{shard: shard, field: field, home: home,
		args: []any{step + "," + handle + "," + wfid, f[0], f[1], f[2], f[3], f[4]}}, nil
}

// tagQueue is the queue of a shard's hash tag (shardTag).
func tagQueue(tag string) string {
	q, _, _ := strings.Cut(tag, "{")
	return q
}
