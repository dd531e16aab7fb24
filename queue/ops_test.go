package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

func TestCancelRunningTask(t *testing.T) {
	e := newEnv(t)
	started := make(chan struct{})
	cause := make(chan error, 1)
	e.worker(e.config(), func(w *queue.Worker) {
		w.HandleFunc("slow", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			close(started)
			<-ctx.Done()
			cause <- context.Cause(ctx)
			return nil, ctx.Err()
		})
	})
	info := e.enqueue(queue.NewTask("slow", nil), queue.MaxRetries(5))
	<-started
	insp := queue.NewInspector(e.b)
	st, err := insp.CancelTask(e.ctx, "", info.ID)
	if err != nil || st != queue.StateActive {
		t.Fatalf("CancelTask = %q, %v", st, err)
	}
	select {
	case c := <-cause:
		if !errors.Is(c, queue.ErrTaskCancelled) {
			t.Fatalf("handler ctx cause %v, want ErrTaskCancelled", c)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's ctx was not cancelled")
	}
	got := e.waitState(info.ID, queue.StateDead)
	last := got.Errors[len(got.Errors)-1]
	if got.Attempts != 1 || last.Kind != "cancelled" || !strings.Contains(last.Message, "cancelled while running") {
		t.Fatalf("cancelled task: attempts %d, errors %+v", got.Attempts, got.Errors)
	}
}

func TestCancelPendingTask(t *testing.T) {
	e := newEnv(t)
	info := e.enqueue(queue.NewTask("k", []byte("x")))
	insp := queue.NewInspector(e.b)
	if st, err := insp.CancelTask(e.ctx, "default", info.ID); err != nil || st != queue.StatePending {
		t.Fatalf("CancelTask = %q, %v", st, err)
	}
	got := e.get(info.ID)
	if got.State != queue.StateDead || got.Errors[0].Kind != "cancelled" || got.Attempts != 0 {
		t.Fatalf("cancelled pending task %+v", got)
	}
	if _, err := insp.CancelTask(e.ctx, "default", info.ID); !errors.Is(err, queue.ErrInvalidState) {
		t.Fatalf("second CancelTask = %v, want ErrInvalidState", err)
	}
	// Result reports it as failed.
	_, err := e.client.Result(e.ctx, info.ID)
	var tf *queue.TaskFailedError
	if !errors.As(err, &tf) {
		t.Fatalf("Result = %v, want *TaskFailedError", err)
	}
}

func TestWorkerHeartbeat(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.HeartbeatInterval = 20 * time.Millisecond
	cfg.Queues = map[string]int{"a": 1, "b": 2}
	release := make(chan struct{})
	started := make(chan struct{})
	w := e.worker(cfg, func(w *queue.Worker) {
		w.HandleFunc("block", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			close(started)
			<-release
			return nil, nil
		})
	})
	info := e.enqueue(queue.NewTask("block", nil), queue.Queue("a"))
	<-started
	insp := queue.NewInspector(e.b)
	var ws []queue.WorkerInfo
	ok := waitFor(func() bool {
		var err error
		ws, err = insp.Workers(e.ctx)
		return err == nil && len(ws) == 1 && len(ws[0].Running) == 1
	})
	if !ok {
		t.Fatalf("Workers = %+v, want one worker running one task", ws)
	}
	got := ws[0]
	if got.ID != w.ID() || got.Concurrency != cfg.Concurrency || got.PID == 0 || got.Host == "" || len(got.Queues) != 2 ||
		got.Queues[0] != "b" || got.StartedAt.IsZero() || got.Running[0].ID != info.ID || got.Running[0].Kind != "block" || got.Running[0].Queue != "a" {
		t.Fatalf("worker record %+v", got)
	}
	close(release)
	if !waitFor(func() bool {
		ws, err := insp.Workers(e.ctx)
		return err == nil && len(ws) == 1 && len(ws[0].Running) == 0
	}) {
		t.Fatal("the finished task stayed in the worker's record")
	}
	e.shutdown(w)
	if ws, err := insp.Workers(e.ctx); err != nil || len(ws) != 0 {
		t.Fatalf("Workers after Shutdown = %+v, %v; want none", ws, err)
	}
}

func TestMuxHandleDefault(t *testing.T) {
	e := newEnv(t)
	var seen atomic.Int64
	e.worker(e.config(), func(w *queue.Worker) {
		// Middleware added before or after: it sees every kind.
		w.Use(func(next queue.Handler) queue.Handler {
			return queue.HandlerFunc(func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) {
				seen.Add(1)
				return next.ProcessTask(ctx, t)
			})
		})
		w.HandleDefault(queue.HandlerFunc(func(_ context.Context, t *queue.TaskInfo) ([]byte, error) {
			return []byte("default:" + t.Kind), nil
		}))
		w.HandleFunc("own", func(context.Context, *queue.TaskInfo) ([]byte, error) { return []byte("own"), nil })
	})
	for kind, want := range map[string]string{"own": "own", "other": "default:other", "x.y": "default:x.y"} {
		info := e.enqueue(queue.NewTask(kind, nil), queue.Retention(time.Hour))
		res, err := e.client.Result(e.ctx, info.ID)
		if err != nil || string(res) != want {
			t.Fatalf("kind %s: result %q, %v; want %q", kind, res, err, want)
		}
	}
	if seen.Load() != 3 {
		t.Fatalf("middleware saw %d tasks, want 3", seen.Load())
	}
	m := registrar(t)
	m.HandleDefault(queue.HandlerFunc(noop))
	defer func() {
		if recover() == nil {
			t.Fatal("a second default handler did not panic")
		}
	}()
	m.HandleDefault(queue.HandlerFunc(noop))
}

func TestHandlerErrorKindAndStack(t *testing.T) {
	e := newEnv(t)
	e.worker(e.config(), func(w *queue.Worker) {
		w.HandleFunc("py", func(context.Context, *queue.TaskInfo) ([]byte, error) {
			return nil, fmt.Errorf("task py: %w", &queue.HandlerError{Kind: "ValueError", Message: "ValueError: bad", Stack: "Traceback...", Err: queue.SkipRetry})
		})
	})
	info := e.enqueue(queue.NewTask("py", nil), queue.MaxRetries(3))
	got := e.waitState(info.ID, queue.StateDead)
	ae := got.Errors[0]
	if len(got.Errors) != 1 || ae.Kind != "ValueError" || ae.Stack != "Traceback..." || ae.Message != "task py: ValueError: bad" {
		t.Fatalf("errors %+v", got.Errors)
	}
	if (&queue.HandlerError{Err: errors.New("inner")}).Error() != "inner" {
		t.Fatal("HandlerError without Message does not show Err")
	}
}

func TestSchedulerPublishesEntries(t *testing.T) {
	e := newEnv(t)
	s, err := queue.NewScheduler(e.b, queue.SchedulerConfig{Logger: e.logger(), PublishInterval: 20 * time.Millisecond, ID: "sched-1"})
	if err != nil {
		t.Fatal(err)
	}
	name, err := s.RegisterEntry(queue.Entry{Name: "report", Spec: "@every 1h", Task: queue.NewTask("report", nil, queue.Queue("q"))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	insp := queue.NewInspector(e.b)
	var got []queue.ScheduleInfo
	if !waitFor(func() bool {
		got, err = insp.Schedules(e.ctx)
		return err == nil && len(got) == 1
	}) {
		t.Fatalf("Schedules = %+v, %v", got, err)
	}
	g := got[0]
	if g.Name != name || g.Spec != "@every 1h" || g.Kind != "report" || g.Queue != "q" || !g.Next.After(e.clock.Now()) ||
		len(g.Schedulers) != 1 || g.Schedulers[0] != "sched-1" {
		t.Fatalf("schedule %+v", g)
	}
	if err := s.Shutdown(e.ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := insp.Schedules(e.ctx); err != nil || len(got) != 0 {
		t.Fatalf("Schedules after Shutdown = %+v, %v", got, err)
	}
}

func TestInspectorThroughput(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Queues = map[string]int{"default": 1, "q0": 1, "q1": 1}
	e.worker(cfg, func(w *queue.Worker) {
		w.HandleFunc("ok", noop)
		w.HandleFunc("bad", func(context.Context, *queue.TaskInfo) ([]byte, error) { return nil, queue.SkipRetry })
	})
	from := e.clock.Now()
	for i := range 5 {
		e.enqueue(queue.NewTask("ok", nil), queue.Queue(fmt.Sprintf("q%d", i%2)))
	}
	bad := e.enqueue(queue.NewTask("bad", nil))
	e.waitState(bad.ID, queue.StateDead)
	insp := queue.NewInspector(e.b)
	ok := waitFor(func() bool {
		ps, err := insp.Throughput(e.ctx, "", from, from.Add(time.Second))
		return err == nil && len(ps) == 1 && ps[0].Processed == 5 && ps[0].Failed == 1
	})
	if !ok {
		ps, err := insp.Throughput(e.ctx, "", from, from.Add(time.Second))
		t.Fatalf("Throughput = %+v, %v; want 5 processed, 1 failed", ps, err)
	}
	ps, err := insp.Throughput(e.ctx, "q0", from.Add(-time.Second), from.Add(time.Second))
	if err != nil || len(ps) != 2 || ps[1].Processed != 3 || ps[0].Processed != 0 {
		t.Fatalf("Throughput(q0) = %+v, %v", ps, err)
	}
}

// A task cancelled while it waits in the worker's prefetch buffer (leased,
// not started) does not start: the worker checks for cancels before
// starting a task that waited, instead of learning it at the next lease
// renewal (an hour away here; the broker clock is manual, so no lease expires).
func TestCancelPrefetchedTask(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Concurrency, cfg.Prefetch, cfg.ExtendInterval, cfg.LeaseDuration = 1, 4, time.Hour, 2*time.Hour
	release := make(chan struct{})
	started := make(chan struct{})
	var mu sync.Mutex
	var ran []string
	e.worker(cfg, func(w *queue.Worker) {
		w.HandleFunc("block", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			close(started)
			<-release
			return nil, nil
		})
		w.HandleFunc("run", func(ctx context.Context, ti *queue.TaskInfo) ([]byte, error) {
			mu.Lock()
			ran = append(ran, string(ti.Payload))
			mu.Unlock()
			return nil, nil
		})
	})
	e.enqueue(queue.NewTask("block", nil))
	<-started
	var ids []string
	for _, p := range []string{"a", "b", "c"} {
		ids = append(ids, e.enqueue(queue.NewTask("run", []byte(p)), queue.Retention(time.Hour)).ID)
	}
	for _, id := range ids { // leased by the worker, waiting behind "block"
		e.waitState(id, queue.StateActive)
	}
	if st, err := queue.NewInspector(e.b).CancelTask(e.ctx, "", ids[1]); err != nil || st != queue.StateActive {
		t.Fatalf("CancelTask = %q, %v", st, err)
	}
	time.Sleep(300 * time.Millisecond) // longer than the worker's cancel-check wait
	close(release)
	e.waitState(ids[0], queue.StateCompleted)
	e.waitState(ids[2], queue.StateCompleted)
	got := e.waitState(ids[1], queue.StateDead)
	mu.Lock()
	defer mu.Unlock()
	if slices.Contains(ran, "b") || len(ran) != 2 {
		t.Fatalf("ran %v: the cancelled prefetched task started", ran)
	}
	if last := got.Errors[len(got.Errors)-1]; last.Kind != "cancelled" || !strings.Contains(last.Message, "before the attempt started") {
		t.Fatalf("cancelled task: attempts %d, errors %+v", got.Attempts, got.Errors)
	}
}
