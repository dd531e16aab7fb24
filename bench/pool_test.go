package bench

import (
	"context"
	"runtime"
	"sync"
	"testing"

	"github.com/alitto/pond/v2"
	"github.com/panjf2000/ants/v2"
	concpool "github.com/sourcegraph/conc/pool"
	"golang.org/x/sync/errgroup"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/pool"
)

// batch is how many tasks are submitted before their results are read:
// enough to keep every worker busy, bounded so the benchmark's own
// bookkeeping stays flat.
const batch = 1024

// work is the tiny task: a few nanoseconds of arithmetic, so that the
// benchmarks measure the libraries, not the work.
//
//go:noinline
func work(x int) int {
	for i := 0; i < 8; i++ {
		x = x*31 + i
	}
	return x
}

// runner is one way of running tasks: submit(i) starts work(i), which must
// store its result in results[i]; wait(n) returns once the n tasks of the
// batch have. results has room for a batch.
type runner struct {
	submit func(i int) error
	wait   func(n int) error
	close  func()
}

type peer struct {
	name string
	new  func(workers int, results []int) (runner, error)
}

// peers are the contenders, each used the way its documentation shows for
// "run these and collect the results".
var peers = []peer{
	{"goroutines", func(_ int, results []int) (runner, error) {
		var wg sync.WaitGroup
		return runner{
			submit: func(i int) error { wg.Go(func() { results[i] = work(i) }); return nil },
			wait:   func(int) error { wg.Wait(); return nil },
		}, nil
	}},
	{"errgroup", func(workers int, results []int) (runner, error) {
		var g *errgroup.Group
		return runner{
			submit: func(i int) error {
				if g == nil { // a group is done after Wait: one per batch
					g = new(errgroup.Group)
					g.SetLimit(workers)
				}
				g.Go(func() error { results[i] = work(i); return nil })
				return nil
			},
			wait: func(int) error { err := g.Wait(); g = nil; return err },
		}, nil
	}},
	{"ants", func(workers int, results []int) (runner, error) {
		p, err := ants.NewPool(workers)
		if err != nil {
			return runner{}, err
		}
		var wg sync.WaitGroup
		return runner{
			submit: func(i int) error {
				wg.Add(1)
				return p.Submit(func() { results[i] = work(i); wg.Done() })
			},
			wait:  func(int) error { wg.Wait(); return nil },
			close: p.Release,
		}, nil
	}},
	{"pond", func(workers int, results []int) (runner, error) {
		p := pond.NewResultPool[int](workers)
		tasks := make([]pond.ResultTask[int], batch)
		return runner{
			submit: func(i int) error { tasks[i] = p.Submit(func() int { return work(i) }); return nil },
			wait: func(n int) error {
				for i := range n {
					v, err := tasks[i].Wait()
					if err != nil {
						return err
					}
					results[i] = v
				}
				return nil
			},
			close: p.StopAndWait,
		}, nil
	}},
	{"conc", func(workers int, results []int) (runner, error) {
		var p *concpool.Pool
		return runner{
			submit: func(i int) error {
				if p == nil { // a pool is done after Wait: one per batch
					p = concpool.New().WithMaxGoroutines(workers)
				}
				p.Go(func() { results[i] = work(i) })
				return nil
			},
			wait: func(int) error { p.Wait(); p = nil; return nil },
		}, nil
	}},
	{"conq", func(workers int, results []int) (runner, error) {
		p, err := pool.New(pool.Config{Workers: workers})
		if err != nil {
			return runner{}, err
		}
		ctx := context.Background()
		fs := make([]*future.Future[int], batch)
		return runner{
			submit: func(i int) (err error) {
				fs[i], err = pool.Submit(ctx, p, func(context.Context) (int, error) { return work(i), nil })
				return err
			},
			wait: func(n int) error {
				for i := range n {
					v, err := fs[i].Result(ctx)
					if err != nil {
						return err
					}
					results[i] = v
				}
				return nil
			},
			close: func() { _ = p.Close() },
		}, nil
	}},
}

// run pushes n tasks through r in batches.
func (r runner) run(n int) error {
	for done := 0; done < n; {
		m := min(batch, n-done)
		for i := range m {
			if err := r.submit(i); err != nil {
				return err
			}
		}
		if err := r.wait(m); err != nil {
			return err
		}
		done += m
	}
	return nil
}

// BenchmarkPool measures per-task overhead: submit a tiny task and read
// its result, with as many workers as CPUs.
func BenchmarkPool(b *testing.B) {
	workers := runtime.GOMAXPROCS(0)
	for _, p := range peers {
		b.Run(p.name, func(b *testing.B) {
			results := make([]int, batch)
			r, err := p.new(workers, results)
			if err != nil {
				b.Fatal(err)
			}
			if r.close != nil {
				defer r.close()
			}
			b.ReportAllocs()
			b.ResetTimer()
			if err := r.run(b.N); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// TestPeers checks that every contender really runs the work, so the
// benchmark compares like with like.
func TestPeers(t *testing.T) {
	for _, p := range peers {
		t.Run(p.name, func(t *testing.T) {
			results := make([]int, batch)
			r, err := p.new(4, results)
			if err != nil {
				t.Fatal(err)
			}
			if r.close != nil {
				defer r.close()
			}
			if err := r.run(batch + 100); err != nil {
				t.Fatal(err)
			}
			for i, v := range results {
				if want := work(i); v != want {
					t.Fatalf("results[%d] = %d, want %d", i, v, want)
				}
			}
		})
	}
}
