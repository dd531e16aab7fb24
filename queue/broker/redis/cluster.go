package redis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	goredis "github.com/redis/go-redis/v9"
)

// Redis Cluster. The broker works on a *goredis.ClusterClient as on any
// client: every script's keys share one hash tag, so each call goes to one
// node, and go-redis splits pipelines per node and follows MOVED and ASK.
// What the client does not do by itself is notice a failover quickly: it
// keeps sending a dead master's slots to the dead master (dial errors, no
// MOVED) until its slot map is reloaded, every 60 s by default. So the
// broker reloads it on errors that mean a node is gone or the slot map is
// stale (reloadHook), at most every reloadEvery, and Open shortens the
// periodic reload to clusterReloadInterval.

const (
	clusterReloadInterval = 2 * time.Second
	reloadEvery           = 250 * time.Millisecond
)

// openTarget builds the client of a parsed URL: a failover client for
// Sentinel; for one or more addresses, a cluster client if the first
// address that answers says it is a cluster node, else a plain client of
// the single address.
func openTarget(ctx context.Context, t Target) (goredis.UniversalClient, error) {
	if t.Sentinel {
		return goredis.NewFailoverClient(t.failoverOptions()), nil
	}
	var lastErr error
	for _, addr := range t.Addrs {
		o := *t.Options
		o.Addr = addr
		if o.Network == "" {
			o.Network = "tcp"
		}
		// Database 0 for the probe: a cluster node refuses SELECT.
		db := o.DB
		o.DB = 0
		c := goredis.NewClient(&o)
		enabled, err := clusterEnabled(ctx, c)
		if err != nil {
			_ = c.Close()
			lastErr = fmt.Errorf("%s: %w", addr, err)
			continue
		}
		if !enabled {
			if len(t.Addrs) > 1 {
				_ = c.Close()
				return nil, fmt.Errorf("%w: %d addresses given (addr=), but %s is not a cluster node (cluster_enabled:0); name one server, or the nodes of a cluster", errInvalidArg, len(t.Addrs), addr)
			}
			if db == 0 {
				return c, nil
			}
			_ = c.Close()
			o.DB = db
			return goredis.NewClient(&o), nil
		}
		_ = c.Close()
		if t.Options.DB != 0 {
			return nil, fmt.Errorf("%w: database %d on a Redis Cluster, which has database 0 only", errInvalidArg, t.Options.DB)
		}
		return goredis.NewClusterClient(t.clusterOptions()), nil
	}
	return nil, lastErr
}

// clusterEnabled reads cluster_enabled from INFO cluster.
func clusterEnabled(ctx context.Context, c *goredis.Client) (bool, error) {
	txt, err := c.Info(ctx, "cluster").Result()
	if err != nil {
		return false, err
	}
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "cluster_enabled:"); ok {
			return v == "1", nil
		}
	}
	return false, nil
}

// hooked holds the cluster clients given a reloadHook, so that several
// brokers on one client add it once (hooks nest: one per broker would
// reload as often). Weak keys: a client closed and dropped is collected.
var hooked sync.Map // weak.Pointer[goredis.ClusterClient] -> struct{}

func hookCluster(cc *goredis.ClusterClient) {
	if _, loaded := hooked.LoadOrStore(weak.Make(cc), struct{}{}); !loaded {
		cc.AddHook(reloadHook{cc: cc, last: new(atomic.Int64)})
	}
}

// reloadHook asks the cluster client to reload its slot map after a
// command or pipeline failed in a way that means the map may be stale: a
// network error (the node is gone), CLUSTERDOWN, TRYAGAIN, MASTERDOWN,
// READONLY or LOADING.
type reloadHook struct {
	cc   *goredis.ClusterClient
	last *atomic.Int64 // UnixNano of the last reload asked
}

func (h reloadHook) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			h.maybeReload(err)
		}
		return c, err
	}
}

func (h reloadHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		err := next(ctx, cmd)
		if err != nil {
			h.maybeReload(err)
		}
		return err
	}
}

func (h reloadHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		for _, c := range cmds {
			if e := c.Err(); e != nil && staleMap(e) {
				h.reload()
				break
			}
		}
		if err != nil {
			h.maybeReload(err)
		}
		return err
	}
}

func (h reloadHook) maybeReload(err error) {
	if staleMap(err) {
		h.reload()
	}
}

func (h reloadHook) reload() {
	now := time.Now().UnixNano()
	last := h.last.Load()
	if now-last < int64(reloadEvery) || !h.last.CompareAndSwap(last, now) {
		return
	}
	h.cc.ReloadState(context.Background())
}

// staleMap reports whether err means a node is gone or the slot map may be
// out of date.
func staleMap(err error) bool {
	if err == nil || errors.Is(err, goredis.Nil) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var rerr goredis.Error
	if errors.As(err, &rerr) {
		msg := rerr.Error()
		for _, p := range []string{"CLUSTERDOWN", "TRYAGAIN", "MASTERDOWN", "READONLY", "LOADING"} {
			if strings.HasPrefix(msg, p) {
				return true
			}
		}
		return false // a reply: the node is there and serves the slot
	}
	return true // no reply at all: dial, I/O or pool errors
}
