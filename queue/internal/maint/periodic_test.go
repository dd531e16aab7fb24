package maint

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	"github.com/conqhq/conq/queue/broker/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestPeriodicKeepsGoingAfterErrors(t *testing.T) {
	var calls atomic.Int32
	p := &Periodic{Name: "x", Interval: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
		Do: func(ctx context.Context) (int, error) {
			if calls.Add(1) <= 3 {
				return 0, errors.New("down")
			}
			return 1, nil
		}}
	p.Start(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for calls.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if calls.Load() < 6 {
		t.Fatalf("%d calls", calls.Load())
	}
	if err := p.Stop(context.Background()); err != nil {
		t.Fatal("second Shutdown:", err)
	}
}

func TestComponentsCallTheirBrokerMethod(t *testing.T) {
	clock := brokertest.NewManualClock(time.Time{})
	mem := memory.New(memory.Config{Clock: clock})
	defer mem.Close()
	ctx := context.Background()
	b := brokertest.NewFaulty(mem)
	if err := mem.Enqueue(ctx, &broker.Task{ID: "s", Kind: "k", Queue: "q", ProcessAt: clock.Now().Add(time.Second)}); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	log := slog.New(slog.DiscardHandler)
	for name, p := range map[string]*Periodic{
		"Forward": NewForwarder(b, time.Hour, log),
		"Recover": NewRecoverer(b, time.Hour, log),
		"Cleanup": NewJanitor(b, time.Hour, log),
	} {
		p.Start(context.Background())
		deadline := time.Now().Add(5 * time.Second)
		for b.Calls(name) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		p.Stop(ctx)
		if b.Calls(name) != 1 {
			t.Fatalf("%s called %d times", name, b.Calls(name))
		}
	}
	if got, _ := mem.GetTask(ctx, "q", "s"); got.State != broker.StatePending {
		t.Fatalf("forwarder did not forward: %s", got.State)
	}
}
