package redis

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
)

// Waiting for tasks to finish (AwaitTask). One poller per broker serves
// every waiter of the process. Each waiter keeps its own schedule (first
// read at once, then 1 ms doubling to 100 ms, as a lone poller would), and
// each tick reads every waiter that is due in one pipeline of get.lua
// calls of up to awaitBatch IDs. N waiters (an HTTP server streaming ten
// thousand results) cost one round trip per tick instead of N, and Redis
// runs a few scripts instead of N commands.
//
// Pushed ends. While the poller has waiters on a queue (and for awaitIdle
// after its last one), it keeps the queue's "awaiting" key alive (SET PX
// awaitingTTL, renewed every awaitingRenew) and subscribes to the channel
// of the same name. The scripts that finish tasks (complete.lua; fail,
// cancel, requeue and recover.lua for tasks that go dead) publish the
// finished IDs on that channel when the key exists, and a waiter named in
// a message is read at once instead of at its next tick. A push is only a
// hint, so polling goes on, but slower while the queue's pushes are on
// (subscribed and the key set): after its first read, a waiter is read
// again after awaitMax, then at doubling intervals up to awaitPushedMax.
// A lost message (a reconnect, a crashed process's key that has not
// expired) costs latency, never a result. Why slower: a stream of ten
// thousand results would otherwise read every unfinished task at 1, 2, 4
// ... ms, five or six times each, where one read after its push is
// enough. Without waiters anywhere the key is gone and the scripts pay one
// EXISTS per call.
//
// Waits on every queue (queue "") find their tasks first and then wait
// here (inspect.go, awaitAnyQueue); waits on sharded queues (a task may be
// in any shard) keep polling GetTask on their own.

const (
	awaitBatch = 500
	awaitCall  = 10 * time.Second // bound of one tick's pipeline

	awaitingTTL   = 3 * time.Second
	awaitingRenew = time.Second
	awaitIdle     = 10 * time.Second // a poller without waiters keeps its subscriptions this long
)

// The poll schedule, copied by each broker when it is made; variables so
// that tests can make the push the only way a waiter learns of its
// task's end.
var (
	awaitMin       = time.Millisecond
	awaitMax       = 100 * time.Millisecond
	awaitPushedMax = time.Second // the longest poll interval while pushes are on
)

// awaitShared can be turned off by tests and benchmarks, to compare with
// a poller per waiter.
var awaitShared = true

type awaitHub struct {
	b         *Broker
	min, max  time.Duration // the poll schedule (awaitMin, awaitMax when made)
	pushedMax time.Duration // its cap while pushes are on (awaitPushedMax, at least max)
	mu        sync.Mutex
	ws        map[*awaiter]struct{}
	byID      map[awaitKey][]*awaiter // the waiters of each task, for pushed ends
	queues    map[string]int          // waiters per queue
	keys      map[string]string       // awaiting key per queue (a cache)
	// dueNow holds the waiters to read at the next tick whatever their
	// schedule (new, or named by a push); the others are found by a scan
	// of ws, run only when scanAt (the earliest scheduled read) has come:
	// a tick per push must not cost a look at every waiter.
	dueNow  []*awaiter
	scanAt  time.Time
	subs    map[string]*awaitSub // by awaiting key (= channel)
	ps      *goredis.PubSub      // while running with subscriptions
	running bool
	wake    chan struct{} // cap 1: a waiter was added, or a push arrived
}

type awaitKey struct{ queue, id string }

// awaitSub is the poller's subscription to one queue's ends.
type awaitSub struct {
	queue   string
	used    time.Time // last had a waiter
	renewed time.Time // awaiting key last set
	// pushed: subscribed, and the awaiting key was set at the last
	// renewal, so finished tasks are published (the poll slows down).
	pushed bool
}

type awaiter struct {
	queue, id string
	next      time.Time
	delay     time.Duration
	inDue     bool             // in dueNow
	i         int              // its index in its awaitMany call
	done      chan awaitResult // sent once per waiter, by the poller; shared by the call's waiters
}

type awaitResult struct {
	i   int
	t   *broker.Task
	err error
}

func newAwaitHub(b *Broker) *awaitHub {
	return &awaitHub{b: b, min: awaitMin, max: awaitMax, pushedMax: max(awaitPushedMax, awaitMax), ws: map[*awaiter]struct{}{}, byID: map[awaitKey][]*awaiter{},
		queues: map[string]int{}, keys: map[string]string{}, subs: map[string]*awaitSub{}, wake: make(chan struct{}, 1)}
}

// awaitingKeyLocked is the key (and channel) of queue's pushed ends: shard
// 0's, the only one of an unsharded queue.
func (h *awaitHub) awaitingKeyLocked(queue string) string {
	k, ok := h.keys[queue]
	if !ok {
		k = queueKeys(h.b.cfg.Prefix, queue)[kAwaiting]
		h.keys[queue] = k
	}
	return k
}

// addLocked registers w, due at once.
func (h *awaitHub) addLocked(w *awaiter) {
	h.ws[w] = struct{}{}
	k := awaitKey{w.queue, w.id}
	h.byID[k] = append(h.byID[k], w)
	h.queues[w.queue]++
	h.dueLocked(w)
}

// dueLocked makes w due at the next tick.
func (h *awaitHub) dueLocked(w *awaiter) {
	if !w.inDue {
		w.inDue = true
		h.dueNow = append(h.dueNow, w)
	}
}

func (h *awaitHub) removeLocked(w *awaiter) {
	delete(h.ws, w)
	if h.queues[w.queue]--; h.queues[w.queue] <= 0 {
		delete(h.queues, w.queue)
		delete(h.keys, w.queue)
	}
	k := awaitKey{w.queue, w.id}
	l := h.byID[k]
	for i, x := range l {
		if x == w {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(h.byID, k)
	} else {
		h.byID[k] = l
	}
}

// pushed makes the waiters of the tasks a message names due now.
func (h *awaitHub) pushed(channel, ids string) {
	h.mu.Lock()
	sub := h.subs[channel]
	if sub == nil {
		h.mu.Unlock()
		return
	}
	hit := false
	for _, id := range strings.Fields(ids) {
		for _, w := range h.byID[awaitKey{sub.queue, id}] {
			h.dueLocked(w)
			hit = true
		}
	}
	h.mu.Unlock()
	if hit {
		h.kick()
	}
}

// await waits for one task of an unsharded queue.
func (h *awaitHub) await(ctx context.Context, queue, id string) (*broker.Task, error) {
	var t *broker.Task
	var terr error
	if err := h.awaitMany(ctx, queue, []string{id}, func(_ int, x *broker.Task, err error) { t, terr = x, err }); err != nil {
		return nil, err
	}
	return t, terr
}

// awaitMany waits for the tasks ids of one unsharded queue: their waiters
// share one channel, and done is called on the calling goroutine as each
// is answered.
func (h *awaitHub) awaitMany(ctx context.Context, queue string, ids []string, done func(int, *broker.Task, error)) error {
	ch := make(chan awaitResult, len(ids))
	ws := make([]*awaiter, len(ids))
	now := time.Now()
	h.mu.Lock()
	for i, id := range ids {
		ws[i] = &awaiter{queue: queue, id: id, next: now, delay: h.min, i: i, done: ch}
		h.addLocked(ws[i])
	}
	if !h.running {
		h.running = true
		go h.run()
	}
	h.mu.Unlock()
	h.kick()
	answered := make([]bool, len(ids))
	left := len(ids)
	give := func(r awaitResult) {
		if !answered[r.i] {
			answered[r.i] = true
			left--
			done(r.i, r.t, r.err)
		}
	}
	for left > 0 {
		select {
		case r := <-ch:
			give(r)
		case <-ctx.Done():
			h.mu.Lock()
			for _, w := range ws {
				if _, ok := h.ws[w]; ok {
					h.removeLocked(w)
				}
			}
			h.mu.Unlock()
			h.kick()
			for {
				select {
				case r := <-ch: // answered meanwhile
					give(r)
					continue
				default:
				}
				break
			}
			if left == 0 {
				return nil
			}
			return ctx.Err()
		}
	}
	return nil
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
	h.removeLocked(w)
	w.done <- awaitResult{w.i, t, err} // never blocks: a slot per waiter
}

func (h *awaitHub) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		h.mu.Lock()
		now := time.Now()
		if h.b.check() != nil {
			for w := range h.ws {
				h.finishLocked(w, nil, broker.ErrClosed)
			}
			h.stopLocked()
			return
		}
		if len(h.ws) == 0 && h.idleLocked(now) {
			h.stopLocked()
			return
		}
		due := h.takeDueLocked(now)
		next := h.scanAt
		subscribe, renew, drop := h.subsLocked(now)
		if r := now.Add(awaitingRenew); len(h.subs) > 0 && r.Before(next) {
			next = r
		}
		h.mu.Unlock()
		h.updateSubs(subscribe, renew, drop)
		if len(due) > 0 {
			h.poll(due)
			continue
		}
		timer.Reset(time.Until(next))
		select {
		case <-timer.C:
		case <-h.wake:
			timer.Stop() // no stale tick after Stop since Go 1.23
		}
	}
}

// takeDueLocked takes the waiters to read now: those in dueNow still
// registered, and, once scanAt has come, those whose scheduled read has;
// it sets scanAt to the earliest read still to come.
func (h *awaitHub) takeDueLocked(now time.Time) []*awaiter {
	var due []*awaiter
	for _, w := range h.dueNow {
		if _, ok := h.ws[w]; ok {
			due = append(due, w)
		} else {
			w.inDue = false
		}
	}
	clear(h.dueNow)
	h.dueNow = h.dueNow[:0]
	if !h.scanAt.After(now) {
		h.scanAt = now.Add(h.max)
		for w := range h.ws {
			switch {
			case w.inDue:
			case !w.next.After(now):
				w.inDue = true
				due = append(due, w)
			case w.next.Before(h.scanAt):
				h.scanAt = w.next
			}
		}
	}
	for _, w := range due {
		w.inDue = false
	}
	return due
}

// idleLocked: no subscription was used within awaitIdle.
func (h *awaitHub) idleLocked(now time.Time) bool {
	for _, sub := range h.subs {
		if now.Sub(sub.used) < awaitIdle {
			return false
		}
	}
	return true
}

// subsLocked brings the subscriptions up to date with the waiters: the
// channels to subscribe to, the awaiting keys to set (new or due for
// renewal) and the channels to leave (unused for awaitIdle).
func (h *awaitHub) subsLocked(now time.Time) (subscribe, renew, drop []string) {
	for q := range h.queues {
		key := h.awaitingKeyLocked(q)
		sub := h.subs[key]
		if sub == nil {
			sub = &awaitSub{queue: q}
			h.subs[key] = sub
			subscribe = append(subscribe, key)
		}
		sub.used = now
	}
	for key, sub := range h.subs {
		switch {
		case now.Sub(sub.used) >= awaitIdle:
			delete(h.subs, key)
			drop = append(drop, key)
		case now.Sub(sub.renewed) >= awaitingRenew:
			sub.renewed = now
			renew = append(renew, key)
		}
	}
	return subscribe, renew, drop
}

// updateSubs subscribes first, then sets the awaiting keys (a script that
// sees a key publishes to a channel already listened to), then leaves.
// Errors only cost pushes: the poll schedule still runs.
func (h *awaitHub) updateSubs(subscribe, renew, drop []string) {
	if len(subscribe)+len(renew)+len(drop) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), awaitCall)
	defer cancel()
	if len(subscribe) > 0 {
		h.mu.Lock()
		ps := h.ps
		h.mu.Unlock()
		if ps == nil {
			ps = h.b.rdb.Subscribe(ctx)
			h.mu.Lock()
			h.ps = ps
			h.mu.Unlock()
			go h.listen(ps)
		}
		if err := ps.Subscribe(ctx, subscribe...); err != nil {
			// Not listening: these keys must not be set as if we were,
			// and the next tick subscribes again.
			renew = slices.DeleteFunc(renew, func(k string) bool { return slices.Contains(subscribe, k) })
			h.mu.Lock()
			for _, k := range subscribe {
				delete(h.subs, k)
			}
			h.mu.Unlock()
		}
	}
	if len(renew) > 0 {
		cmds := make([]*goredis.StatusCmd, len(renew))
		_, _ = h.b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, k := range renew {
				cmds[i] = p.Set(ctx, k, "1", awaitingTTL)
			}
			return nil
		})
		h.mu.Lock()
		for i, k := range renew {
			if sub := h.subs[k]; sub != nil {
				sub.pushed = cmds[i].Err() == nil
			}
		}
		h.mu.Unlock()
	}
	if len(drop) > 0 {
		h.mu.Lock()
		ps := h.ps
		h.mu.Unlock()
		if ps != nil {
			_ = ps.Unsubscribe(ctx, drop...)
		}
	}
}

// listen hands the messages of ps to pushed until ps is closed.
func (h *awaitHub) listen(ps *goredis.PubSub) {
	for m := range ps.Channel() {
		h.pushed(m.Channel, m.Payload)
	}
}

// stopLocked ends the poller and its subscriptions, and unlocks h. The
// subscriptions go before running is false: a poller started after this
// one starts with none. The awaiting keys are left to expire: another
// process may be waiting on them too.
func (h *awaitHub) stopLocked() {
	ps := h.ps
	h.ps = nil
	clear(h.subs)
	h.running = false
	h.mu.Unlock()
	if ps != nil {
		_ = ps.Close()
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
				if sub := h.subs[h.awaitingKeyLocked(w.queue)]; sub != nil && sub.pushed {
					w.delay = min(max(2*w.delay, h.max), h.pushedMax)
				} else {
					w.delay = min(2*w.delay, h.max)
				}
				w.next = now.Add(w.delay)
				if w.next.Before(h.scanAt) {
					h.scanAt = w.next
				}
			}
		}
	}
}
