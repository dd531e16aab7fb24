package lease

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	"github.com/conqhq/conq/queue/broker/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestExtendsInOneCallAndCancelsLost(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewManualClock(time.Time{})
	mem := memory.New(memory.Config{Clock: clock})
	defer mem.Close()
	b := brokertest.NewFaulty(mem)
	for _, id := range []string{"a", "b", "c"} {
		if err := b.Enqueue(ctx, &broker.Task{ID: id, Kind: "k", Queue: "q"}); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: 3, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(ts) != 3 {
		t.Fatal(ts, err)
	}
	e := &Extender{Broker: b, Lease: time.Minute, Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	causes := map[string]context.Context{}
	for _, task := range ts {
		c, cancel := context.WithCancelCause(ctx)
		causes[task.ID] = c
		e.Add(broker.LeaseRef{Queue: "q", ID: task.ID, Token: task.Token}, cancel)
	}
	clock.Advance(30 * time.Second)
	if err := e.ExtendOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.GetTask(ctx, "q", "a"); !got.LeaseUntil.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("lease not extended: %v", got.LeaseUntil)
	}
	if n := b.Calls("ExtendLeases"); n != 1 {
		t.Fatalf("%d ExtendLeases calls for 3 leases, want 1", n)
	}
	// b's lease ends elsewhere (as if recovered): its handler must stop.
	if err := b.Requeue(ctx, broker.LeaseRef{Queue: "q", ID: "b", Token: ts[1].Token}); err != nil {
		t.Fatal(err)
	}
	if err := e.ExtendOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(context.Cause(causes["b"]), broker.ErrLeaseLost) || causes["a"].Err() != nil {
		t.Fatalf("causes: a=%v b=%v", context.Cause(causes["a"]), context.Cause(causes["b"]))
	}
	if held := e.Held(); len(held) != 2 {
		t.Fatalf("still tracking %v", held)
	}
	// Broker errors are returned; the loop retries them.
	b.FailNext("ExtendLeases", 1, nil)
	if err := e.ExtendOnce(ctx); !errors.Is(err, brokertest.ErrInjected) {
		t.Fatalf("ExtendOnce = %v", err)
	}
	e.Interval = 5 * time.Millisecond
	b.FailNext("ExtendLeases", 2, nil)
	e.Start(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for b.Calls("ExtendLeases") < 7 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := e.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Calls("ExtendLeases") < 7 {
		t.Fatal("the loop stopped after broker errors")
	}
}

func TestCancelledTaskStaysLeased(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewManualClock(time.Time{})
	mem := memory.New(memory.Config{Clock: clock})
	defer mem.Close()
	for _, id := range []string{"a", "b"} {
		if err := mem.Enqueue(ctx, &broker.Task{ID: id, Kind: "k", Queue: "q"}); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := mem.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: 2, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(ts) != 2 {
		t.Fatal(ts, err)
	}
	e := &Extender{Broker: mem, Lease: time.Minute, Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	ctxs := map[string]context.Context{}
	calls := map[string]int{}
	for _, task := range ts {
		c, cancel := context.WithCancelCause(ctx)
		ctxs[task.ID] = c
		id := task.ID
		e.Add(broker.LeaseRef{Queue: "q", ID: id, Token: task.Token}, func(err error) { calls[id]++; cancel(err) })
	}
	if _, err := mem.CancelTask(ctx, "q", "a"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		clock.Advance(30 * time.Second)
		if err := e.ExtendOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !errors.Is(context.Cause(ctxs["a"]), broker.ErrTaskCancelled) || ctxs["b"].Err() != nil || calls["a"] != 1 {
		t.Fatalf("causes: a=%v (%d calls) b=%v", context.Cause(ctxs["a"]), calls["a"], context.Cause(ctxs["b"]))
	}
	// Still tracked and renewed, so the worker can record the attempt.
	if len(e.Held()) != 2 {
		t.Fatalf("held %v", e.Held())
	}
	if got, _ := mem.GetTask(ctx, "q", "a"); got.State != broker.StateActive || !got.LeaseUntil.Equal(clock.Now().Add(time.Minute)) {
		t.Fatalf("cancelled task %s, lease %v", got.State, got.LeaseUntil)
	}
}

// A lease found gone while its outcome is being recorded (Settling) is the
// outcome landing, not a loss: its context is left alone, and CheckSince
// shares one pass between callers.
func TestSettlingLeaseGoneIsNotLost(t *testing.T) {
	ctx := context.Background()
	mem := memory.New(memory.Config{})
	defer mem.Close()
	b := brokertest.NewFaulty(mem)
	for _, id := range []string{"a", "b"} {
		if err := b.Enqueue(ctx, &broker.Task{ID: id, Kind: "k", Queue: "q"}); err != nil {
			t.Fatal(err)
		}
	}
	ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: 2, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(ts) != 2 {
		t.Fatal(ts, err)
	}
	e := &Extender{Broker: b, Lease: time.Minute, Interval: time.Hour, Logger: slog.New(slog.DiscardHandler)}
	c, cancel := context.WithCancelCause(ctx)
	ref := ts[0].Ref()
	e.Add(ref, cancel)
	e.Add(ts[1].Ref(), func(error) {}) // b stays held: every pass makes a call
	e.Settling(ref)
	if err := b.Complete(ctx, broker.Ack{LeaseRef: ref}); err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	if err := e.CheckSince(ctx, since); err != nil {
		t.Fatal(err)
	}
	if c.Err() != nil {
		t.Fatalf("a settling lease's context was cancelled: %v", context.Cause(c))
	}
	calls := b.Calls("ExtendLeases")
	if calls != 1 {
		t.Fatalf("%d ExtendLeases calls, want 1", calls)
	}
	if err := e.CheckSince(ctx, since); err != nil || b.Calls("ExtendLeases") != calls {
		t.Fatalf("a second CheckSince for the same time made another call (%v)", err)
	}
}
