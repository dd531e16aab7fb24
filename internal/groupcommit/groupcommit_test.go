package groupcommit

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type ctxKey struct{}

// A lone call runs at once with its caller's ctx.
func TestAloneRunsWithTheCallersCtx(t *testing.T) {
	g := &Group[int, int]{Run: func(ctx context.Context, reqs []int) []int {
		if ctx.Value(ctxKey{}) != "caller" {
			t.Error("a lone call ran without its caller's ctx")
		}
		out := make([]int, len(reqs))
		for i, r := range reqs {
			out[i] = r * 2
		}
		return out
	}}
	ctx := context.WithValue(context.Background(), ctxKey{}, "caller")
	for i := range 3 {
		if got, err := g.Do(ctx, i); err != nil || got != 2*i {
			t.Fatalf("Do(%d) = %d, %v", i, got, err)
		}
	}
}

// Concurrent calls share batches, each gets its own result, and no batch
// exceeds MaxBatch or MaxWeight.
func TestConcurrentCallsShareBatches(t *testing.T) {
	var batches, biggest, heaviest atomic.Int64
	g := &Group[int, int]{
		MaxBatch:  16,
		Weight:    func(r int) int { return r%3 + 1 },
		MaxWeight: 20,
		Run: func(_ context.Context, reqs []int) []int {
			batches.Add(1)
			w := 0
			for _, r := range reqs {
				w += r%3 + 1
			}
			for n := int64(len(reqs)); n > biggest.Load(); {
				if biggest.CompareAndSwap(biggest.Load(), n) {
					break
				}
			}
			if len(reqs) > 1 && int64(w) > heaviest.Load() {
				heaviest.Store(int64(w))
			}
			time.Sleep(100 * time.Microsecond) // a round trip
			out := make([]int, len(reqs))
			for i, r := range reqs {
				out[i] = r + 1
			}
			return out
		},
	}
	const callers, each = 64, 200
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for k := range each {
				r := c*each + k
				if got, err := g.Do(context.Background(), r); err != nil || got != r+1 {
					t.Errorf("Do(%d) = %d, %v", r, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := batches.Load(); n >= callers*each {
		t.Errorf("%d batches for %d calls: nothing was combined", n, callers*each)
	}
	if b := biggest.Load(); b > 16 {
		t.Errorf("a batch of %d requests, MaxBatch is 16", b)
	}
	if w := heaviest.Load(); w > 20 {
		t.Errorf("a batch of weight %d, MaxWeight is 20", w)
	}
}

// blocker is a Group whose batches wait for release; started reports each
// batch's requests as it starts.
func blocker() (g *Group[string, string], started chan []string, release chan struct{}) {
	started, release = make(chan []string, 100), make(chan struct{})
	g = &Group[string, string]{Run: func(_ context.Context, reqs []string) []string {
		started <- reqs
		<-release
		return reqs
	}}
	return g, started, release
}

// waitLine waits until n requests wait in g's line.
func waitLine[Req, Res any](g *Group[Req, Res], n int) {
	for {
		g.mu.Lock()
		m := len(g.line)
		g.mu.Unlock()
		if m == n {
			return
		}
		time.Sleep(time.Millisecond)
	}
}

// A caller whose ctx ends while it waits returns at once, and its request
// is not sent.
func TestCancelledWhileWaiting(t *testing.T) {
	g, started, release := blocker()
	first := make(chan error, 1)
	go func() { _, err := g.Do(context.Background(), "first"); first <- err }()
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	gone := make(chan error, 1)
	go func() { _, err := g.Do(ctx, "gone"); gone <- err }()
	kept := make(chan string, 1)
	go func() {
		waitLine(g, 1)
		res, _ := g.Do(context.Background(), "kept")
		kept <- res
	}()
	waitLine(g, 2)
	cancel()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Do = %v, want context.Canceled", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := <-started; len(got) != 1 || got[0] != "kept" {
		t.Fatalf("next batch = %v, want [kept] (the cancelled request unsent)", got)
	}
	if got := <-kept; got != "kept" {
		t.Fatalf("kept = %q", got)
	}
	if _, err := g.Do(ctx, "late"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Do with an ended ctx = %v", err)
	}
}

// A panic in Run is an error for its batch; the group goes on.
func TestPanicIsAnError(t *testing.T) {
	g := &Group[int, int]{Run: func(_ context.Context, reqs []int) []int {
		if reqs[0] < 0 {
			panic("bad request")
		}
		return reqs
	}}
	_, err := g.Do(context.Background(), -1)
	if err == nil || !strings.Contains(err.Error(), "bad request") || !strings.Contains(err.Error(), "groupcommit_test.go") {
		t.Fatalf("Do of a panicking batch = %v, want the panic with its stack", err)
	}
	if got, err := g.Do(context.Background(), 5); err != nil || got != 5 {
		t.Fatalf("Do after the panic = %d, %v", got, err)
	}
	short := &Group[int, int]{Run: func(context.Context, []int) []int { return nil }}
	if _, err := short.Do(context.Background(), 1); err == nil {
		t.Fatal("Do with a Run that returned no result succeeded")
	}
}

// After Close, Do fails; requests in line are still answered.
func TestClose(t *testing.T) {
	g, started, release := blocker()
	first := make(chan error, 1)
	go func() { _, err := g.Do(context.Background(), "first"); first <- err }()
	<-started
	queued := make(chan string, 1)
	go func() { res, _ := g.Do(context.Background(), "queued"); queued <- res }()
	waitLine(g, 1)
	g.Close()
	if _, err := g.Do(context.Background(), "after"); !errors.Is(err, ErrClosed) {
		t.Fatalf("Do after Close = %v, want ErrClosed", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if got := <-queued; got != "queued" {
		t.Fatalf("queued = %q", got)
	}
}
