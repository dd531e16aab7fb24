package server

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/memory"
)

// benchHandler is the HTTP handler of a server on br, quiet and without
// the dashboard's sampler, for the benchmarks.
func benchHandler(b *testing.B, br broker.Broker) http.Handler {
	s, err := New(Config{Broker: br, Logger: quietLogger(), SampleInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	return s.Handler()
}

// benchPOST posts body to path on h once per iteration (with Prefer:
// prefer unless empty), fails on an answer want refuses, and reports the
// wall time and, where the platform tells, the process's CPU time (all
// threads, the garbage collector's included) per unit: a request holds per
// of them ("op" 1, "item" its items).
func benchPOST(b *testing.B, h http.Handler, path string, body []byte, prefer string,
	want func(*httptest.ResponseRecorder) bool, per int, unit string) {
	b.ReportAllocs()
	cpu0, cpuOK := processCPU()
	for b.Loop() {
		req := httptest.NewRequest("POST", "http://127.0.0.1"+path, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if prefer != "" {
			req.Header.Set("Prefer", prefer)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if !want(w) {
			b.Fatalf("%d %s", w.Code, w.Body.String())
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*per), "µs/"+unit)
	if cpu1, ok := processCPU(); cpuOK && ok {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N*per), "cpu-µs/"+unit)
	}
}

func created(w *httptest.ResponseRecorder) bool { return w.Code == http.StatusCreated }

// BenchmarkEnqueueCalls256: one POST /api/v1/tasks of 256 call tasks (what
// conq.Executor.map sends), handled in process; ns/op per request, and
// per item µs/item and cpu-µs/item (benchPOST).
func BenchmarkEnqueueCalls256(b *testing.B) {
	br := memory.New(memory.Config{})
	defer br.Close()
	h := benchHandler(b, br)
	items := make([]map[string]any, 256)
	for i := range items {
		items[i] = map[string]any{"kind": "__main__:noop", "args": []int{i}, "kwargs": map[string]any{}}
	}
	body, _ := json.Marshal(map[string]any{"tasks": items, "max_retries": 0, "retention": "600s"})
	b.Run("full", func(b *testing.B) { benchPOST(b, h, "/api/v1/tasks", body, "", created, 256, "item") })
	b.Run("minimal", func(b *testing.B) { benchPOST(b, h, "/api/v1/tasks", body, "return=minimal", created, 256, "item") })
}

// chordBody is what the Python canvas sends for
// conq.chord(conq.group(member.s() for _ in range(10)))(callback.s()):
// compact JSON, each signature {"kind", "args": [], "kwargs": {}}.
func chordBody(members int) []byte {
	sig := func(kind string) map[string]any {
		return map[string]any{"task": map[string]any{"kind": kind, "args": []any{}, "kwargs": map[string]any{}}}
	}
	header := make([]any, members)
	for i := range header {
		header[i] = sig("__main__:member")
	}
	body, _ := json.Marshal(map[string]any{"flow": map[string]any{"chord": map[string]any{
		"header": header, "body": sig("__main__:callback"), "tolerate_failures": false}}})
	return body
}

// BenchmarkCreateChord10: one POST /api/v1/workflows of a chord of 10
// no-op members and a callback (what conq.chord(...)(...) sends), handled
// in process, on the memory broker and on Redis ($CONQ_TEST_REDIS_URL;
// skipped without it), with a live worker that publishes both kinds (so
// the kind check is answered from the cached worker list). cpu-µs/op is
// the process's CPU time (all threads, the garbage collector's included;
// not redis-server's) per request: the server's CPU per chord, which can
// exceed the wall time on more than one core.
func BenchmarkCreateChord10(b *testing.B) {
	b.Run("memory", func(b *testing.B) {
		br := memory.New(memory.Config{})
		defer br.Close()
		benchCreateChord(b, br)
	})
	b.Run("redis", func(b *testing.B) { benchCreateChord(b, redisBroker(b)) })
}

func benchCreateChord(b *testing.B, br broker.Broker) {
	now := time.Now()
	if err := br.Heartbeat(context.Background(), broker.WorkerInfo{ID: "w1", Queues: []string{"default"},
		Kinds: []string{"__main__:member", "__main__:callback"}, StartedAt: now, HeartbeatAt: now}, time.Hour); err != nil {
		b.Fatal(err)
	}
	h := benchHandler(b, br)
	benchPOST(b, h, "/api/v1/workflows", chordBody(10), "", created, 1, "op")
}

// BenchmarkStreamResults256: one POST /api/v1/results:stream of 256 tasks
// that are already completed with the result null (what a no-op Python
// task returns; the ids of one enqueue call of conq.Executor.map), handled
// in process on the memory broker: 256 result lines and the end line.
// ns/op per request, µs/item per result line, and cpu-µs/item the
// process's CPU time (all threads, the garbage collector's included) per
// line. Like conq.Executor's streams, the request names no queue.
func BenchmarkStreamResults256(b *testing.B) {
	br := memory.New(memory.Config{})
	defer br.Close()
	h := benchHandler(b, br)
	ctx := context.Background()
	c, err := queue.NewClient(br, queue.ClientConfig{})
	if err != nil {
		b.Fatal(err)
	}
	const n = 256
	tasks := make([]*queue.Task, n)
	for i := range tasks {
		if tasks[i], err = queue.NewCallTask("__main__:noop", []any{i}, nil); err != nil {
			b.Fatal(err)
		}
	}
	infos, err := c.EnqueueMany(ctx, tasks, queue.Queue("default"), queue.MaxRetries(0), queue.Retention(time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	for i, info := range infos {
		ids[i] = info.ID
	}
	leased, err := br.Fetch(ctx, broker.FetchParams{Queues: []string{"default"}, Max: n, Lease: time.Hour, WorkerID: "w1"})
	if err != nil || len(leased) != n {
		b.Fatalf("fetch: %d tasks, %v", len(leased), err)
	}
	for _, t := range leased {
		if err := br.Complete(ctx, broker.Ack{LeaseRef: broker.LeaseRef{Queue: t.Queue, ID: t.ID, Token: t.Token}, Result: []byte("null")}); err != nil {
			b.Fatal(err)
		}
	}
	body, _ := json.Marshal(map[string]any{"ids": ids, "wait": "30.000s"}) // no queue, as conq.Executor
	benchPOST(b, h, "/api/v1/results:stream", body, "", func(w *httptest.ResponseRecorder) bool {
		return w.Code == http.StatusOK && bytes.Count(w.Body.Bytes(), []byte("\n")) == n+1
	}, n, "item")
}
