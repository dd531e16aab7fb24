package pool_test

import (
	"context"
	"iter"
	"testing"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/pool"
)

func nop(context.Context) (int, error) { return 1, nil }

// BenchmarkSubmitResult is the per-task overhead from one submitter; see
// bench/ for the comparison with other pools.
func BenchmarkSubmitResult(b *testing.B) {
	p := pool.MustNew(pool.Config{})
	defer p.Close()
	ctx := context.Background()
	fs := make([]*future.Future[int], 0, 1024)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		f, err := pool.Submit(ctx, p, nop)
		if err != nil {
			b.Fatal(err)
		}
		fs = append(fs, f)
		if len(fs) == cap(fs) || i == b.N-1 {
			for _, f := range fs {
				if _, err := f.Result(ctx); err != nil {
					b.Fatal(err)
				}
			}
			fs = fs[:0]
		}
	}
}

// BenchmarkSubmitResultParallel has GOMAXPROCS submitters, each waiting
// for its task: the round trip under contention.
func BenchmarkSubmitResultParallel(b *testing.B) {
	p := pool.MustNew(pool.Config{})
	defer p.Close()
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f, err := pool.Submit(ctx, p, nop)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := f.Result(ctx); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func upTo(n int) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range n {
			if !yield(i) {
				return
			}
		}
	}
}

func BenchmarkMap(b *testing.B) {
	p := pool.MustNew(pool.Config{})
	defer p.Close()
	inc := func(_ context.Context, v int) (int, error) { return v + 1, nil }
	for _, bc := range []struct {
		name  string
		chunk int
	}{{"chunk=1", 1}, {"chunk=64", 64}} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for _, err := range pool.Map(context.Background(), p, upTo(b.N), inc, pool.ChunkSize(bc.chunk)) {
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
