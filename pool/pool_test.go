package pool_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/pool"
)

// long bounds waits that should end quickly, so a bug fails the test
// instead of hanging it.
const long = 10 * time.Second

func newPool(t *testing.T, cfg pool.Config) *pool.Pool {
	t.Helper()
	p, err := pool.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), long)
	t.Cleanup(cancel)
	return ctx
}

// gate is a task that runs until released.
type gate struct {
	started chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{started: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) task(v int) func(context.Context) (int, error) {
	return func(context.Context) (int, error) {
		close(g.started)
		<-g.release
		return v, nil
	}
}

func (g *gate) waitStarted(t *testing.T) {
	t.Helper()
	select {
	case <-g.started:
	case <-time.After(long):
		t.Fatal("task did not start")
	}
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(long)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg   pool.Config
		field string
	}{
		{pool.Config{Workers: -1}, "Workers"},
		{pool.Config{QueueSize: -3}, "QueueSize"},
	} {
		p, err := pool.New(tc.cfg)
		if err == nil {
			_ = p.Close()
			t.Fatalf("New(%+v) succeeded", tc.cfg)
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("New(%+v) error %q does not name %s", tc.cfg, err, tc.field)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("MustNew with a bad config did not panic")
		}
	}()
	pool.MustNew(pool.Config{Workers: -1})
}

func TestConfigDefaults(t *testing.T) {
	p := newPool(t, pool.Config{})
	if got, want := p.Workers(), runtime.GOMAXPROCS(0); got != want {
		t.Errorf("Workers() = %d, want GOMAXPROCS %d", got, want)
	}
	if got := p.Stats().Workers; got != p.Workers() {
		t.Errorf("Stats().Workers = %d", got)
	}
}

func TestSubmitResult(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 4})
	ctx := waitCtx(t)
	boom := errors.New("boom")
	ok, err := pool.Submit(ctx, p, func(context.Context) (string, error) { return "hi", nil })
	if err != nil {
		t.Fatal(err)
	}
	bad, err := pool.Submit(ctx, p, func(context.Context) (string, error) { return "partial", boom })
	if err != nil {
		t.Fatal(err)
	}
	if v, err := ok.Result(ctx); v != "hi" || err != nil {
		t.Errorf("ok.Result = %q, %v", v, err)
	}
	if v, err := bad.Result(ctx); v != "partial" || !errors.Is(err, boom) {
		t.Errorf("bad.Result = %q, %v; want the value and error fn returned", v, err)
	}
	if ok.State() != future.Done || bad.State() != future.Done {
		t.Errorf("states %v %v, want done", ok.State(), bad.State())
	}
}

func TestSubmitManyConcurrently(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 3, QueueSize: 2})
	ctx := waitCtx(t)
	const submitters, each = 8, 200
	var wg sync.WaitGroup
	var sum atomic.Int64
	for s := range submitters {
		wg.Go(func() {
			fs := make([]*future.Future[int], 0, each)
			for i := range each {
				f, err := pool.Submit(ctx, p, func(context.Context) (int, error) { return s*each + i, nil })
				if err != nil {
					t.Error(err)
					return
				}
				fs = append(fs, f)
			}
			for _, f := range fs {
				v, err := f.Result(ctx)
				if err != nil {
					t.Error(err)
				}
				sum.Add(int64(v))
			}
		})
	}
	wg.Wait()
	n := submitters * each
	if got, want := sum.Load(), int64(n*(n-1)/2); got != want {
		t.Errorf("sum = %d, want %d", got, want)
	}
	st := p.Stats()
	if st.Submitted != uint64(n) || st.Completed != uint64(n) || st.Queued != 0 || st.Running != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestPanicBecomesError(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	ctx := waitCtx(t)
	f, err := pool.Submit(ctx, p, func(context.Context) (int, error) { panic("kaboom") })
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Result(ctx)
	var pe *pool.PanicError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *PanicError", err)
	}
	if pe.Value != "kaboom" || !strings.Contains(string(pe.Stack), "pool_test.go") {
		t.Errorf("PanicError value %v, stack:\n%s", pe.Value, pe.Stack)
	}
	// An error value passed to panic is visible through errors.Is.
	sentinel := errors.New("sentinel")
	f, _ = pool.Submit(ctx, p, func(context.Context) (int, error) { panic(sentinel) })
	if err := f.Err(ctx); !errors.Is(err, sentinel) {
		t.Errorf("err = %v, want it to wrap the panic value", err)
	}
	// The single worker survived both panics.
	f, _ = pool.Submit(ctx, p, func(context.Context) (int, error) { return 7, nil })
	if v, err := f.Result(ctx); v != 7 || err != nil {
		t.Errorf("after panics: %v, %v", v, err)
	}
	if st := p.Stats(); st.Failed != 2 || st.Completed != 1 {
		t.Errorf("Stats = %+v, want 2 failed, 1 completed", st)
	}
}

func TestBackPressure(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1, QueueSize: 1})
	ctx := waitCtx(t)
	g := newGate()
	running, _ := pool.Submit(ctx, p, g.task(1))
	g.waitStarted(t)
	queued, err := pool.TrySubmit(ctx, p, func(context.Context) (int, error) { return 2, nil })
	if err != nil {
		t.Fatalf("TrySubmit into an empty queue: %v", err)
	}
	if _, err := pool.TrySubmit(ctx, p, func(context.Context) (int, error) { return 3, nil }); !errors.Is(err, pool.ErrQueueFull) {
		t.Fatalf("TrySubmit into a full queue: %v, want ErrQueueFull", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := pool.Submit(short, p, func(context.Context) (int, error) { return 3, nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Submit into a full queue: %v, want ctx's error", err)
	}
	if st := p.Stats(); st.Submitted != 2 || st.Queued != 1 || st.Running != 1 {
		t.Errorf("Stats = %+v, want 2 submitted, 1 queued, 1 running", st)
	}

	// A blocked Submit goes through once there is room.
	type res struct {
		f   *future.Future[int]
		err error
	}
	blocked := make(chan res)
	go func() {
		f, err := pool.Submit(ctx, p, func(context.Context) (int, error) { return 3, nil })
		blocked <- res{f, err}
	}()
	select {
	case <-blocked:
		t.Fatal("Submit did not block on a full queue")
	case <-time.After(20 * time.Millisecond):
	}
	close(g.release)
	r := <-blocked
	if r.err != nil {
		t.Fatal(r.err)
	}
	for i, f := range []*future.Future[int]{running, queued, r.f} {
		if v, err := f.Result(ctx); v != i+1 || err != nil {
			t.Errorf("future %d: %v, %v", i, v, err)
		}
	}
}

func TestSubmitWithDoneCtx(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := pool.Submit(ctx, p, func(context.Context) (int, error) { return 0, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("Submit with a cancelled ctx: %v", err)
	}
	if _, err := pool.TrySubmit(ctx, p, func(context.Context) (int, error) { return 0, nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("TrySubmit with a cancelled ctx: %v", err)
	}
	if st := p.Stats(); st.Submitted != 0 {
		t.Errorf("Stats = %+v, want nothing submitted", st)
	}
}

func TestSubmitNilPanics(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	defer func() {
		if recover() == nil {
			t.Error("Submit(nil) did not panic")
		}
	}()
	_, _ = pool.Submit[int](context.Background(), p, nil)
}

func TestClosedRejects(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := waitCtx(t)
	if _, err := pool.Submit(ctx, p, func(context.Context) (int, error) { return 0, nil }); !errors.Is(err, pool.ErrClosed) {
		t.Errorf("Submit after Close: %v", err)
	}
	if _, err := pool.TrySubmit(ctx, p, func(context.Context) (int, error) { return 0, nil }); !errors.Is(err, pool.ErrClosed) {
		t.Errorf("TrySubmit after Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestShutdownWakesBlockedSubmit(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1, QueueSize: 1})
	ctx := waitCtx(t)
	g := newGate()
	_, _ = pool.Submit(ctx, p, g.task(1))
	g.waitStarted(t)
	_, _ = pool.Submit(ctx, p, func(context.Context) (int, error) { return 2, nil })
	errc := make(chan error)
	go func() {
		_, err := pool.Submit(ctx, p, func(context.Context) (int, error) { return 3, nil })
		errc <- err
	}()
	time.Sleep(10 * time.Millisecond) // let it block
	shut := make(chan error)
	go func() { shut <- p.Shutdown(ctx) }()
	if err := <-errc; !errors.Is(err, pool.ErrClosed) {
		t.Errorf("blocked Submit during shutdown: %v, want ErrClosed", err)
	}
	close(g.release)
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

func TestShutdownFinishesQueuedAndRunning(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 2, QueueSize: 100})
	ctx := waitCtx(t)
	var ran atomic.Int32
	var fs []*future.Future[int]
	for i := range 50 {
		f, err := pool.Submit(ctx, p, func(context.Context) (int, error) {
			time.Sleep(100 * time.Microsecond)
			ran.Add(1)
			return i, nil
		})
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if ran.Load() != 50 {
		t.Errorf("%d of 50 tasks ran before Shutdown returned", ran.Load())
	}
	for i, f := range fs {
		if f.State() != future.Done {
			t.Errorf("future %d is %v after Shutdown", i, f.State())
		}
	}
	if st := p.Stats(); st.Completed != 50 || st.Queued != 0 || st.Running != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestShutdownDeadline(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1, QueueSize: 10})
	ctx := waitCtx(t)
	sawCancel := make(chan error, 1)
	started := make(chan struct{})
	finish := make(chan struct{})
	running, _ := pool.Submit(ctx, p, func(ctx context.Context) (int, error) {
		close(started)
		<-ctx.Done()
		sawCancel <- ctx.Err()
		<-finish // a straggler: keeps going after its ctx ended
		return 1, ctx.Err()
	})
	<-started
	var queued []*future.Future[int]
	for range 3 {
		f, _ := pool.Submit(ctx, p, func(context.Context) (int, error) { return 2, nil })
		queued = append(queued, f)
	}
	short, cancel := context.WithTimeout(ctx, 30*time.Millisecond)
	defer cancel()
	if err := p.Shutdown(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want ctx's error", err)
	}
	if err := <-sawCancel; !errors.Is(err, context.Canceled) {
		t.Errorf("running task saw %v", err)
	}
	for i, f := range queued {
		_, err := f.Result(ctx)
		if f.State() != future.Cancelled || !future.IsCancelled(err) || !errors.Is(err, pool.ErrClosed) {
			t.Errorf("queued future %d: state %v, err %v", i, f.State(), err)
		}
	}
	if running.State() != future.Running {
		t.Errorf("straggler is %v, want still running", running.State())
	}
	close(finish)
	// Close after an expired Shutdown waits for the stragglers.
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := running.Result(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("straggler result: %v", err)
	}
	if st := p.Stats(); st.Cancelled != 3 || st.Failed != 1 || st.Queued != 0 || st.Running != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestShutdownAlreadyExpiredCtx(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Nothing running: Shutdown succeeds even with an ended ctx.
	if err := p.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown of an idle pool: %v", err)
	}
}

func TestCancelQueued(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1, QueueSize: 4})
	ctx := waitCtx(t)
	g := newGate()
	_, _ = pool.Submit(ctx, p, g.task(1))
	g.waitStarted(t)
	var ran atomic.Bool
	f, _ := pool.Submit(ctx, p, func(context.Context) (int, error) { ran.Store(true); return 2, nil })
	if !f.Cancel() {
		t.Fatal("Cancel of a queued task returned false")
	}
	if _, err := f.Result(ctx); !future.IsCancelled(err) || f.State() != future.Cancelled {
		t.Errorf("cancelled: %v %v", f.State(), err)
	}
	close(g.release)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if ran.Load() {
		t.Error("a cancelled task ran")
	}
	if st := p.Stats(); st.Cancelled != 1 || st.Completed != 1 || st.Queued != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestCancelRunning(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	ctx := waitCtx(t)
	started := make(chan struct{})
	f, _ := pool.Submit(ctx, p, func(ctx context.Context) (string, error) {
		close(started)
		<-ctx.Done()
		return "stopped", ctx.Err()
	})
	<-started
	if f.Cancel() {
		t.Error("Cancel of a running task returned true")
	}
	v, err := f.Result(ctx)
	if v != "stopped" || !errors.Is(err, context.Canceled) || f.State() != future.Done {
		t.Errorf("after Cancel: %q, %v, %v; want what the task returned", v, err, f.State())
	}
}

type key struct{}

func TestTaskCtxInheritsSubmitCtx(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 2})
	base := context.WithValue(context.Background(), key{}, "v")
	deadline := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(base, deadline)
	defer cancel()

	started := make(chan struct{})
	f, _ := pool.Submit(ctx, p, func(tctx context.Context) (string, error) {
		if got := tctx.Value(key{}); got != "v" {
			return "", fmt.Errorf("Value = %v", got)
		}
		if d, ok := tctx.Deadline(); !ok || !d.Equal(deadline) {
			return "", fmt.Errorf("Deadline = %v, %v", d, ok)
		}
		if err := tctx.Err(); err != nil {
			return "", fmt.Errorf("Err before cancel = %v", err)
		}
		close(started)
		<-tctx.Done()
		return "done", tctx.Err()
	})
	select {
	case <-started:
	case <-f.Done():
		t.Fatal(f.Err(ctx))
	}
	cancel()
	if v, err := f.Result(context.Background()); v != "done" || !errors.Is(err, context.Canceled) {
		t.Errorf("Result = %q, %v; want the task to see the Submit ctx's cancellation", v, err)
	}
}

func TestTaskCtxErrWithoutDone(t *testing.T) {
	// A task polling Err (never calling Done) still sees the Submit ctx end.
	p := newPool(t, pool.Config{Workers: 1})
	ctx, cancel := context.WithCancel(waitCtx(t))
	started := make(chan struct{})
	f, _ := pool.Submit(ctx, p, func(tctx context.Context) (int, error) {
		close(started)
		for tctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
		select {
		case <-tctx.Done():
		default:
			return 0, errors.New("Err is set but Done is open")
		}
		return 1, tctx.Err()
	})
	<-started
	cancel()
	if _, err := f.Result(waitCtx(t)); !errors.Is(err, context.Canceled) {
		t.Errorf("Result: %v", err)
	}
}

func TestSubmitCtxEndedBeforeStart(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1, QueueSize: 2})
	wait := waitCtx(t)
	g := newGate()
	_, _ = pool.Submit(wait, p, g.task(1))
	g.waitStarted(t)
	ctx, cancel := context.WithCancel(wait)
	var ran atomic.Bool
	f, _ := pool.Submit(ctx, p, func(context.Context) (int, error) { ran.Store(true); return 2, nil })
	cancel()
	close(g.release)
	_, err := f.Result(wait)
	if f.State() != future.Cancelled || !future.IsCancelled(err) || !errors.Is(err, context.Canceled) {
		t.Errorf("state %v, err %v", f.State(), err)
	}
	if ran.Load() {
		t.Error("a task whose Submit ctx had ended ran")
	}
}

func TestTaskCtxCancelledAfterReturn(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	ctx := waitCtx(t)
	f, _ := pool.Submit(ctx, p, func(tctx context.Context) (context.Context, error) { return tctx, nil })
	tctx, err := f.Result(ctx)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-tctx.Done():
	case <-time.After(long):
		t.Fatal("task ctx still open after the task returned")
	}
	if !errors.Is(tctx.Err(), context.Canceled) {
		t.Errorf("Err = %v", tctx.Err())
	}
}

func TestDerivedCtxFollowsCancel(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	ctx := waitCtx(t)
	started := make(chan struct{})
	f, _ := pool.Submit(ctx, p, func(tctx context.Context) (int, error) {
		child, cancel := context.WithTimeout(tctx, long)
		defer cancel()
		close(started)
		<-child.Done()
		return 0, child.Err()
	})
	<-started
	f.Cancel()
	if _, err := f.Result(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("derived ctx ended with %v, want Canceled", err)
	}
}

func TestStatsWhileRunning(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 2, QueueSize: 10})
	ctx := waitCtx(t)
	g1, g2 := newGate(), newGate()
	_, _ = pool.Submit(ctx, p, g1.task(1))
	_, _ = pool.Submit(ctx, p, g2.task(2))
	g1.waitStarted(t)
	g2.waitStarted(t)
	for range 3 {
		_, _ = pool.Submit(ctx, p, func(context.Context) (int, error) { return 0, errors.New("x") })
	}
	want := pool.Stats{Workers: 2, Submitted: 5, Queued: 3, Running: 2}
	if st := p.Stats(); st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
	close(g1.release)
	close(g2.release)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	want = pool.Stats{Workers: 2, Submitted: 5, Completed: 2, Failed: 3}
	if st := p.Stats(); st != want {
		t.Errorf("Stats = %+v, want %+v", st, want)
	}
}

// TestChaos mixes submits, cancels and a racing shutdown; run with -race.
func TestChaos(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 4, QueueSize: 8})
	ctx := waitCtx(t)
	var wg sync.WaitGroup
	var futures sync.Map
	for s := range 6 {
		wg.Go(func() {
			for i := range 300 {
				f, err := pool.Submit(ctx, p, func(tctx context.Context) (int, error) {
					if i%7 == 0 {
						select {
						case <-tctx.Done():
						case <-time.After(time.Millisecond):
						}
					}
					if i%11 == 0 {
						panic(i)
					}
					return i, nil
				})
				if errors.Is(err, pool.ErrClosed) {
					return
				}
				if err != nil {
					t.Error(err)
					return
				}
				futures.Store(f, true)
				if i%3 == 0 {
					f.Cancel()
				}
				if s == 0 && i == 150 {
					go func() {
						short, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
						defer cancel()
						_ = p.Shutdown(short)
					}()
				}
			}
		})
	}
	wg.Wait()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	futures.Range(func(k, _ any) bool {
		f := k.(*future.Future[int])
		if s := f.State(); s != future.Done && s != future.Cancelled {
			t.Errorf("future left %v after Close", s)
		}
		n++
		return true
	})
	st := p.Stats()
	if st.Submitted != uint64(n) || st.Completed+st.Failed+st.Cancelled != st.Submitted || st.Queued != 0 || st.Running != 0 {
		t.Errorf("Stats = %+v, %d futures", st, n)
	}
}

func TestAllocsPerTask(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	p := newPool(t, pool.Config{Workers: 2})
	ctx := context.Background()
	fn := func(context.Context) (int, error) { return 1, nil }
	allocs := testing.AllocsPerRun(1000, func() {
		f, err := pool.Submit(ctx, p, fn)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Result(ctx); err != nil {
			t.Fatal(err)
		}
	})
	// The task, and the done channel when Result has to wait.
	if allocs > 2 {
		t.Errorf("%.1f allocations per Submit+Result, want at most 2", allocs)
	}
}

func TestTaskCtxAfterFunc(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	ctx := waitCtx(t)
	ran := make(chan string, 3)
	started := make(chan struct{})
	f, _ := pool.Submit(ctx, p, func(tctx context.Context) (bool, error) {
		context.AfterFunc(tctx, func() { ran <- "kept" })
		stop := context.AfterFunc(tctx, func() { ran <- "stopped" })
		if !stop() {
			return false, errors.New("stop of a pending AfterFunc returned false")
		}
		if stop() {
			return false, errors.New("second stop returned true")
		}
		close(started)
		<-tctx.Done()
		// Registered on a done ctx: runs at once.
		if context.AfterFunc(tctx, func() { ran <- "late" })() {
			return false, errors.New("stop after the ctx ended returned true")
		}
		return true, nil
	})
	<-started
	f.Cancel()
	if ok, err := f.Result(ctx); !ok || err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{<-ran: true, <-ran: true}
	if !got["kept"] || !got["late"] {
		t.Errorf("ran %v", got)
	}
	select {
	case s := <-ran:
		t.Errorf("%s ran too", s)
	case <-time.After(10 * time.Millisecond):
	}
}

func TestDerivedCtxNoGoroutine(t *testing.T) {
	// context.WithCancel of a task ctx hooks in through AfterFunc rather
	// than a goroutine per derived ctx.
	p := newPool(t, pool.Config{Workers: 1})
	ctx := waitCtx(t)
	f, _ := pool.Submit(ctx, p, func(tctx context.Context) (int, error) {
		before := runtime.NumGoroutine()
		var cancels []context.CancelFunc
		for range 50 {
			_, cancel := context.WithCancel(tctx)
			cancels = append(cancels, cancel)
		}
		after := runtime.NumGoroutine()
		for _, c := range cancels {
			c()
		}
		return after - before, nil
	})
	if n, err := f.Result(ctx); err != nil || n > 5 {
		t.Errorf("%d goroutines for 50 derived contexts (err %v)", n, err)
	}
}
