package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// TestShardsAPIOnCluster: a queue is spread over the cluster's masters
// through the API, listed as one queue with per-shard detail, and shown so
// on the dashboard.
func TestShardsAPIOnCluster(t *testing.T) {
	url := testenv.RedisClusterURL(t)
	prefix := testenv.UniquePrefix(t, testenv.RedisClusterClient(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := redisbroker.Open(ctx, url, redisbroker.Config{Prefix: prefix, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ts := newTestServer(t, Config{Broker: b})

	r := ts.do(t, "PUT", "/api/v1/queues/hot/shards", map[string]int{"shards": 3}, "Content-Type", "application/json")
	expectStatus(t, r, http.StatusOK)
	m := r.json(t)
	shards, _ := m["shards"].([]any)
	if m["count"] != 3.0 || len(shards) != 3 {
		t.Fatalf("PUT shards: %s", r.body)
	}
	nodes := map[any]bool{}
	for _, s := range shards {
		nodes[s.(map[string]any)["node"]] = true
	}
	if len(nodes) != 3 {
		t.Fatalf("shards on %v, want 3 masters", nodes)
	}
	for i := range 30 {
		enqueue(t, b, "k", []byte{byte(i)}, queue.Queue("hot"))
	}
	r = ts.do(t, "GET", "/api/v1/queues", nil)
	expectStatus(t, r, http.StatusOK)
	qs := r.json(t)["queues"].([]any)
	if len(qs) != 1 || qs[0].(map[string]any)["counts"].(map[string]any)["pending"] != 30.0 || len(qs[0].(map[string]any)["shards"].([]any)) != 3 {
		t.Fatalf("queues: %s", r.body)
	}
	expectStatus(t, ts.do(t, "GET", "/api/v1/queues/hot/shards", nil), http.StatusOK)
	// Lowering, bad bodies, unknown fields: 400; the wrong method: 405.
	for _, body := range []any{map[string]int{"shards": 2}, map[string]int{"shards": 0}, `{"shards": "3"}`, `{}`, `{"shards": 4, "x": 1}`} {
		r := ts.do(t, "PUT", "/api/v1/queues/hot/shards", body, "Content-Type", "application/json")
		expectStatus(t, r, http.StatusBadRequest)
	}
	expectStatus(t, ts.do(t, "POST", "/api/v1/queues/hot/shards", map[string]int{"shards": 4}, "Content-Type", "application/json"), http.StatusMethodNotAllowed)
	r = ts.do(t, "GET", "/queues/hot", nil)
	expectStatus(t, r, http.StatusOK)
	if !strings.Contains(string(r.body), "3 shards") || strings.Count(string(r.body), "data-shard=") != 3 {
		t.Fatalf("dashboard queue page has no shard table:\n%s", r.body)
	}
	r = ts.do(t, "GET", "/", nil)
	if !strings.Contains(string(r.body), "3 shards") {
		t.Fatalf("dashboard queue list has no shard badge:\n%s", r.body)
	}
}

// TestShardsAPIUnsupported: the memory broker has no shards: 501.
func TestShardsAPIUnsupported(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(t, "PUT", "/api/v1/queues/q/shards", map[string]int{"shards": 2}, "Content-Type", "application/json")
	expectStatus(t, r, http.StatusNotImplemented)
}
