package server

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/memory"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

const testToken = "test-token-0123456789abcdef"

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// redisBroker returns a broker on the private test Redis
// ($CONQ_TEST_REDIS_URL) with a key prefix of its own.
func redisBroker(t testing.TB) broker.Broker {
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
	*Server
	b   broker.Broker
	url string
	hs  *httptest.Server
}

// newTestServer serves cfg (memory broker if cfg.Broker is nil) on a
// loopback httptest server.
func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	if cfg.Broker == nil {
		b := memory.New(memory.Config{})
		t.Cleanup(func() { _ = b.Close() })
		cfg.Broker = b
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	if cfg.SampleInterval == 0 {
		cfg.SampleInterval = -1
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return &testServer{Server: s, b: cfg.Broker, url: hs.URL, hs: hs}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response (status %d) is not a JSON object: %v\n%s", r.status, err, r.body)
	}
	return m
}

// errCode returns the error code of an error body.
func (r response) errCode(t *testing.T) string {
	t.Helper()
	e, ok := r.json(t)["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.body)
	}
	if msg, _ := e["message"].(string); msg == "" {
		t.Fatalf("error without message: %s", r.body)
	}
	code, _ := e["code"].(string)
	return code
}

// do sends a request; body is JSON-encoded unless it is a string.
func (ts *testServer) do(t *testing.T, method, path string, body any, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		case []byte:
			rd = bytes.NewReader(b)
		default:
			data, err := json.Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(data)
		}
	}
	req, err := http.NewRequest(method, ts.url+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: data}
}

func expectStatus(t *testing.T, r response, want int) {
	t.Helper()
	if r.status != want {
		t.Fatalf("status %d, want %d; body:\n%s", r.status, want, r.body)
	}
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
