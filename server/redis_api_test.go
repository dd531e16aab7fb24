package server

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

// TestAPIOnRedis runs the main API paths against the Redis broker, whose
// errors and encodings differ from the memory broker's.
func TestAPIOnRedis(t *testing.T) {
	b := redisBroker(t)
	ts := newTestServer(t, Config{Broker: b})

	r := ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k", "payload": map[string]int{"n": 1}, "queue": "rq", "id": "r/1", "retention": "1h"})
	expectStatus(t, r, http.StatusCreated)
	r = ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k", "queue": "rq", "id": "r/1"})
	expectStatus(t, r, http.StatusConflict)
	if c := r.errCode(t); c != "duplicate_id" {
		t.Fatalf("code %q", c)
	}
	path := "/api/v1/tasks/" + url.PathEscape("r/1")
	r = ts.do(t, "GET", path, nil)
	expectStatus(t, r, http.StatusOK)
	if m := r.json(t); m["payload"].(map[string]any)["n"] != 1.0 || m["retention"] != "1h0m0s" {
		t.Fatalf("task: %s", r.body)
	}
	expectStatus(t, ts.do(t, "GET", path+"/result?wait=50ms", nil), http.StatusAccepted)
	go func() {
		time.Sleep(50 * time.Millisecond)
		complete(t, b, "rq", "r/1", []byte(`"done"`))
	}()
	r = ts.do(t, "GET", path+"/result?wait=5s", nil)
	expectStatus(t, r, http.StatusOK)
	if m := r.json(t); m["result"] != "done" {
		t.Fatalf("result: %s", r.body)
	}

	d := enqueue(t, b, "k", []byte("<b>"), queue.Queue("rq"))
	kill(t, b, "rq", d.ID, "boom")
	r = ts.do(t, "GET", "/api/v1/queues/rq/tasks?state=dead", nil)
	expectStatus(t, r, http.StatusOK)
	if tasks := r.json(t)["tasks"].([]any); len(tasks) != 1 || tasks[0].(map[string]any)["payload_base64"] == nil {
		t.Fatalf("dead list: %s", r.body)
	}
	expectStatus(t, ts.do(t, "POST", "/api/v1/tasks/"+d.ID+"/retry", nil), http.StatusOK)
	expectStatus(t, ts.do(t, "POST", "/api/v1/tasks/"+d.ID+"/retry", nil), http.StatusConflict)
	expectStatus(t, ts.do(t, "DELETE", "/api/v1/tasks/"+d.ID, nil), http.StatusNoContent)
	expectStatus(t, ts.do(t, "DELETE", "/api/v1/tasks/"+d.ID, nil), http.StatusNotFound)
	expectStatus(t, ts.do(t, "POST", "/api/v1/queues/rq/pause", nil), http.StatusOK)
	r = ts.do(t, "GET", "/api/v1/queues/rq", nil)
	expectStatus(t, r, http.StatusOK)
	if r.json(t)["paused"] != true {
		t.Fatalf("queue: %s", r.body)
	}
	expectStatus(t, ts.do(t, "GET", "/queues/rq?state=completed", nil), http.StatusOK)
	expectStatus(t, ts.do(t, "GET", "/queues/rq/tasks/"+url.PathEscape("r/1"), nil), http.StatusOK)
}
