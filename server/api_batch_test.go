package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
)

func TestWaitResultsBatch(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testWaitResultsBatch(t, newTestServer(t, Config{})) })
	t.Run("redis", func(t *testing.T) { testWaitResultsBatch(t, newTestServer(t, Config{Broker: redisBroker(t)})) })
}

func testWaitResultsBatch(t *testing.T, ts *testServer) {
	a := enqueue(t, ts.b, "sum", []byte(`[1]`), queue.Queue("bw"), queue.Retention(time.Hour))
	b := enqueue(t, ts.b, "sum", []byte(`[2]`), queue.Queue("bw"), queue.Retention(time.Hour))
	c := enqueue(t, ts.b, "sum", []byte(`[3]`), queue.Queue("bw"), queue.Retention(time.Hour))
	complete(t, ts.b, "bw", a.ID, []byte(`1`))

	// One done at once: answered without waiting, in request order.
	start := time.Now()
	r := ts.do(t, "POST", "/api/v1/results:wait", map[string]any{"ids": []string{c.ID, "nope", a.ID, b.ID}, "wait": "5s"})
	expectStatus(t, r, http.StatusOK)
	if el := time.Since(start); el > 2*time.Second {
		t.Fatalf("waited %v although a task was done", el)
	}
	m := r.json(t)
	res := m["results"].([]any)
	if len(res) != 1 || res[0].(map[string]any)["id"] != a.ID || res[0].(map[string]any)["result"] != 1.0 {
		t.Fatalf("results: %s", r.body)
	}
	if nf := m["not_found"].([]any); len(nf) != 1 || nf[0] != "nope" {
		t.Fatalf("not_found: %s", r.body)
	}
	if p := m["pending"].([]any); len(p) != 2 || p[0] != c.ID || p[1] != b.ID {
		t.Fatalf("pending: %s", r.body)
	}

	// min: all of them; one completes and one dies during the wait.
	go func() {
		time.Sleep(50 * time.Millisecond)
		complete(t, ts.b, "bw", b.ID, []byte(`2`))
		time.Sleep(50 * time.Millisecond)
		kill(t, ts.b, "bw", c.ID, "boom")
	}()
	r = ts.do(t, "POST", "/api/v1/results:wait", map[string]any{"ids": []string{a.ID, b.ID, c.ID}, "wait": 10, "min": 3})
	expectStatus(t, r, http.StatusOK)
	m = r.json(t)
	res = m["results"].([]any)
	if len(res) != 3 || len(m["pending"].([]any)) != 0 {
		t.Fatalf("after the wait: %s", r.body)
	}
	if d := res[2].(map[string]any); d["state"] != "dead" || d["last_error"].(map[string]any)["message"] != "boom" {
		t.Fatalf("dead task: %s", r.body)
	}

	// The wait runs out: 200 with everything pending.
	d := enqueue(t, ts.b, "sum", nil, queue.Queue("bw2"), queue.Retention(time.Hour))
	start = time.Now()
	r = ts.do(t, "POST", "/api/v1/results:wait", map[string]any{"ids": []string{d.ID}, "wait": "100ms"})
	expectStatus(t, r, http.StatusOK)
	if el := time.Since(start); el < 90*time.Millisecond {
		t.Fatalf("answered after %v, before the wait", el)
	}
	if m := r.json(t); len(m["pending"].([]any)) != 1 || len(m["results"].([]any)) != 0 {
		t.Fatalf("timed-out wait: %s", r.body)
	}

	for _, body := range []string{
		`{}`, `{"ids": []}`, `{"ids": [""]}`, `{"ids": ["a", "a"]}`, `{"ids": ["a"], "wait": "soon"}`,
		`{"ids": ["a"], "wait": -1}`, `{"ids": ["a"], "min": -1}`, `{"ids": ["a"], "extra": 1}`, `[1]`, `{"ids": "a"}`,
	} {
		r := ts.do(t, "POST", "/api/v1/results:wait", body)
		if r.status != http.StatusBadRequest || r.errCode(t) != "invalid_argument" {
			t.Errorf("body %s: status %d, %s; want 400 invalid_argument", body, r.status, r.body)
		}
	}
	expectStatus(t, ts.do(t, "GET", "/api/v1/results:wait", nil), http.StatusMethodNotAllowed)
}

func TestCancelTasksBatch(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testCancelTasksBatch(t, newTestServer(t, Config{})) })
	t.Run("redis", func(t *testing.T) { testCancelTasksBatch(t, newTestServer(t, Config{Broker: redisBroker(t)})) })
}

func testCancelTasksBatch(t *testing.T, ts *testServer) {
	a := enqueue(t, ts.b, "job", nil, queue.Queue("bc"), queue.Retention(time.Hour))
	b := enqueue(t, ts.b, "job", nil, queue.Queue("bc"), queue.Retention(time.Hour), queue.ProcessIn(time.Hour))
	c := enqueue(t, ts.b, "job", nil, queue.Queue("bc2"), queue.Retention(time.Hour))
	complete(t, ts.b, "bc2", c.ID, []byte(`1`))
	r := ts.do(t, "POST", "/api/v1/tasks:cancel", map[string]any{"ids": []string{a.ID, b.ID, c.ID, "nope"}})
	expectStatus(t, r, http.StatusOK)
	res := r.json(t)["results"].([]any)
	if len(res) != 4 {
		t.Fatalf("results: %s", r.body)
	}
	get := func(i int, k string) any { return res[i].(map[string]any)[k] }
	if get(0, "was") != "pending" || get(1, "was") != "scheduled" || get(2, "error") == nil || get(3, "error") == nil {
		t.Fatalf("results: %s", r.body)
	}
	if code := get(2, "error").(map[string]any)["code"]; code != "invalid_state" {
		t.Fatalf("completed task: %v (%s)", code, r.body)
	}
	if code := get(3, "error").(map[string]any)["code"]; code != "task_not_found" {
		t.Fatalf("unknown task: %v (%s)", code, r.body)
	}
	// The cancelled tasks are gone from their queue's waiting states.
	for _, id := range []string{a.ID, b.ID} {
		r := ts.do(t, "GET", "/api/v1/tasks/"+id, nil)
		if m := r.json(t); m["state"] != string(broker.StateDead) {
			t.Fatalf("task %s after cancel: %s", id, r.body)
		}
	}
	r = ts.do(t, "POST", "/api/v1/tasks:cancel", `{"ids": ["a"], "wait": "1s"}`)
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), "results:wait") {
		t.Fatalf("wait on cancel: %d %s", r.status, r.body)
	}
}
