package future

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const long = 10 * time.Second

func waitCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), long)
	t.Cleanup(cancel)
	return ctx
}

func TestStrings(t *testing.T) {
	for s, want := range map[fmt.Stringer]string{
		Pending: "pending", Running: "running", Done: "done", Cancelled: "cancelled", State(9): "State(9)",
		AllCompleted: "AllCompleted", FirstCompleted: "FirstCompleted", FirstError: "FirstError", WaitMode(7): "WaitMode(7)",
	} {
		if got := s.String(); got != want {
			t.Errorf("String() = %q, want %q", got, want)
		}
	}
}

func TestLifecycle(t *testing.T) {
	var p Promise[int] // the zero Promise is usable
	f := p.Future()
	if f.State() != Pending {
		t.Fatalf("new future is %v", f.State())
	}
	select {
	case <-f.Done():
		t.Fatal("Done closed before completion")
	default:
	}
	if !p.Start(nil) || f.State() != Running {
		t.Fatalf("Start: state %v", f.State())
	}
	if p.Start(nil) {
		t.Error("second Start succeeded")
	}
	boom := errors.New("boom")
	if !p.Resolve(3, boom) {
		t.Fatal("Resolve returned false")
	}
	if p.Resolve(4, nil) {
		t.Error("second Resolve returned true")
	}
	if p.Cancel(nil) {
		t.Error("Promise.Cancel after Resolve returned true")
	}
	if f.Cancel() {
		t.Error("Future.Cancel after Resolve returned true")
	}
	if f.State() != Done {
		t.Errorf("state %v", f.State())
	}
	v, err := f.Result(context.Background())
	if v != 3 || err != boom {
		t.Errorf("Result = %v, %v; want the first resolution", v, err)
	}
	if err := f.Err(context.Background()); err != boom {
		t.Errorf("Err = %v", err)
	}
	select {
	case <-f.Done():
	default:
		t.Error("Done open after completion")
	}
}

func TestResolveWithoutStart(t *testing.T) {
	// Executors that cannot report starting may resolve a pending future.
	p := NewPromise[string]()
	p.Resolve("x", nil)
	if v, err := p.Future().Result(context.Background()); v != "x" || err != nil || p.Future().State() != Done {
		t.Errorf("%q %v %v", v, err, p.Future().State())
	}
}

func TestResolved(t *testing.T) {
	f := Resolved(5, nil)
	if v, err := f.Result(context.Background()); v != 5 || err != nil || f.State() != Done {
		t.Errorf("%v %v %v", v, err, f.State())
	}
}

func TestDoneChannelIsShared(t *testing.T) {
	p := NewPromise[int]()
	f := p.Future()
	d1, d2 := f.Done(), f.Done()
	if d1 != d2 {
		t.Error("Done returned different channels")
	}
	p.Resolve(1, nil)
	for _, d := range []<-chan struct{}{d1, f.Done()} {
		select {
		case <-d:
		default:
			t.Error("Done channel open after Resolve")
		}
	}
}

func TestResultWaits(t *testing.T) {
	p := NewPromise[int]()
	go func() {
		time.Sleep(5 * time.Millisecond)
		p.Resolve(42, nil)
	}()
	if v, err := p.Future().Result(waitCtx(t)); v != 42 || err != nil {
		t.Errorf("Result = %v, %v", v, err)
	}
}

func TestResultCtxEnds(t *testing.T) {
	p := NewPromise[int]()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	if _, err := p.Future().Result(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Result = %v, want ctx's error", err)
	}
	// The future carries on.
	if p.Future().State() != Pending || !p.Resolve(1, nil) {
		t.Error("ctx ending changed the future")
	}
	// A finished future wins over an ended ctx.
	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if v, err := p.Future().Result(done); v != 1 || err != nil {
		t.Errorf("Result of a finished future with an ended ctx = %v, %v", v, err)
	}
}

type countingStopper struct{ n atomic.Int32 }

func (s *countingStopper) Stop() { s.n.Add(1) }

func TestCancelPending(t *testing.T) {
	p := NewPromise[int]()
	f := p.Future()
	var got []error
	f.OnDone(func(_ int, err error) { got = append(got, err) })
	if !f.Cancel() {
		t.Fatal("Cancel of a pending future returned false")
	}
	if !f.Cancel() {
		t.Error("second Cancel returned false; it is cancelled")
	}
	if f.State() != Cancelled {
		t.Errorf("state %v", f.State())
	}
	_, err := f.Result(context.Background())
	if !errors.Is(err, ErrCancelled) || !errors.Is(err, context.Canceled) || !IsCancelled(err) {
		t.Errorf("err = %v", err)
	}
	if len(got) != 1 || !IsCancelled(got[0]) {
		t.Errorf("callbacks saw %v", got)
	}
	if p.Start(&countingStopper{}) {
		t.Error("Start after Cancel succeeded")
	}
	if p.Resolve(1, nil) {
		t.Error("Resolve after Cancel succeeded")
	}
	select {
	case <-f.Done():
	default:
		t.Error("Done open after Cancel")
	}
}

func TestCancelRunning(t *testing.T) {
	p := NewPromise[int]()
	f := p.Future()
	s := &countingStopper{}
	p.Start(s)
	if f.Cancel() {
		t.Error("Cancel of a running future returned true")
	}
	if s.n.Load() != 1 || f.State() != Running {
		t.Errorf("stopper called %d times, state %v", s.n.Load(), f.State())
	}
	// The work decides the outcome.
	p.Resolve(7, context.Canceled)
	if v, err := f.Result(context.Background()); v != 7 || err != context.Canceled || f.State() != Done {
		t.Errorf("%v %v %v", v, err, f.State())
	}
	// Once done, the stopper is no longer called.
	f.Cancel()
	if s.n.Load() != 1 {
		t.Errorf("stopper called after completion")
	}
	// A running future without a stopper just reports false.
	q := NewPromise[int]()
	q.Start(nil)
	if q.Future().Cancel() {
		t.Error("Cancel of a running future without stopper returned true")
	}
}

func TestPromiseCancel(t *testing.T) {
	p := NewPromise[int]()
	shutdown := fmt.Errorf("%w: shutting down", ErrCancelled)
	if !p.Cancel(shutdown) {
		t.Fatal("Promise.Cancel returned false")
	}
	if err := p.Future().Err(context.Background()); err != shutdown || p.Future().State() != Cancelled {
		t.Errorf("err %v, state %v", err, p.Future().State())
	}
	q := NewPromise[int]()
	q.Cancel(nil)
	if err := q.Future().Err(context.Background()); err != ErrCancelled {
		t.Errorf("Cancel(nil) err = %v, want ErrCancelled", err)
	}
	r := NewPromise[int]()
	r.Start(nil)
	if r.Cancel(nil) {
		t.Error("Promise.Cancel of a running future returned true")
	}
}

func TestPanicError(t *testing.T) {
	var pe *PanicError
	func() {
		defer func() { pe = NewPanicError(recover()) }()
		panic("oops")
	}()
	if pe.Error() != "panic: oops" || pe.Unwrap() != nil {
		t.Errorf("Error %q, Unwrap %v", pe.Error(), pe.Unwrap())
	}
	if !strings.Contains(string(pe.Stack), "future_test.go") {
		t.Errorf("stack does not show the panicking code:\n%s", pe.Stack)
	}
	base := errors.New("base")
	pe = NewPanicError(base)
	if !errors.Is(pe, base) {
		t.Error("errors.Is does not see the panicked error")
	}
}

func TestOnDoneOrderAndGoroutine(t *testing.T) {
	p := NewPromise[int]()
	f := p.Future()
	var order []int
	var resolver, ran int64
	for i := range 5 {
		f.OnDone(func(v int, err error) {
			if v != 9 || err != nil {
				t.Errorf("callback %d got %v, %v", i, v, err)
			}
			order = append(order, i)
			ran = goid()
		})
	}
	done := make(chan struct{})
	go func() {
		resolver = goid()
		p.Resolve(9, nil)
		close(done)
	}()
	<-done
	if !slices.Equal(order, []int{0, 1, 2, 3, 4}) {
		t.Errorf("order %v", order)
	}
	if ran != resolver {
		t.Error("callbacks did not run on the completing goroutine")
	}
	// Already done: at once, on the caller's goroutine.
	called := false
	f.OnDone(func(int, error) { called = true; ran = goid() })
	if !called || ran != goid() {
		t.Error("OnDone on a done future did not run at once on the caller")
	}
}

// goid returns the current goroutine's id, from its stack header.
func goid() int64 {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	var id int64
	fmt.Sscanf(string(buf), "goroutine %d ", &id)
	return id
}

func TestOnDoneAddedWhileDraining(t *testing.T) {
	p := NewPromise[int]()
	f := p.Future()
	var order []string
	f.OnDone(func(int, error) {
		order = append(order, "first")
		f.OnDone(func(int, error) { order = append(order, "nested") })
	})
	f.OnDone(func(int, error) { order = append(order, "second") })
	p.Resolve(0, nil)
	if !slices.Equal(order, []string{"first", "second", "nested"}) {
		t.Errorf("order %v", order)
	}
}

func TestPanickingCallback(t *testing.T) {
	var logs bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&logs, nil)))
	defer slog.SetDefault(prev)

	p := NewPromise[int]()
	f := p.Future()
	var after bool
	f.OnDone(func(int, error) { panic("callback bug") })
	f.OnDone(func(int, error) { after = true })
	if !p.Resolve(1, nil) {
		t.Fatal("Resolve failed")
	}
	if !after {
		t.Error("the callback after a panicking one did not run")
	}
	if v, err := f.Result(context.Background()); v != 1 || err != nil {
		t.Errorf("panicking callback changed the outcome: %v %v", v, err)
	}
	if s := logs.String(); !strings.Contains(s, "callback bug") || !strings.Contains(s, "future_test.go") {
		t.Errorf("log lacks the panic and its stack: %s", s)
	}
	// Also when it runs at once on a done future.
	logs.Reset()
	f.OnDone(func(int, error) { panic("late bug") })
	if !strings.Contains(logs.String(), "late bug") {
		t.Errorf("log: %s", logs.String())
	}
}

func TestConcurrentUse(t *testing.T) {
	ctx := waitCtx(t)
	for range 200 {
		p := NewPromise[int]()
		f := p.Future()
		var wg sync.WaitGroup
		var calls atomic.Int32
		for range 4 {
			wg.Go(func() {
				f.OnDone(func(int, error) { calls.Add(1) })
				_, _ = f.Result(ctx)
				<-f.Done()
				_ = f.State()
			})
		}
		wg.Go(func() { f.Cancel() })
		wg.Go(func() {
			if p.Start(&countingStopper{}) {
				p.Resolve(1, nil)
			}
		})
		wg.Wait()
		if calls.Load() != 4 {
			t.Fatalf("%d callbacks ran, want 4", calls.Load())
		}
		v, err := f.Result(ctx)
		switch f.State() {
		case Done:
			if v != 1 || err != nil {
				t.Fatalf("done with %v, %v", v, err)
			}
		case Cancelled:
			if !IsCancelled(err) {
				t.Fatalf("cancelled with %v", err)
			}
		default:
			t.Fatalf("state %v", f.State())
		}
	}
}

// promises returns n pending promises and their futures.
func promises(n int) ([]*Promise[int], []*Future[int]) {
	ps := make([]*Promise[int], n)
	fs := make([]*Future[int], n)
	for i := range ps {
		ps[i] = NewPromise[int]()
		fs[i] = ps[i].Future()
	}
	return ps, fs
}

func TestWaitAllCompleted(t *testing.T) {
	ps, fs := promises(4)
	ps[2].Resolve(2, nil) // already finished
	go func() {
		for _, i := range []int{3, 0, 1} {
			time.Sleep(time.Millisecond)
			ps[i].Resolve(i, errors.New("errors do not stop AllCompleted"))
		}
	}()
	done, notDone := Wait(waitCtx(t), fs, AllCompleted)
	if !slices.Equal(done, fs) || len(notDone) != 0 {
		t.Errorf("done %d, notDone %d", len(done), len(notDone))
	}
}

func TestWaitFirstCompleted(t *testing.T) {
	ps, fs := promises(3)
	go func() {
		time.Sleep(time.Millisecond)
		ps[1].Resolve(1, nil)
	}()
	done, notDone := Wait(waitCtx(t), fs, FirstCompleted)
	if len(done) != 1 || done[0] != fs[1] || !slices.Equal(notDone, []*Future[int]{fs[0], fs[2]}) {
		t.Errorf("done %v, notDone %v", done, notDone)
	}
	// Already one finished: returns at once.
	done, _ = Wait(waitCtx(t), fs, FirstCompleted)
	if len(done) != 1 {
		t.Errorf("done %v", done)
	}
	// A cancelled future counts as completed.
	ps2, fs2 := promises(2)
	ps2[0].Cancel(nil)
	if done, _ := Wait(waitCtx(t), fs2, FirstCompleted); len(done) != 1 || done[0] != fs2[0] {
		t.Errorf("done %v", done)
	}
}

func TestWaitFirstError(t *testing.T) {
	ps, fs := promises(4)
	go func() {
		ps[0].Resolve(0, nil) // success does not stop FirstError
		time.Sleep(time.Millisecond)
		ps[2].Resolve(0, errors.New("bad"))
	}()
	done, notDone := Wait(waitCtx(t), fs, FirstError)
	if !slices.Equal(done, []*Future[int]{fs[0], fs[2]}) || !slices.Equal(notDone, []*Future[int]{fs[1], fs[3]}) {
		t.Errorf("done %v, notDone %v", done, notDone)
	}
	// Without errors it waits for all.
	ps, fs = promises(3)
	go func() {
		for _, p := range ps {
			time.Sleep(time.Millisecond)
			p.Resolve(1, nil)
		}
	}()
	if done, notDone := Wait(waitCtx(t), fs, FirstError); len(done) != 3 || len(notDone) != 0 {
		t.Errorf("done %d, notDone %d", len(done), len(notDone))
	}
	// An error already there returns at once; so does a cancelled future.
	ps, fs = promises(2)
	ps[1].Resolve(0, errors.New("early"))
	if done, _ := Wait(waitCtx(t), fs, FirstError); len(done) != 1 {
		t.Errorf("done %v", done)
	}
	ps, fs = promises(2)
	ps[0].Cancel(nil)
	if done, _ := Wait(waitCtx(t), fs, FirstError); len(done) != 1 {
		t.Errorf("done %v", done)
	}
}

func TestWaitCtxEnds(t *testing.T) {
	ps, fs := promises(3)
	ps[1].Resolve(1, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	done, notDone := Wait(ctx, fs, AllCompleted)
	if ctx.Err() == nil {
		t.Error("Wait returned before ctx ended")
	}
	if !slices.Equal(done, []*Future[int]{fs[1]}) || !slices.Equal(notDone, []*Future[int]{fs[0], fs[2]}) {
		t.Errorf("done %v, notDone %v", done, notDone)
	}
	// The callbacks Wait left behind must not block the promises.
	ps[0].Resolve(0, nil)
	ps[2].Resolve(0, nil)
}

func TestWaitEmpty(t *testing.T) {
	for _, mode := range []WaitMode{AllCompleted, FirstCompleted, FirstError} {
		if done, notDone := Wait[int](context.Background(), nil, mode); done != nil || notDone != nil {
			t.Errorf("%v: %v %v", mode, done, notDone)
		}
	}
}

func TestAsCompleted(t *testing.T) {
	ps, fs := promises(5)
	ps[3].Resolve(3, nil)
	ps[1].Resolve(1, nil)
	order := []int{4, 0, 2}
	go func() {
		for _, i := range order {
			time.Sleep(2 * time.Millisecond)
			ps[i].Resolve(i, nil)
		}
	}()
	var got []int
	for f := range AsCompleted(waitCtx(t), fs) {
		v, err := f.Result(context.Background())
		if err != nil || f.State() != Done {
			t.Fatalf("yielded an unfinished future: %v %v", f.State(), err)
		}
		got = append(got, v)
	}
	// Finished ones first, in input order, then in completion order.
	if want := []int{1, 3, 4, 0, 2}; !slices.Equal(got, want) {
		t.Errorf("yielded %v, want %v", got, want)
	}
}

func TestAsCompletedBreakAndCtx(t *testing.T) {
	ps, fs := promises(3)
	ps[0].Resolve(0, nil)
	ps[1].Resolve(1, nil)
	n := 0
	for range AsCompleted(waitCtx(t), fs) {
		n++
		break
	}
	if n != 1 {
		t.Errorf("%d iterations after break", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	n = 0
	for range AsCompleted(ctx, fs) {
		n++
	}
	if n != 2 || ctx.Err() == nil {
		t.Errorf("%d yielded before ctx ended (%v), want the 2 finished", n, ctx.Err())
	}
	// Breaking with futures still pending leaves callbacks behind; they
	// must not block the promises' completion.
	go func() {
		time.Sleep(2 * time.Millisecond)
		ps[2].Resolve(2, nil)
	}()
	_, more := promises(1)
	for range AsCompleted(waitCtx(t), append(fs[2:], more...)) {
		break
	}
	more[0].Cancel()
	for range AsCompleted[int](context.Background(), nil) {
		t.Error("yielded from nothing")
	}
}
