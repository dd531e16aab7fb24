package engine

import (
	"testing"

	"github.com/conqhq/conq/queue/broker/memory"
)

func TestWeightedOrder(t *testing.T) {
	e := New(Config{Broker: memory.New(memory.Config{}), Queues: []string{"a", "b"}, Weights: []int{3, 1}})
	first := map[string]int{}
	const n = 20000
	for range n {
		first[e.order()[0]]++
	}
	// P(a first) = 3/4 with Efraimidis–Spirakis keys.
	if frac := float64(first["a"]) / n; frac < 0.72 || frac > 0.78 {
		t.Fatalf("a first in %.3f of fetches, want ~0.75", frac)
	}
	e.cfg.StrictPriority = true
	if o := e.order(); o[0] != "a" || o[1] != "b" {
		t.Fatalf("strict order %v", o)
	}
}
