package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// TestOpenCluster: a URL naming any node of a cluster opens a cluster
// broker (detected with INFO cluster), with or without more seeds.
func TestOpenCluster(t *testing.T) {
	ctx := context.Background()
	full := testenv.RedisClusterURL(t)
	u, err := url.Parse(full)
	if err != nil {
		t.Fatal(err)
	}
	one := "redis://" + u.Host
	for _, raw := range []string{full, one} {
		prefix := "conqtest-open-" + fmt.Sprint(time.Now().UnixNano())
		b, err := redisbroker.Open(ctx, raw, redisbroker.Config{Prefix: prefix})
		if err != nil {
			t.Fatalf("Open(%s): %v", raw, err)
		}
		if b.Cluster() == nil {
			t.Fatalf("Open(%s) did not detect the cluster", raw)
		}
		if err := b.Enqueue(ctx, task("q", "a")); err != nil {
			t.Fatal(err)
		}
		if ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: 1, Lease: time.Minute}); err != nil || len(ts) != 1 {
			t.Fatalf("Fetch = %v, %v", ts, err)
		}
		testenv.DeleteKeys(b.Cluster(), prefix+":*")
		b.Close()
	}
	// A cluster has database 0 only.
	if _, err := redisbroker.Open(ctx, one+"/1", redisbroker.Config{}); err == nil || !strings.Contains(err.Error(), "database 0") {
		t.Fatalf("Open(cluster, db 1) = %v, want an error about database 0", err)
	}
	// Seeds that are not a cluster are an error, not a silent single node.
	std := testenv.RedisURL(t)
	if _, err := redisbroker.Open(ctx, strings.TrimSuffix(std, "/0")+"?addr="+u.Host, redisbroker.Config{}); err == nil || !strings.Contains(err.Error(), "not a cluster node") {
		t.Fatalf("Open(standalone?addr=...) = %v, want an error saying it is not a cluster node", err)
	}
}

// TestClusterShardPlacement: the shards of a queue land on distinct
// masters, and the slot the broker reports for each is the cluster's.
func TestClusterShardPlacement(t *testing.T) {
	ctx := context.Background()
	c := testenv.RedisClusterClient(t)
	b := newClusterBroker(t, c, redisbroker.Config{})
	var masters int
	var mu sync.Mutex
	if err := c.ForEachMaster(ctx, func(context.Context, *goredis.Client) error {
		mu.Lock()
		masters++
		mu.Unlock()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"default", "hot", "with:colon", "x"} {
		if err := b.SetShards(ctx, broker.ShardParams{Queue: q, Shards: masters}); err != nil {
			t.Fatal(err)
		}
	}
	qs, err := b.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		nodes := map[string]bool{}
		for _, sh := range q.Shards {
			slot, err := c.ClusterKeySlot(ctx, b.Prefix()+":{"+sh.Tag+"}:pending").Result()
			if err != nil || int(slot) != sh.Slot {
				t.Fatalf("queue %s shard %d: CLUSTER KEYSLOT %d (%v), broker says %d", q.Name, sh.Index, slot, err, sh.Slot)
			}
			m, err := c.MasterForKey(ctx, "{"+sh.Tag+"}")
			if err != nil || m.Options().Addr != sh.Node {
				t.Fatalf("queue %s shard %d on %q, broker says %q (%v)", q.Name, sh.Index, m.Options().Addr, sh.Node, err)
			}
			nodes[sh.Node] = true
		}
		if len(q.Shards) != masters || len(nodes) != masters {
			t.Fatalf("queue %s: %d shards on %d masters %v, want %d on %d", q.Name, len(q.Shards), len(nodes), nodes, masters, masters)
		}
	}
}

// TestClusterHashTags: on the cluster, with a sharded queue and every
// optional role in use, every key has a hash tag, and each shard's keys
// share one.
func TestClusterHashTags(t *testing.T) {
	ctx := context.Background()
	c := testenv.RedisClusterClient(t)
	b := newClusterBroker(t, c, redisbroker.Config{})
	p := b.Prefix()
	if err := b.SetShards(ctx, broker.ShardParams{Queue: "hot", Shards: 3}); err != nil {
		t.Fatal(err)
	}
	var tasks []*broker.Task
	for i := range 30 {
		tk := task("hot", fmt.Sprint(i))
		tk.Retention = time.Hour
		tasks = append(tasks, tk)
	}
	if err := b.Enqueue(ctx, tasks...); err != nil {
		t.Fatal(err)
	}
	ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"hot"}, Max: 30, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(ts) != 30 {
		t.Fatalf("fetch: %d, %v", len(ts), err)
	}
	acks := make([]broker.Ack, 0, len(ts))
	for _, tk := range ts[:20] {
		acks = append(acks, broker.Ack{LeaseRef: tk.Ref(), Result: []byte("r")})
	}
	if err := b.Complete(ctx, acks...); err != nil {
		t.Fatal(err)
	}
	if err := b.EnqueueUnique(ctx, broker.UniqueParams{Task: task("hot", "u"), Key: "uk", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ClaimTick(ctx, broker.ClaimParams{Key: "e", Tick: time.Now(), TTL: time.Hour, Task: task("hot", "tick")}); err != nil {
		t.Fatal(err)
	}
	if err := b.Heartbeat(ctx, broker.WorkerInfo{ID: "w1"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	tag := regexp.MustCompile(`^` + regexp.QuoteMeta(p) + `:\{([^{}]+(\{\d+\.\d+)?)\}:[a-z]+(:\d+)?$`)
	var keys []string
	var mu sync.Mutex
	err = c.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
		ks, err := n.Keys(ctx, p+":*").Result()
		mu.Lock()
		keys = append(keys, ks...)
		mu.Unlock()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]bool{}
	for _, k := range keys {
		if k == p+":queues" || k == p+":queueshards" {
			continue // global, written outside the scripts
		}
		m := tag.FindStringSubmatch(k)
		if m == nil {
			t.Fatalf("key %q has no hash tag", k)
		}
		tags[m[1]] = true
	}
	shards := 0
	for tg := range tags {
		if strings.HasPrefix(tg, "hot") {
			shards++
		}
	}
	if shards != 3 || !tags["workers"] {
		t.Fatalf("tags %v: want the 3 shards of hot and workers", tags)
	}
}

// TestClusterWaitReadyMany: many waiters on the shards of several queues
// share the process's watchers and all wake when tasks arrive.
func TestClusterWaitReadyMany(t *testing.T) {
	ctx := context.Background()
	c := testenv.RedisClusterClient(t)
	b := newClusterBroker(t, c, redisbroker.Config{DefaultShards: 3})
	queues := []string{"a", "b"}
	for _, q := range queues {
		if err := b.SetShards(ctx, broker.ShardParams{Queue: q, Shards: 3}); err != nil {
			t.Fatal(err)
		}
	}
	const waiters = 8
	done := make(chan error, waiters)
	for range waiters {
		go func() { done <- b.WaitReady(ctx, broker.WaitParams{Queues: queues, Max: 20 * time.Second}) }()
	}
	time.Sleep(100 * time.Millisecond)
	var tasks []*broker.Task
	for i := range 30 {
		tasks = append(tasks, task("b", fmt.Sprint(i)))
	}
	if err := b.Enqueue(ctx, tasks...); err != nil {
		t.Fatal(err)
	}
	for range waiters {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a waiter was not woken")
		}
	}
	// After Close, waiting fails at once.
	b.Close()
	if err := b.WaitReady(ctx, broker.WaitParams{Queues: queues, Max: time.Second}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("WaitReady after Close = %v, want ErrClosed", err)
	}
}

// TestClusterFunctionFlush: after FUNCTION FLUSH on every master, calls
// to each master (a queue in 3 shards, one per master) and pipelines
// across them load the library again and run once.
func TestClusterFunctionFlush(t *testing.T) {
	ctx := context.Background()
	c := testenv.RedisClusterClient(t)
	b := newClusterBroker(t, c, redisbroker.Config{DefaultShards: 3})
	flush := func() {
		t.Helper()
		if err := c.ForEachMaster(ctx, func(ctx context.Context, m *goredis.Client) error { return m.FunctionFlush(ctx).Err() }); err != nil {
			t.Fatal(err)
		}
	}
	var tasks []*broker.Task
	for i := range 30 {
		tasks = append(tasks, task("q", fmt.Sprint(i)))
	}
	flush()
	if err := b.Enqueue(ctx, tasks...); err != nil {
		t.Fatalf("enqueue after FUNCTION FLUSH: %v", err)
	}
	flush()
	ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: 30, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(ts) != 30 {
		t.Fatalf("fetch after FUNCTION FLUSH: %d, %v", len(ts), err)
	}
	flush()
	acks := make([]broker.Ack, len(ts))
	for i, x := range ts {
		acks[i] = broker.Ack{LeaseRef: x.Ref()}
	}
	if err := b.Complete(ctx, acks...); err != nil {
		t.Fatalf("complete after FUNCTION FLUSH: %v", err)
	}
	qs, err := b.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if len(q.Shards) != 3 {
			t.Fatalf("queue %s has %d shards, want 3", q.Name, len(q.Shards))
		}
		for st, n := range q.Counts {
			if n != 0 {
				t.Fatalf("queue %s has %d %s", q.Name, n, st)
			}
		}
	}
	if !redisbroker.UsesFunctions(b) {
		t.Fatal("the cluster broker fell back to EVALSHA")
	}
}
