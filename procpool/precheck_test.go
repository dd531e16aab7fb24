package procpool

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/precheck"
)

// A call that waited in the queue for a free worker runs its context's
// precheck before it starts (a queue task's cancel request); one that did
// not wait does not.
func TestPrecheckBeforeAWaitingCallStarts(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1})
	stop := errors.New("cancel requested while waiting")
	var checks atomic.Int32
	checked := func(parent context.Context) (context.Context, context.CancelCauseFunc) {
		ctx, cancel := context.WithCancelCause(parent)
		return precheck.With(ctx, func(context.Context) {
			checks.Add(1)
			cancel(stop)
		}), cancel
	}
	ctx, cancel := checked(context.Background())
	defer cancel(nil)
	if v, err := p.Call(ctx, "echo", []byte("at once")); err != nil || string(v) != "at once" {
		t.Fatalf("a call that did not wait = %q, %v", v, err)
	}
	if n := checks.Load(); n != 0 {
		t.Fatalf("%d prechecks for a call that did not wait", n)
	}
	busy, _ := p.Submit(context.Background(), "sleep", []byte("400ms"))
	time.Sleep(20 * time.Millisecond)
	ctx2, cancel2 := checked(context.Background())
	defer cancel2(nil)
	waiting, _ := p.Submit(ctx2, "echo", []byte("never"))
	if _, err := result(t, busy); err != nil {
		t.Fatal(err)
	}
	if v, err := result(t, waiting); !errors.Is(err, stop) {
		t.Fatalf("the call that waited = %q, %v; want its precheck's cause %v", v, err, stop)
	}
	if n := checks.Load(); n != 1 {
		t.Fatalf("%d prechecks, want 1", n)
	}
}
