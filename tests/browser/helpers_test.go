// Package browser drives the dashboard in a real headless Chromium. It
// lives in the tests module so that chromedp stays out of the library's
// module graph.
package browser

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
	"github.com/conqhq/conq/server"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// redisBroker returns a broker on the private test Redis
// ($CONQ_TEST_REDIS_URL) with a key prefix of its own.
func redisBroker(t *testing.T) broker.Broker {
	t.Helper()
	url := testenv.RedisURL(t)
	prefix := testenv.UniquePrefix(t, testenv.RedisClient(t)) // keys deleted after b is closed
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	b, err := redisbroker.Open(ctx, url, redisbroker.Config{Prefix: prefix, Logger: quietLogger()})
	if err != nil {
		t.Fatalf("open redis broker at $CONQ_TEST_REDIS_URL: %v", err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

type testServer struct {
	*server.Server
	insp *queue.Inspector
	url  string
}

// newTestServer serves cfg on a loopback httptest server.
func newTestServer(t *testing.T, cfg server.Config) *testServer {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	s, err := server.New(cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return &testServer{Server: s, insp: queue.NewInspector(cfg.Broker), url: hs.URL}
}

// enqueue stores a task directly through a queue.Client.
func enqueue(t *testing.T, b broker.Broker, kind string, payload []byte, opts ...queue.Option) *queue.TaskInfo {
	t.Helper()
	c, err := queue.NewClient(b, queue.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Enqueue(context.Background(), queue.NewTask(kind, payload), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// kill fetches the pending task of queue q with this ID and fails it dead
// with msg; it fails the test if another task comes first.
func kill(t *testing.T, b broker.Broker, q, id, msg string) {
	t.Helper()
	ctx := context.Background()
	ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{q}, Max: 1, Lease: time.Minute, WorkerID: "test-worker"})
	if err != nil || len(ts) != 1 || ts[0].ID != id {
		t.Fatalf("fetch %s from %s: %v %v", id, q, ts, err)
	}
	err = b.Fail(ctx, broker.Failure{
		LeaseRef: broker.LeaseRef{Queue: q, ID: id, Token: ts[0].Token},
		Error:    broker.AttemptError{Attempt: 1, At: time.Now(), Kind: "panic", Message: msg, Stack: "goroutine 1 [running]:\nmain.handler()"},
		Dead:     true,
	})
	if err != nil {
		t.Fatalf("fail %s: %v", id, err)
	}
}
