package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
)

// Replica acknowledgement (Config.WaitReplicas). Redis replicates
// asynchronously: a master can acknowledge a write and die before any
// replica has it, and the replica promoted in its place never had it. WAIT
// closes that gap for the writes sent on the same connection before it,
// so the scripts that store tasks and the WAIT go in one pipeline on one
// connection to the master that ran them:
//
//   - one server or Sentinel: a go-redis Client pipeline is one
//     connection, so the scripts and WAIT go in one pipeline;
//   - Redis Cluster: WAIT has no key, and a cluster pipeline would send it
//     to some node, so the calls are grouped by the master of their slot
//     and each group runs as its own pipeline on that master, with WAIT
//     at the end. A call answered MOVED or ASK did not run: it is sent
//     again after the slot map is reloaded.

// runScriptsAcked is runScripts followed by WAIT on every connection that
// ran a call, when Config.WaitReplicas > 0. A call that ran but was not
// confirmed by enough replicas gets notReplicated set.
func (b *Broker) runScriptsAcked(ctx context.Context, calls []*scriptCall, pre func(goredis.Pipeliner)) error {
	n := b.cfg.WaitReplicas
	if n <= 0 || len(calls) == 0 {
		return b.runScripts(ctx, calls, pre)
	}
	if b.cluster == nil {
		return b.runWaitPipeline(ctx, b.rdb, calls, pre, 0)
	}
	if pre != nil {
		// The registry of queues is not a task: not waited for.
		if _, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error { pre(p); return nil }); err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
	}
	todo := calls
	for attempt := 0; len(todo) > 0; attempt++ {
		groups := map[*goredis.Client][]*scriptCall{}
		var order []*goredis.Client
		for _, c := range todo {
			node, err := b.cluster.MasterForKey(ctx, c.keys[0])
			if err != nil {
				c.cmd = goredis.NewCmd(ctx)
				c.cmd.SetErr(err)
				continue
			}
			if _, ok := groups[node]; !ok {
				order = append(order, node)
			}
			groups[node] = append(groups[node], c)
		}
		var wg sync.WaitGroup
		for _, node := range order {
			// A call sent again after a redirect goes to a node that may
			// lack its script: as a re-run (EVAL, or FCALL after a load).
			wg.Go(func() { _ = b.runWaitPipeline(ctx, node, groups[node], nil, min(attempt, 1)) })
		}
		wg.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var again []*scriptCall
		stale := false
		for _, c := range todo {
			if c.cmd != nil && redirected(c.cmd.Err()) {
				again = append(again, c)
			}
			if c.cmd != nil && staleMap(c.cmd.Err()) {
				stale = true
			}
		}
		if stale {
			// A master is gone: the node pipelines bypass the cluster
			// client's hook, so ask for a new slot map here.
			b.cluster.ReloadState(ctx)
		}
		if len(again) == 0 || attempt >= 3 {
			break
		}
		// The slot moved (a failover or a reshard): reload the map and
		// send those calls to the new owner.
		b.cluster.ReloadState(ctx)
		t := time.NewTimer(time.Duration(attempt+1) * 100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		todo = again
	}
	return nil
}

// runWaitPipeline runs calls (FCALL, or EVALSHA, EVAL on a re-run:
// functions.go) and then WAIT in one pipeline of c, a client whose
// pipelines use one connection. Calls that meet a server without their
// function or script run again, followed by their own WAIT: after the
// library is loaded on c, or with EVAL; rerun counts the runs before this
// one, up to 2 (a function may be flushed again between load and call).
func (b *Broker) runWaitPipeline(ctx context.Context, c goredis.Cmdable, calls []*scriptCall, pre func(goredis.Pipeliner), rerun int) error {
	var wait *goredis.IntCmd
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if pre != nil {
			pre(p)
		}
		for _, sc := range calls {
			sc.cmd = b.queueScript(ctx, p, sc.script, sc.keys, sc.args, rerun > 0)
		}
		// Pipeliner has no Wait: the command by hand. Its reply comes
		// within WaitTimeout, inside the client's read timeout.
		wait = goredis.NewIntCmd(ctx, "wait", b.cfg.WaitReplicas, b.cfg.WaitTimeout.Milliseconds())
		_ = p.Process(ctx, wait)
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	var missing []*scriptCall
	for _, sc := range calls {
		if err := sc.cmd.Err(); notRun(err) {
			if noFunctionSupport(err) {
				b.fallBack(ctx, err)
			}
			missing = append(missing, sc)
		}
	}
	b.markReplicated(calls, wait)
	if len(missing) > 0 && rerun < 2 {
		if b.functions() {
			if err := loadLibraryOn(ctx, c); noFunctionSupport(err) {
				b.fallBack(ctx, err) // the re-run is EVAL
			} else if err != nil {
				b.cfg.Logger.WarnContext(ctx, "redis broker: loading the script library failed", "err", err)
			}
		}
		return b.runWaitPipeline(ctx, c, missing, nil, rerun+1)
	}
	return nil
}

// markReplicated flags the calls that ran when WAIT reports fewer replicas
// than asked (or failed).
func (b *Broker) markReplicated(calls []*scriptCall, wait *goredis.IntCmd) {
	got, err := wait.Result()
	if err == nil && int(got) >= b.cfg.WaitReplicas {
		return
	}
	var e error
	if err != nil {
		e = fmt.Errorf("%w: WAIT %d failed: %v", broker.ErrNotReplicated, b.cfg.WaitReplicas, err)
	} else {
		e = fmt.Errorf("%w: %d of %d replicas confirmed within %v", broker.ErrNotReplicated, got, b.cfg.WaitReplicas, b.cfg.WaitTimeout)
	}
	for _, sc := range calls {
		if sc.cmd.Err() == nil {
			sc.notReplicated = e
		}
	}
}

// redirected reports a MOVED or ASK reply: the call did not run there.
func redirected(err error) bool {
	if err == nil {
		return false
	}
	msg := err.Error()
	return strings.HasPrefix(msg, "MOVED ") || strings.HasPrefix(msg, "ASK ")
}
