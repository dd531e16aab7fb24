package queue

import (
	"testing"

	"github.com/conqhq/conq/queue/broker/memory"
)

func TestWeightedOrder(t *testing.T) {
	w, err := NewWorker(memory.New(memory.Config{}), WorkerConfig{Queues: map[string]int{"a": 3, "b": 1}})
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]int{}
	const n = 20000
	for range n {
		first[w.order()[0]]++
	}
	// P(a first) = 3/4 with Efraimidis–Spirakis keys.
	if frac := float64(first["a"]) / n; frac < 0.72 || frac > 0.78 {
		t.Fatalf("a first in %.3f of fetches, want ~0.75", frac)
	}
	w.cfg.StrictPriority = true
	if o := w.order(); o[0] != "a" || o[1] != "b" {
		t.Fatalf("strict order %v", o)
	}
}
