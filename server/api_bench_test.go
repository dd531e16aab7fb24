package server

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/conqhq/conq/queue/broker/memory"
)

// BenchmarkEnqueueCalls256: one POST /api/v1/tasks of 256 call tasks (what
// conq.Executor.map sends), handled in process; ns/op per request, and
// per item in µs/item.
func BenchmarkEnqueueCalls256(b *testing.B) {
	br := memory.New(memory.Config{})
	defer br.Close()
	s, err := New(Config{Broker: br, Logger: quietLogger(), SampleInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Handler()
	items := make([]map[string]any, 256)
	for i := range items {
		items[i] = map[string]any{"kind": "__main__:noop", "args": []int{i}, "kwargs": map[string]any{}}
	}
	body, _ := json.Marshal(map[string]any{"tasks": items, "max_retries": 0, "retention": "600s"})
	for _, minimal := range []bool{false, true} {
		name := map[bool]string{false: "full", true: "minimal"}[minimal]
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest("POST", "http://127.0.0.1/api/v1/tasks", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				if minimal {
					req.Header.Set("Prefer", "return=minimal")
				}
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != http.StatusCreated {
					b.Fatalf("%d %s", w.Code, w.Body.String())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*256), "µs/item")
		})
	}
}
