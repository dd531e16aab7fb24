package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

func TestStreamResults(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testStreamResults(t, newTestServer(t, Config{})) })
	t.Run("redis", func(t *testing.T) { testStreamResults(t, newTestServer(t, Config{Broker: redisBroker(t)})) })
}

// streamLines decodes an NDJSON answer.
func streamLines(t *testing.T, body []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		out = append(out, m)
	}
	return out
}

func testStreamResults(t *testing.T, ts *testServer) {
	a := enqueue(t, ts.b, "sum", []byte(`[1]`), queue.Queue("rs"), queue.Retention(time.Hour))
	b := enqueue(t, ts.b, "sum", []byte(`[2]`), queue.Queue("rs"), queue.Retention(time.Hour))
	c := enqueue(t, ts.b, "sum", []byte(`[3]`), queue.Queue("rs"), queue.Retention(time.Hour))
	d := enqueue(t, ts.b, "sum", nil, queue.Queue("rs"), queue.Retention(time.Hour))
	complete(t, ts.b, "rs", a.ID, []byte(`1`))
	go func() {
		time.Sleep(50 * time.Millisecond)
		complete(t, ts.b, "rs", b.ID, []byte(`2`))
		time.Sleep(50 * time.Millisecond)
		kill(t, ts.b, "rs", c.ID, "boom")
	}()

	// Lines in the order the tasks finish; d never does within the wait.
	r := ts.do(t, "POST", "/api/v1/results:stream", map[string]any{"ids": []string{b.ID, "nope", c.ID, a.ID, d.ID}, "wait": "1s"})
	expectStatus(t, r, http.StatusOK)
	lines := streamLines(t, r.body)
	if len(lines) != 5 {
		t.Fatalf("got %d lines, want 4 answers and the end: %s", len(lines), r.body)
	}
	first := map[any]bool{lines[0]["id"]: true, lines[1]["id"]: true}
	if !first[a.ID] || !first["nope"] {
		t.Fatalf("the done task and the unknown one come first: %s", r.body)
	}
	if lines[2]["id"] != b.ID || lines[2]["result"] != 2.0 || lines[2]["state"] != "completed" {
		t.Fatalf("third line: %s", r.body)
	}
	if lines[3]["id"] != c.ID || lines[3]["state"] != "dead" || lines[3]["last_error"].(map[string]any)["message"] != "boom" {
		t.Fatalf("fourth line: %s", r.body)
	}
	for _, l := range lines[:2] {
		if l["id"] == "nope" && l["not_found"] != true {
			t.Fatalf("unknown id: %s", r.body)
		}
	}
	end := lines[4]
	if end["end"] != true || len(end["pending"].([]any)) != 1 || end["pending"].([]any)[0] != d.ID {
		t.Fatalf("end line: %s", r.body)
	}

	for _, body := range []string{
		`{}`, `{"ids": []}`, `{"ids": ["a", "a"]}`, `{"ids": ["a"], "wait": "soon"}`, `{"ids": ["a"], "min": 1}`,
	} {
		r := ts.do(t, "POST", "/api/v1/results:stream", body)
		if r.status != http.StatusBadRequest || r.errCode(t) != "invalid_argument" {
			t.Errorf("body %s: status %d, %s; want 400 invalid_argument", body, r.status, r.body)
		}
	}
}
