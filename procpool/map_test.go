package procpool

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/pool"
)

// Map's engine is pool.Map's (internal/window, tested there); these check
// procpool's side of it with real worker processes.

func mapCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func byteArgs(args ...string) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for _, a := range args {
			if !yield([]byte(a)) {
				return
			}
		}
	}
}

func numbered(n int, pulled *atomic.Int32) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for i := range n {
			pulled.Add(1)
			if !yield([]byte(strconv.Itoa(i))) {
				return
			}
		}
	}
}

func TestMapWindowAndChunks(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 2})
	for _, opts := range [][]pool.MapOption{nil, {pool.ChunkSize(3), pool.Window(2)}, {pool.ChunkSize(64)}} {
		var pulled atomic.Int32
		i := 0
		for v, err := range p.Map(mapCtx(t), "echo", numbered(100, &pulled), opts...) {
			if err != nil || string(v) != strconv.Itoa(i) {
				t.Fatalf("%d options, item %d: %q, %v", len(opts), i, v, err)
			}
			i++
			if i == 10 && len(opts) == 2 {
				// Window 2 of chunks of 3, plus the chunk being filled.
				if ahead := int(pulled.Load()) - i; ahead > 3*3 {
					t.Errorf("after %d results, %d arguments read", i, pulled.Load())
				}
			}
		}
		if i != 100 {
			t.Fatalf("%d options: %d results", len(opts), i)
		}
	}
}

// TestMapErrorPolicy: a task error or a rejected argument is that
// argument's pair and Map goes on, unless StopOnError.
func TestMapErrorPolicy(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 2, MaxPayload: 16})
	args := []string{"a", "b", "this argument is over 16 bytes", "c", "d"}
	for _, chunk := range []int{1, 2} {
		var got []string
		for v, err := range p.Map(mapCtx(t), "echo", byteArgs(args...), pool.ChunkSize(chunk)) {
			got = append(got, fmt.Sprintf("%s %v", v, errors.Is(err, ErrPayloadTooLarge)))
		}
		if want := []string{"a false", "b false", " true", "c false", "d false"}; !slices.Equal(got, want) {
			t.Errorf("chunk %d: %v, want %v", chunk, got, want)
		}
		got = nil
		for v, err := range p.Map(mapCtx(t), "echo", byteArgs(args...), pool.ChunkSize(chunk), pool.StopOnError(true)) {
			got = append(got, fmt.Sprintf("%s %v", v, errors.Is(err, ErrPayloadTooLarge)))
		}
		if want := []string{"a false", "b false", " true"}; !slices.Equal(got, want) {
			t.Errorf("chunk %d, StopOnError: %v, want %v", chunk, got, want)
		}
	}
	// A task raising an error: the same.
	n, failed := 0, 0
	for _, err := range p.Map(mapCtx(t), "fail", byteArgs("x", "y", "z")) {
		n++
		var te *TaskError
		if errors.As(err, &te) {
			failed++
		}
	}
	if n != 3 || failed != 3 {
		t.Errorf("fail: %d pairs, %d task errors", n, failed)
	}
	for range p.Map(mapCtx(t), "fail", byteArgs("x", "y", "z"), pool.StopOnError(true)) {
		n++
	}
	if n != 4 {
		t.Errorf("fail with StopOnError: %d pairs, want 1", n-3)
	}
}

// TestMapOnClosedPool: one ErrClosed, the same value as pool's and
// future's, and the (endless) input is not read on.
func TestMapOnClosedPool(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1})
	if err := p.Shutdown(mapCtx(t)); err != nil {
		t.Fatal(err)
	}
	var pulled atomic.Int32
	var errs []error
	for _, err := range p.Map(mapCtx(t), "echo", numbered(1<<30, &pulled)) {
		errs = append(errs, err)
	}
	if len(errs) != 1 || !errors.Is(errs[0], ErrClosed) || !errors.Is(errs[0], pool.ErrClosed) || !errors.Is(errs[0], future.ErrClosed) {
		t.Fatalf("errors %v, want one ErrClosed", errs)
	}
	if !errors.Is(errs[0], ErrPoolClosed) {
		t.Error("ErrPoolClosed, the old name, does not match")
	}
	if pulled.Load() != 1 {
		t.Errorf("%d arguments read", pulled.Load())
	}
	if _, err := p.Submit(mapCtx(t), "echo", nil); !errors.Is(err, pool.ErrClosed) {
		t.Errorf("Submit on a closed pool: %v, want pool.ErrClosed to match", err)
	}
}

func TestMapJSONErrorsInPlace(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 2})
	// An argument that cannot be encoded fails in its place.
	var got []string
	for v, err := range MapJSON[any, int](mapCtx(t), p, "double", slices.Values([]any{1, make(chan int), 3})) {
		got = append(got, fmt.Sprint(v, err != nil))
	}
	if want := []string{"2 false", "0 true", "6 false"}; !slices.Equal(got, want) {
		t.Errorf("MapJSON = %v, want %v", got, want)
	}
	// A result that does not decode into Out: StopOnError stops on it too.
	n := 0
	for _, err := range MapJSON[string, int](mapCtx(t), p, "echo", slices.Values([]string{"a", "b"}), pool.StopOnError(true)) {
		n++
		if err == nil {
			t.Error("a JSON string decoded into an int")
		}
	}
	if n != 1 {
		t.Errorf("%d pairs, want 1", n)
	}
}

func TestMustNew(t *testing.T) {
	p := MustNew(mapCtx(t), Config{Command: []string{testWorker}, Workers: 1})
	defer p.Close()
	if got := mustCall(t, p, "echo", "ok"); got != "ok" {
		t.Errorf("echo = %q", got)
	}
	defer func() {
		var se *StartError
		if r := recover(); r == nil {
			t.Error("MustNew with a missing worker did not panic")
		} else if err, ok := r.(error); !ok || !errors.As(err, &se) {
			t.Errorf("panicked with %v, want the *StartError", r)
		}
	}()
	MustNew(mapCtx(t), Config{Command: []string{"/nonexistent/worker"}, Workers: 1})
}

func TestTrySubmit(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, QueueSize: 1})
	running, err := p.TrySubmit(mapCtx(t), "sleep", []byte("300ms"))
	if err != nil {
		t.Fatal(err)
	}
	// Fill the one queue slot once the worker has taken the first task.
	var queued *future.Future[[]byte]
	for deadline := time.Now().Add(10 * time.Second); ; {
		if queued, err = p.TrySubmit(mapCtx(t), "echo", []byte("q")); err == nil {
			break
		}
		if !errors.Is(err, ErrQueueFull) || time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := p.TrySubmit(mapCtx(t), "echo", []byte("x")); !errors.Is(err, ErrQueueFull) || !errors.Is(err, pool.ErrQueueFull) {
		t.Fatalf("TrySubmit on a full queue: %v, want ErrQueueFull", err)
	}
	for _, f := range []*future.Future[[]byte]{running, queued} {
		if _, err := f.Result(mapCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	_ = p.Shutdown(mapCtx(t))
	if _, err := p.TrySubmit(mapCtx(t), "echo", nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("TrySubmit after Shutdown: %v", err)
	}
}
