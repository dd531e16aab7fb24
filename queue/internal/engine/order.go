package engine

import (
	"cmp"
	"math"
	mrand "math/rand/v2"
	"slices"
)

// order returns the queues in the order to try them for one fetch.
func (e *Engine) order() []string {
	qs := e.cfg.Queues
	if e.cfg.StrictPriority || len(qs) == 1 {
		return qs
	}
	// Weighted shuffle (Efraimidis–Spirakis): key u^(1/weight), highest first.
	type kv struct {
		q string
		k float64
	}
	keys := make([]kv, len(qs))
	for i, q := range qs {
		keys[i] = kv{q, math.Pow(mrand.Float64(), 1/float64(e.cfg.Weights[i]))}
	}
	slices.SortFunc(keys, func(a, b kv) int { return cmp.Compare(b.k, a.k) })
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.q
	}
	return out
}
