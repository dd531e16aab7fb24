package acker

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conqhq/conq/queue/broker"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stub records Complete calls; the first one blocks until gate closes.
type stub struct {
	broker.Broker
	gate  chan struct{}
	mu    sync.Mutex
	calls [][]broker.Ack
	fails int // fail this many calls with a broker error first
}

func (s *stub) Complete(ctx context.Context, acks ...broker.Ack) error {
	s.mu.Lock()
	first := len(s.calls) == 0
	s.calls = append(s.calls, acks)
	failNow := s.fails > 0
	if failNow {
		s.fails--
	}
	s.mu.Unlock()
	if first {
		<-s.gate
	}
	if failNow {
		return errors.New("unreachable")
	}
	var errs []error
	for i, a := range acks {
		if a.ID == "lost" {
			if errs == nil {
				errs = make([]error, len(acks))
			}
			errs[i] = broker.ErrLeaseLost
		}
	}
	if errs != nil {
		return &broker.BatchError{Errs: errs}
	}
	return nil
}

func TestBatchesWhatQueuesUp(t *testing.T) {
	s := &stub{gate: make(chan struct{})}
	var mu sync.Mutex
	settled := map[string]error{}
	a := &Acker{Broker: s, BatchSize: 50, Logger: slog.New(slog.DiscardHandler), Settled: func(it *Item, err error) {
		mu.Lock()
		settled[it.Ref.ID] = err
		mu.Unlock()
	}}
	a.Start(context.Background())
	a.Push(Item{Op: OpComplete, Ref: broker.LeaseRef{ID: "first"}})
	for !func() bool { s.mu.Lock(); defer s.mu.Unlock(); return len(s.calls) == 1 }() {
		time.Sleep(time.Millisecond)
	}
	// While the first call is in flight, 120 more queue up.
	for i := range 120 {
		id := "t" + string(rune('a'+i%26)) + string(rune('a'+i/26))
		if i == 7 {
			id = "lost"
		}
		a.Push(Item{Op: OpComplete, Ref: broker.LeaseRef{ID: id}})
	}
	close(s.gate)
	if err := a.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if a.Push(Item{}) {
		t.Fatal("Push after Shutdown accepted")
	}
	var sizes []int
	for _, c := range s.calls {
		sizes = append(sizes, len(c))
	}
	if len(sizes) != 4 || sizes[0] != 1 || sizes[1] != 50 || sizes[2] != 50 || sizes[3] != 20 {
		t.Fatalf("call sizes %v, want [1 50 50 20]", sizes)
	}
	if len(settled) != 121 || !errors.Is(settled["lost"], broker.ErrLeaseLost) || settled["first"] != nil {
		t.Fatalf("settled %d items, lost=%v", len(settled), settled["lost"])
	}
}

func TestRetriesBrokerErrors(t *testing.T) {
	s := &stub{gate: make(chan struct{}), fails: 3}
	close(s.gate)
	done := make(chan error, 1)
	a := &Acker{Broker: s, Logger: slog.New(slog.DiscardHandler), Settled: func(it *Item, err error) { done <- err }}
	a.Start(context.Background())
	a.Push(Item{Op: OpComplete, Ref: broker.LeaseRef{ID: "x"}})
	if err := <-done; err != nil {
		t.Fatalf("settled with %v after retries", err)
	}
	if len(s.calls) != 4 {
		t.Fatalf("%d calls, want 4", len(s.calls))
	}
	a.Stop(context.Background())
}

func TestShutdownGivesUpWhenCtxEnds(t *testing.T) {
	s := &stub{gate: make(chan struct{}), fails: 1 << 30}
	close(s.gate)
	done := make(chan error, 1)
	a := &Acker{Broker: s, Logger: slog.New(slog.DiscardHandler), Settled: func(it *Item, err error) { done <- err }}
	a.Start(context.Background())
	a.Push(Item{Op: OpComplete, Ref: broker.LeaseRef{ID: "x"}})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := a.Stop(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := <-done; err == nil {
		t.Fatal("item settled without error though never recorded")
	}
}
