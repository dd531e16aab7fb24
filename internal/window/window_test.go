package window

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conqhq/conq/future"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The pool and procpool tests run the window with their executors; these
// run it with the smallest real one, a goroutine a task, to reach what
// those cannot: Submitters without Many, submissions failing for one input
// only, and the exact points where a map stops.

type stopFunc func()

func (f stopFunc) Stop() { f() }

// goSubmit runs each input on a goroutine of its own. It counts the
// submissions; fail, if not nil, rejects an input before it runs.
type goSubmit struct {
	fn        func(context.Context, int) (int, error)
	fail      func(int) error
	submitted atomic.Int32
	running   atomic.Int32
}

func (g *goSubmit) one(ctx context.Context, v int) (*future.Future[int], error) {
	g.submitted.Add(1)
	if g.fail != nil {
		if err := g.fail(v); err != nil {
			return nil, err
		}
	}
	p := future.NewPromise[int]()
	tctx, cancel := context.WithCancel(ctx)
	go func() {
		defer cancel()
		if !p.Start(stopFunc(cancel)) {
			return // cancelled first: it never runs
		}
		g.running.Add(1)
		v, err := g.fn(tctx, v)
		g.running.Add(-1) // before the future is done, for the tests that count
		p.Resolve(v, err)
	}()
	return p.Future(), nil
}

func (g *goSubmit) submitter() Submitter[int, int] { return Submitter[int, int]{One: g.one} }

func upTo(n int, pulled *atomic.Int32) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range n {
			if pulled != nil {
				pulled.Add(1)
			}
			if !yield(i) {
				return
			}
		}
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type pair struct {
	v   int
	err error
}

func collect(seq iter.Seq2[int, error]) []pair {
	var ps []pair
	for v, err := range seq {
		ps = append(ps, pair{v, err})
	}
	return ps
}

func values(ps []pair) []int {
	var vs []int
	for _, p := range ps {
		vs = append(vs, p.v)
	}
	return vs
}

var errOdd = errors.New("odd")

// jittered finishes later inputs first, fails the odd ones with errOdd.
func jittered(_ context.Context, v int) (int, error) {
	time.Sleep(time.Duration(10-v%10) * 100 * time.Microsecond)
	if v%2 == 1 {
		return v, errOdd
	}
	return v, nil
}

func TestConfig(t *testing.T) {
	if c := NewConfig(3, nil); c != (Config{Window: 3 * DefaultPerWorker, Chunk: 1}) {
		t.Errorf("defaults = %+v", c)
	}
	if c := NewConfig(0, nil); c.Window != DefaultPerWorker {
		t.Errorf("no workers: window %d", c.Window)
	}
	if c := NewConfig(2, []Option{Size(5), Chunk(7), StopOnError(true)}); c != (Config{Window: 5, Chunk: 7, StopOnError: true}) {
		t.Errorf("options = %+v", c)
	}
	for _, o := range []Option{Size(0), Chunk(0), Chunk(-3)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%+v accepted", NewConfig(1, []Option{o}))
				}
			}()
			NewConfig(1, []Option{o})
		}()
	}
}

// TestGatheredChunks: without Many, a chunk's inputs are submitted one by
// one and yielded in order, every pair in its place.
func TestGatheredChunks(t *testing.T) {
	for _, chunk := range []int{1, 3, 50} {
		g := &goSubmit{fn: jittered}
		ps := collect(Ordered(ctxT(t), upTo(23, nil), NewConfig(2, []Option{Chunk(chunk), Size(2)}), g.submitter()))
		if !slices.Equal(values(ps), slices.Collect(upTo(23, nil))) {
			t.Fatalf("chunk %d: values %v", chunk, values(ps))
		}
		for i, p := range ps {
			if (i%2 == 1) != errors.Is(p.err, errOdd) {
				t.Errorf("chunk %d: input %d: %v", chunk, i, p.err)
			}
		}
		// Unordered: the same pairs, in some order.
		ps = collect(Unordered(ctxT(t), upTo(23, nil), NewConfig(2, []Option{Chunk(chunk), Size(2)}), g.submitter()))
		vs := values(ps)
		slices.Sort(vs)
		if len(vs) != 23 || vs[0] != 0 || vs[22] != 22 {
			t.Errorf("chunk %d: unordered values %v", chunk, vs)
		}
	}
}

// TestSubmissionErrorKeepsItsPlace: an input the executor rejects (say, too
// large) is that input's error, and the map goes on — unless StopOnError.
func TestSubmissionErrorKeepsItsPlace(t *testing.T) {
	tooBig := errors.New("too big")
	for _, chunk := range []int{1, 4} {
		g := &goSubmit{fn: func(_ context.Context, v int) (int, error) { return v, nil },
			fail: func(v int) error {
				if v == 5 {
					return tooBig
				}
				return nil
			}}
		ps := collect(Ordered(ctxT(t), upTo(10, nil), NewConfig(2, []Option{Chunk(chunk)}), g.submitter()))
		if len(ps) != 10 || !errors.Is(ps[5].err, tooBig) || ps[4].err != nil || ps[6].v != 6 {
			t.Errorf("chunk %d: %v", chunk, ps)
		}
		ps = collect(Ordered(ctxT(t), upTo(10, nil), NewConfig(2, []Option{Chunk(chunk), StopOnError(true)}), g.submitter()))
		if len(ps) != 6 || !errors.Is(ps[5].err, tooBig) {
			t.Errorf("chunk %d, StopOnError: %v", chunk, ps)
		}
	}
}

// TestClosedEndsTheMap: once the executor is closed, the inputs before are
// still yielded, then one error matching ErrClosed, and the input is not
// read further.
func TestClosedEndsTheMap(t *testing.T) {
	for _, chunk := range []int{1, 3} {
		var pulled atomic.Int32
		g := &goSubmit{fn: func(_ context.Context, v int) (int, error) { return v, nil },
			fail: func(v int) error {
				if v >= 4 {
					return fmt.Errorf("shutting down: %w", future.ErrClosed)
				}
				return nil
			}}
		ps := collect(Ordered(ctxT(t), upTo(1000, &pulled), NewConfig(4, []Option{Chunk(chunk)}), g.submitter()))
		last := ps[len(ps)-1]
		if !errors.Is(last.err, future.ErrClosed) || !slices.Equal(values(ps[:4]), []int{0, 1, 2, 3}) || len(ps) != 5 {
			t.Errorf("chunk %d: %v", chunk, ps)
		}
		if n := g.submitted.Load(); n != 5 {
			t.Errorf("chunk %d: %d submissions, want 5: none after the first ErrClosed", chunk, n)
		}
		if n := pulled.Load(); n > 4+int32(chunk) {
			t.Errorf("chunk %d: %d inputs read", chunk, n)
		}
	}
}

// TestStopOnError: the first error (in yield order) is the last pair; the
// rest in flight is cancelled and waited for.
func TestStopOnError(t *testing.T) {
	slowAfter := func(ctx context.Context, v int) (int, error) {
		switch {
		case v == 3:
			return v, errOdd
		case v > 3:
			select { // runs until cancelled
			case <-ctx.Done():
				return v, ctx.Err()
			case <-time.After(10 * time.Second):
				return v, nil
			}
		}
		return v, nil
	}
	for _, chunk := range []int{1, 2} {
		for name, mapper := range map[string]func(context.Context, iter.Seq[int], Config, Submitter[int, int]) iter.Seq2[int, error]{
			"Ordered": Ordered[int, int], "Unordered": Unordered[int, int],
		} {
			g := &goSubmit{fn: slowAfter}
			ps := collect(mapper(ctxT(t), upTo(100, nil), NewConfig(2, []Option{Chunk(chunk), StopOnError(true)}), g.submitter()))
			if last := ps[len(ps)-1]; !errors.Is(last.err, errOdd) || last.v != 3 {
				t.Errorf("%s chunk %d: %v", name, chunk, ps)
			}
			if name == "Ordered" && len(ps) != 4 {
				t.Errorf("%s chunk %d: %v", name, chunk, ps)
			}
			if n := g.running.Load(); n != 0 {
				t.Errorf("%s chunk %d: %d still running after the map returned", name, chunk, n)
			}
		}
	}
}

// TestBreakCancelsGatheredChunk: breaking out cancels the parts of a
// gathered chunk that are running, and waits for them.
func TestBreakCancelsGatheredChunk(t *testing.T) {
	var cancelled atomic.Int32
	started := make(chan struct{}, 4)
	g := &goSubmit{fn: func(ctx context.Context, v int) (int, error) {
		if v < 4 { // the first chunk, whose results come back
			return v, nil
		}
		select {
		case started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		cancelled.Add(1)
		return v, ctx.Err()
	}}
	for _, err := range Ordered(ctxT(t), upTo(100, nil), NewConfig(1, []Option{Chunk(4), Size(2)}), g.submitter()) {
		if err != nil {
			t.Fatal(err)
		}
		// The second chunk was submitted with the first; break once one
		// of its parts runs (on a busy machine its goroutines may not
		// have started yet, and a part cancelled before it starts never
		// runs, so it could not see its ctx end).
		select {
		case <-started:
		case <-time.After(10 * time.Second):
			t.Fatal("no part of the second chunk started in 10s")
		}
		break
	}
	if n := g.running.Load(); n != 0 {
		t.Errorf("%d parts still running after the loop broke", n)
	}
	if cancelled.Load() == 0 {
		t.Error("no part saw its ctx cancelled")
	}
}

// TestCtxEnds: the last pair is ctx's error, and nothing is left running.
func TestCtxEnds(t *testing.T) {
	for _, chunk := range []int{1, 3} {
		ctx, cancel := context.WithCancel(ctxT(t))
		g := &goSubmit{fn: func(tctx context.Context, v int) (int, error) {
			if v == 7 {
				cancel()
			}
			if v >= 7 {
				<-tctx.Done()
				return v, tctx.Err()
			}
			return v, nil
		}}
		ps := collect(Ordered(ctx, upTo(1000, nil), NewConfig(2, []Option{Chunk(chunk)}), g.submitter()))
		if last := ps[len(ps)-1]; !errors.Is(last.err, context.Canceled) || len(ps) > 20 {
			t.Errorf("chunk %d: %d pairs, last %v", chunk, len(ps), last)
		}
		if n := g.running.Load(); n != 0 {
			t.Errorf("chunk %d: %d still running", chunk, n)
		}
	}
}
