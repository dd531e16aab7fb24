package redis

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Waiting for tasks to finish (AwaitTask). Nothing pushes a task's end to
// its waiters, so it is polled; but one poller per broker serves every
// waiter of the process. Each waiter keeps its own schedule (first read at
// once, then 1 ms doubling to 100 ms, as a lone poller would), and each
// tick reads every waiter that is due in one pipeline of get.lua calls of
// up to awaitBatch IDs. N waiters (an HTTP server streaming ten thousand
// results) cost one round trip per tick instead of N, and Redis runs a few
// scripts instead of N commands.
//
// Waits on every queue (queue "") and on sharded queues (a task may be in
// any shard) keep polling GetTask on their own.

const (
	awaitMin   = time.Millisecond
	awaitMax   = 100 * time.Millisecond
	awaitBatch = 500
	awaitCall  = 10 * time.Second // bound of one tick's pipeline
)

// awaitShared can be turned off by tests and benchmarks, to compare with
// a poller per waiter.
var awaitShared = true

type awaitHub struct {
	b       *Broker
	mu      sync.Mutex
	ws      map[*awaiter]struct{}
	running bool
	wake    chan struct{} // cap 1: a waiter was added
}

type awaiter struct {
	queue, id string
	next      time.Time
	delay     time.Duration
	done      chan awaitResult // cap 1, sent once, by the poller
}

type awaitResult struct {
	t   *broker.Task
	err error
}

func newAwaitHub(b *Broker) *awaitHub {
	return &awaitHub{b: b, ws: map[*awaiter]struct{}{}, wake: make(chan struct{}, 1)}
}

// await waits for one task of an unsharded queue.
func (h *awaitHub) await(ctx context.Context, queue, id string) (*broker.Task, error) {
	w := &awaiter{queue: queue, id: id, next: time.Now(), delay: awaitMin, done: make(chan awaitResult, 1)}
	h.mu.Lock()
	h.ws[w] = struct{}{}
	if !h.running {
		h.running = true
		go h.run()
	}
	h.mu.Unlock()
	h.kick()
	select {
	case r := <-w.done:
		return r.t, r.err
	case <-ctx.Done():
		h.mu.Lock()
		delete(h.ws, w)
		h.mu.Unlock()
		h.kick() // the last one gone: the poller exits now, not at its next tick
		select {
		case r := <-w.done: // answered meanwhile
			return r.t, r.err
		default:
		}
		return nil, ctx.Err()
	}
}

// kick wakes the poller to look at its waiters (and the broker) again.
func (h *awaitHub) kick() {
	select {
	case h.wake <- struct{}{}:
	default:
	}
}

// finish answers w once (the poller only) and forgets it.
func (h *awaitHub) finishLocked(w *awaiter, t *broker.Task, err error) {
	if _, ok := h.ws[w]; !ok {
		return // gave up (ctx) already
	}
	delete(h.ws, w)
	w.done <- awaitResult{t, err}
}

func (h *awaitHub) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		h.mu.Lock()
		if len(h.ws) == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		if h.b.check() != nil {
			for w := range h.ws {
				h.finishLocked(w, nil, broker.ErrClosed)
			}
			h.running = false
			h.mu.Unlock()
			return
		}
		now := time.Now()
		var due []*awaiter
		next := now.Add(awaitMax)
		for w := range h.ws {
			if !w.next.After(now) {
				due = append(due, w)
			} else if w.next.Before(next) {
				next = w.next
			}
		}
		h.mu.Unlock()
		if len(due) > 0 {
			h.poll(due)
			continue
		}
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-h.wake:
			if !timer.Stop() {
				<-timer.C
			}
		}
	}
}

// poll reads the due waiters' tasks in one pipeline and answers those that
// are done, absent, or met an error; the others wait twice as long.
func (h *awaitHub) poll(due []*awaiter) {
	ctx, cancel := context.WithTimeout(context.Background(), awaitCall)
	defer cancel()
	shardMap, err := h.b.shardMap(ctx)
	var calls []*scriptCall
	var owners [][]*awaiter
	if err == nil {
		byQueue := map[string][]*awaiter{}
		for _, w := range due {
			byQueue[w.queue] = append(byQueue[w.queue], w)
		}
		for q, ws := range byQueue {
			keys := h.b.keysFor(scriptGet, shardMap[q].tag(q, 0))
			for len(ws) > 0 {
				n := min(len(ws), awaitBatch)
				args := make([]any, n)
				for i, w := range ws[:n] {
					args[i] = w.id
				}
				calls = append(calls, &scriptCall{script: scriptGet, keys: keys, args: args})
				owners = append(owners, ws[:n])
				ws = ws[n:]
			}
		}
		err = h.b.runScripts(ctx, calls, nil)
	}
	now := time.Now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if err != nil {
		for _, w := range due {
			h.finishLocked(w, nil, wrapErr("await task", err))
		}
		return
	}
	for i, c := range calls {
		res, err := c.cmd.Slice()
		if err == nil && len(res) != 4*len(owners[i]) {
			err = fmt.Errorf("get: %d values for %d tasks", len(res), len(owners[i]))
		}
		for k, w := range owners[i] {
			if err != nil {
				h.finishLocked(w, nil, wrapErr("await task", err))
				continue
			}
			v := res[4*k : 4*k+4]
			if v[0] == nil {
				h.finishLocked(w, nil, fmt.Errorf("%w: %s in queue %s", broker.ErrTaskNotFound, w.id, w.queue))
				continue
			}
			t, derr := decodeTask(w.queue, w.id, v[0], v[1], v[2], v[3])
			switch {
			case derr != nil:
				h.finishLocked(w, nil, derr)
			case t.State == broker.StateCompleted || t.State == broker.StateDead:
				h.finishLocked(w, t, nil)
			default:
				w.delay = min(2*w.delay, awaitMax)
				w.next = now.Add(w.delay)
			}
		}
	}
}
