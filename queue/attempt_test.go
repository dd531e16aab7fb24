package queue_test

import (
	"context"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

type traceKey struct{}

func TestHandlerContextFromStart(t *testing.T) {
	e := newEnv(t)
	type seen struct {
		trace   any
		token   uint64
		ok      bool
		leaseOn bool
		now     time.Time
	}
	got := make(chan seen, 1)
	release := make(chan struct{})
	w, err := queue.NewWorker(e.b, e.config())
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("k", func(ctx context.Context, ti *queue.TaskInfo) ([]byte, error) {
		tok, ok := queue.FencingToken(ctx)
		got <- seen{trace: ctx.Value(traceKey{}), token: tok, ok: ok,
			leaseOn: ti.Token != 0 || !ti.LeaseUntil.IsZero() || ti.WorkerID != "", now: queue.Now(ctx)}
		<-release
		return nil, ctx.Err()
	})
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), traceKey{}, "trace-1"))
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	info := e.enqueue(queue.NewTask("k", nil), queue.Retention(time.Hour))
	s := <-got
	if s.trace != "trace-1" {
		t.Errorf("handler ctx value = %v, want the one of Start's ctx", s.trace)
	}
	if !s.ok || s.token == 0 {
		t.Errorf("FencingToken = %d, %v; want the lease's token", s.token, s.ok)
	}
	if s.leaseOn {
		t.Error("the handler's TaskInfo carries lease fields")
	}
	if !s.now.Equal(e.clock.Now()) {
		t.Errorf("queue.Now(ctx) = %v, want the broker's clock %v", s.now, e.clock.Now())
	}
	// Cancelling Start's ctx does not interrupt the running handler.
	cancel()
	time.Sleep(20 * time.Millisecond)
	close(release)
	e.waitState(info.ID, queue.StateCompleted)
	e.shutdown(w)
	if _, ok := queue.FencingToken(context.Background()); ok {
		t.Error("FencingToken outside a handler reported a token")
	}
}
