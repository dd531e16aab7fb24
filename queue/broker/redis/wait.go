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
//
// Each watcher blocks on a client of its own (one connection) to the
// master of its list's slot, so that Close can end a blocked BLPOP at once
// by closing that client (go-redis does not interrupt a blocked read on
// cancellation, and a Conn may not be closed while in use). After
// an error (a failover, MOVED after a reshard) the watcher asks for a new
// slot map and a new connection.

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
	conn    *goredis.Client // the watcher's own client, closed by close
}

func newNotifyHub(b *Broker) *notifyHub {
	ctx, cancel := context.WithCancel(context.Background())
	return &notifyHub{b: b, ctx: ctx, cancel: cancel, watches: map[string]*watch{}}
}

func (h *notifyHub) close() {
	h.mu.Lock()
	h.cancel()
	for _, w := range h.watches {
		if w.conn != nil {
			_ = w.conn.Close() // ends a blocked BLPOP now
		}
	}
	h.mu.Unlock()
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
	var conn *goredis.Client
	defer func() {
		if conn != nil {
			_ = conn.Close()
		}
	}()
	for {
		h.mu.Lock()
		if h.ctx.Err() != nil || (len(w.waiters) == 0 && time.Since(w.idle) >= watchIdle) {
			delete(h.watches, w.key)
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
		var err error
		if conn == nil {
			conn, err = h.connect(w)
		}
		if err == nil {
			err = conn.BLPop(h.ctx, watchPoll, w.key).Err()
			if errors.Is(err, goredis.Nil) {
				continue // nothing within watchPoll
			}
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
		if err != nil && conn != nil {
			_ = conn.Close()
			conn, w.conn = nil, nil
		}
		h.mu.Unlock()
		if err != nil {
			// The node failed, or the slot moved: a new slot map, and
			// a pause so the loop does not spin; the waiters back off too.
			h.b.cluster.ReloadState(h.ctx)
			t := time.NewTimer(100 * time.Millisecond)
			select {
			case <-h.ctx.Done():
			case <-t.C:
			}
			t.Stop()
		}
	}
}

// connect opens the watcher's client of the master of w.key's slot: the
// node's options (auth, TLS, timeouts), one connection.
func (h *notifyHub) connect(w *watch) (*goredis.Client, error) {
	node, err := h.b.cluster.MasterForKey(h.ctx, w.key)
	if err != nil {
		return nil, err
	}
	o := *node.Options()
	o.PoolSize, o.MinIdleConns, o.MaxIdleConns, o.MaxActiveConns = 1, 0, 1, 1
	c := goredis.NewClient(&o)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		_ = c.Close()
		return nil, errClosedHub
	}
	w.conn = c
	return c, nil
}
