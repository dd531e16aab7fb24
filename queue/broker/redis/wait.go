package redis

import (
	"context"
	"errors"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// WaitReady on a Redis Cluster. One BLPOP over several notify lists is
// CROSSSLOT as soon as two of them are in different slots, which the
// shards of one queue always are. So each process keeps one watcher per
// notify list that someone waits on: a goroutine looping on a one-key
// BLPOP (watchPoll at a time), waking every local waiter of that list when
// it pops a token. A waiter registers with the lists of every shard of the
// queues it waits for and returns on the first wake-up. A watcher with no
// waiter left for watchIdle exits. The cost is one blocked connection per
// (process, list in use), however many workers of the process wait.
//
// A token popped while nobody waits is not dropped: the next waiter of the
// list returns at once (WaitReady may return spuriously; a Fetch then
// finds the task).

const (
	watchPoll = time.Second
	watchIdle = 2 * time.Second
)

type notifyHub struct {
	b      *Broker
	ctx    context.Context // ended by close
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	watches map[string]*watch // by notify key
}

type watch struct {
	key     string
	waiters map[chan error]struct{}
	token   bool // popped while nobody waited
	idle    time.Time
}

func newNotifyHub(b *Broker) *notifyHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &notifyHub{b: b, ctx: ctx, cancel: cancel, watches: map[string]*watch{}}
}

func (h *notifyHub) close() {
	h.cancel()
	h.wg.Wait()
}

// wait blocks until a token arrives on one of keys, ctx ends or max
// passes. A watcher's error is returned to its waiters (after the
// watcher's own back-off).
func (h *notifyHub) wait(ctx context.Context, keys []string, max time.Duration) error {
	ch := make(chan error, 1)
	ready := false
	h.mu.Lock()
	if h.ctx.Err() != nil {
		h.mu.Unlock()
		return errClosedHub
	}
	for _, k := range keys {
		w := h.watches[k]
		if w == nil {
			w = &watch{key: k, waiters: map[chan error]struct{}{}}
			h.watches[k] = w
			h.wg.Add(1)
			go h.run(w)
		}
		if w.token {
			w.token, ready = false, true
		}
		w.waiters[ch] = struct{}{}
	}
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		now := time.Now()
		for _, k := range keys {
			if w := h.watches[k]; w != nil {
				delete(w.waiters, ch)
				if len(w.waiters) == 0 {
					w.idle = now
				}
			}
		}
		h.mu.Unlock()
	}()
	if ready {
		return nil
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	case err := <-ch:
		return err
	}
}

var errClosedHub = errors.New("redis broker: closed")

// run is a watcher: BLPOP on w.key until it has had no waiter for
// watchIdle or the hub closes.
func (h *notifyHub) run(w *watch) {
	defer h.wg.Done()
	for {
		h.mu.Lock()
		if h.ctx.Err() != nil || (len(w.waiters) == 0 && time.Since(w.idle) >= watchIdle) {
			delete(h.watches, w.key)
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		// Cancelled only by close: go-redis drops a connection whose
		// call is cancelled, which is fine then and only then.
		err := h.b.rdb.BLPop(h.ctx, watchPoll, w.key).Err()
		if errors.Is(err, goredis.Nil) {
			continue // nothing within watchPoll
		}
		if h.ctx.Err() != nil {
			continue // closing: the loop's check ends it
		}
		h.mu.Lock()
		if err == nil && len(w.waiters) == 0 {
			w.token = true
		}
		for ch := range w.waiters {
			select {
			case ch <- err:
			default:
			}
		}
		h.mu.Unlock()
		if err != nil {
			// Redis is away or the node failed over: back off a little so
			// the loop does not spin; the waiters back off too.
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-h.ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}
