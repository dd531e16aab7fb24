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
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
)

type addArgs struct{ A, B int }

func TestWorkerJSONRoundTrip(t *testing.T) {
	e := newEnv(t)
	e.worker(e.config(), func(w *queue.Worker) {
		queue.HandleJSON(w, "add", func(ctx context.Context, a addArgs) (int, error) {
			if ti, ok := queue.TaskFromContext(ctx); !ok || ti.Kind != "add" {
				return 0, errors.New("no task in ctx")
			}
			return a.A + a.B, nil
		})
	})
	info, err := queue.EnqueueJSON(e.ctx, e.client, "add", addArgs{2, 3}, queue.Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := queue.ResultJSON[int](e.ctx, e.client, info.ID)
	if err != nil || sum != 5 {
		t.Fatalf("ResultJSON = %d, %v", sum, err)
	}
	got := e.waitState(info.ID, queue.StateCompleted)
	if got.Attempts != 1 || string(got.Result) != "5" {
		t.Fatalf("completed task: %+v", got)
	}
	// Retention ends; the janitor deletes it.
	e.clock.Advance(time.Hour)
	if !waitFor(func() bool { _, err := e.mem.GetTask(e.ctx, "", info.ID); return errors.Is(err, queue.ErrTaskNotFound) }) {
		t.Fatal("janitor did not delete the task after its retention")
	}
}

func TestRetriesThenDeadWithHistory(t *testing.T) {
	e := newEnv(t)
	var calls atomic.Int32
	e.worker(e.config(), func(w *queue.Worker) {
		w.HandleFunc("flaky", func(ctx context.Context, ti *queue.TaskInfo) ([]byte, error) {
			return nil, fmt.Errorf("failure %d", calls.Add(1))
		})
	})
	info := e.enqueue(queue.NewTask("flaky", nil), queue.MaxRetries(2))
	for attempt := 1; attempt <= 2; attempt++ {
		if !waitFor(func() bool { got := e.get(info.ID); return got.State == queue.StateRetry && got.Attempts == attempt }) {
			t.Fatalf("not in retry after %d attempts: %+v", attempt, e.get(info.ID))
		}
		e.clock.Advance(time.Minute) // the RetryDelay
	}
	got := e.waitState(info.ID, queue.StateDead)
	if got.Attempts != 3 || len(got.Errors) != 3 || calls.Load() != 3 {
		t.Fatalf("dead: attempts %d errors %d calls %d", got.Attempts, len(got.Errors), calls.Load())
	}
	for i, ae := range got.Errors {
		if ae.Attempt != i+1 || ae.Kind != "error" || ae.Message != fmt.Sprintf("failure %d", i+1) {
			t.Fatalf("error %d: %+v", i, ae)
		}
	}
	_, err := e.client.Result(e.ctx, info.ID)
	var tf *queue.TaskFailedError
	if !errors.As(err, &tf) || tf.Attempts != 3 || len(tf.Errors) != 3 || !strings.Contains(err.Error(), "failure 3") {
		t.Fatalf("Result = %v", err)
	}
}

func TestRetryDelayFuncAndRetryAfter(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	var seen []int
	var mu sync.Mutex
	cfg.RetryDelay = func(attempt int, err error, ti *queue.TaskInfo) time.Duration {
		mu.Lock()
		seen = append(seen, attempt)
		mu.Unlock()
		return 10 * time.Second
	}
	e.worker(cfg, func(w *queue.Worker) {
		w.HandleFunc("k", func(ctx context.Context, ti *queue.TaskInfo) ([]byte, error) {
			if ti.Attempts == 0 {
				return nil, errors.New("plain")
			}
			return nil, queue.RetryAfter(5*time.Minute, errors.New("rate limited"))
		})
	})
	start := e.clock.Now()
	info := e.enqueue(queue.NewTask("k", nil))
	e.waitState(info.ID, queue.StateRetry)
	e.clock.Advance(10 * time.Second)
	var got *queue.TaskInfo
	waitFor(func() bool { got = e.get(info.ID); return got.State == queue.StateRetry && got.Attempts == 2 })
	if got.Errors[1].Message != "rate limited" {
		t.Fatalf("errors %+v", got.Errors)
	}
	e.clock.Set(start.Add(10*time.Second + 5*time.Minute - time.Second))
	time.Sleep(50 * time.Millisecond)
	if got := e.get(info.ID); got.State != queue.StateRetry {
		t.Fatalf("ran before RetryAfter's delay: %s", got.State)
	}
	e.clock.Advance(time.Second)
	if !waitFor(func() bool { return e.get(info.ID).Attempts == 3 }) {
		t.Fatal("not retried after RetryAfter's delay")
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, []int{1}) {
		t.Fatalf("RetryDelay called for attempts %v, want [1]", seen)
	}
}

func TestSkipRetryPanicUnknownKindMalformedJSON(t *testing.T) {
	e := newEnv(t)
	e.worker(e.config(), func(w *queue.Worker) {
		w.HandleFunc("skip", func(context.Context, *queue.TaskInfo) ([]byte, error) {
			return nil, fmt.Errorf("user gone: %w", queue.SkipRetry)
		})
		w.HandleFunc("panic", func(context.Context, *queue.TaskInfo) ([]byte, error) {
			panicky()
			return nil, nil
		})
		queue.HandleJSON(w, "json", func(ctx context.Context, a addArgs) (struct{}, error) { return struct{}{}, nil })
	})
	skip := e.enqueue(queue.NewTask("skip", nil))
	got := e.waitState(skip.ID, queue.StateDead)
	if got.Attempts != 1 || !strings.Contains(got.Errors[0].Message, "user gone") {
		t.Fatalf("SkipRetry: %+v", got)
	}

	pan := e.enqueue(queue.NewTask("panic", nil), queue.MaxRetries(0))
	got = e.waitState(pan.ID, queue.StateDead)
	if ae := got.Errors[0]; ae.Kind != "panic" || ae.Message != "panic: kaboom" || !strings.Contains(ae.Stack, "panicky") {
		t.Fatalf("panic attempt: %+v", ae)
	}

	bad := e.enqueue(queue.NewTask("json", []byte("{not json")), queue.MaxRetries(5))
	got = e.waitState(bad.ID, queue.StateDead)
	if got.Attempts != 1 || !strings.Contains(got.Errors[0].Message, "malformed JSON payload") || !strings.Contains(got.Errors[0].Message, "queue_test.addArgs") {
		t.Fatalf("malformed JSON: %+v", got.Errors)
	}

	unk := e.enqueue(queue.NewTask("nobody.handles.this", nil), queue.MaxRetries(1))
	got = e.waitState(unk.ID, queue.StateRetry)
	if ae := got.Errors[0]; ae.Kind != "unknown_kind" || !strings.Contains(ae.Message, `"nobody.handles.this"`) {
		t.Fatalf("unknown kind: %+v", ae)
	}
	e.clock.Advance(time.Minute)
	e.waitState(unk.ID, queue.StateDead)
}

func panicky() { panic("kaboom") }

func TestTimeoutAndDeadline(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	e.worker(cfg, func(w *queue.Worker) {
		w.HandleFunc("block", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		})
	})
	info := e.enqueue(queue.NewTask("block", nil), queue.Timeout(30*time.Millisecond), queue.MaxRetries(0))
	got := e.waitState(info.ID, queue.StateDead)
	if got.Errors[0].Kind != "timeout" {
		t.Fatalf("timeout attempt: %+v", got.Errors[0])
	}
	// The deadline bounds the attempt too (it is 50ms away on the clock).
	info = e.enqueue(queue.NewTask("block", nil), queue.Deadline(e.clock.Now().Add(50*time.Millisecond)))
	got = e.waitState(info.ID, queue.StateDead)
	if got.Attempts != 1 || got.Errors[0].Kind != "timeout" || !strings.Contains(got.Errors[0].Message, "deadline") {
		t.Fatalf("deadline-bounded attempt: %+v", got.Errors)
	}
}

func TestDeadlinePassedBeforeStart(t *testing.T) {
	e := newEnv(t)
	info := e.enqueue(queue.NewTask("k", nil), queue.Deadline(e.clock.Now().Add(time.Second)))
	e.clock.Advance(2 * time.Second)
	var ran atomic.Bool
	e.worker(e.config(), func(w *queue.Worker) {
		w.HandleFunc("k", func(context.Context, *queue.TaskInfo) ([]byte, error) { ran.Store(true); return nil, nil })
	})
	got := e.waitState(info.ID, queue.StateDead)
	if ran.Load() || got.Errors[0].Kind != "deadline" {
		t.Fatalf("ran %v, errors %+v", ran.Load(), got.Errors)
	}
}

func TestScheduledTaskWaitsInBroker(t *testing.T) {
	e := newEnv(t)
	done := make(chan string, 1)
	e.worker(e.config(), func(w *queue.Worker) {
		w.HandleFunc("k", func(_ context.Context, ti *queue.TaskInfo) ([]byte, error) { done <- ti.ID; return nil, nil })
	})
	info := e.enqueue(queue.NewTask("k", nil), queue.ProcessIn(time.Hour))
	time.Sleep(50 * time.Millisecond)
	if got := e.get(info.ID); got.State != queue.StateScheduled {
		t.Fatalf("scheduled task is %s", got.State)
	}
	e.clock.Advance(time.Hour)
	select {
	case id := <-done:
		if id != info.ID {
			t.Fatalf("ran %s", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("scheduled task never ran")
	}
}

func TestLeaseExtendedWhileRunning(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.LeaseDuration = 10 * time.Second
	release := make(chan struct{})
	started := make(chan struct{})
	e.worker(cfg, func(w *queue.Worker) {
		w.HandleFunc("k", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			close(started)
			<-release
			return []byte("ok"), ctx.Err()
		})
	})
	info := e.enqueue(queue.NewTask("k", nil), queue.Retention(time.Hour))
	<-started
	// Move time on in steps shorter than the lease; the extender keeps up.
	for range 10 {
		before := e.get(info.ID).LeaseUntil
		e.clock.Advance(5 * time.Second)
		if !waitFor(func() bool { return e.get(info.ID).LeaseUntil.After(before) }) {
			t.Fatal("lease not extended")
		}
	}
	if got := e.get(info.ID); got.State != queue.StateActive || got.Attempts != 0 {
		t.Fatalf("long task: %+v", got)
	}
	close(release)
	e.waitState(info.ID, queue.StateCompleted)
}

func TestLeaseLostCancelsHandlerAndDropsOutcome(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.LeaseDuration = 10 * time.Second
	cfg.NoMaintenance = true // the test recovers by hand
	// One runner, no prefetch, and a handler that returns only when the
	// test says so: the worker has no free slot, so the task recovered
	// below can only go to the test's "other worker" (with a free slot,
	// the worker's own fetch loop could take it back first).
	cfg.Concurrency, cfg.Prefetch = 1, -1
	cause := make(chan error, 1)
	started, release := make(chan struct{}), make(chan struct{})
	e.worker(cfg, func(w *queue.Worker) {
		w.HandleFunc("k", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			close(started)
			<-ctx.Done()
			cause <- context.Cause(ctx)
			<-release
			return []byte("too late"), nil // ignores the cancellation: must still be dropped
		})
	})
	var releaseOnce sync.Once
	free := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(free) // before the worker's shutdown (cleanups run last first)
	info := e.enqueue(queue.NewTask("k", nil), queue.Retention(time.Hour))
	<-started
	// Expire the lease and let "another worker" take the task.
	var other *broker.Task
	if !waitFor(func() bool {
		e.clock.Advance(11 * time.Second)
		if n, _ := e.mem.Recover(e.ctx); n == 0 {
			return false
		}
		ts, err := e.mem.Fetch(e.ctx, broker.FetchParams{Queues: []string{queue.DefaultQueue}, Max: 1, Lease: time.Hour, WorkerID: "other"})
		if err != nil || len(ts) != 1 {
			t.Fatalf("other worker's fetch: %v, %v", ts, err)
		}
		other = ts[0]
		return true
	}) {
		t.Fatal("could not expire the lease")
	}
	select {
	case err := <-cause:
		if !errors.Is(err, queue.ErrLeaseLost) {
			t.Fatalf("handler ctx cause = %v, want ErrLeaseLost", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("handler ctx not cancelled after its lease was lost")
	}
	free()
	if !waitFor(func() bool { return strings.Contains(e.logs.String(), "dropping the outcome") }) {
		t.Fatalf("no log about the dropped outcome:\n%s", e.logs.String())
	}
	got := e.get(info.ID)
	if got.State != queue.StateActive || got.Token != other.Token || got.WorkerID != "other" || got.Attempts != 1 {
		t.Fatalf("the first worker touched a task it lost: %+v", got)
	}
	if err := e.mem.Complete(e.ctx, broker.Ack{LeaseRef: broker.LeaseRef{Queue: got.Queue, ID: got.ID, Token: other.Token}, Result: []byte("other")}); err != nil {
		t.Fatal(err)
	}
	if res, err := e.client.Result(e.ctx, info.ID); err != nil || string(res) != "other" {
		t.Fatalf("Result = %q, %v", res, err)
	}
}

func TestRecovererRunsTasksOfDeadWorkers(t *testing.T) {
	e := newEnv(t)
	info := e.enqueue(queue.NewTask("k", nil), queue.Retention(time.Hour))
	// A worker fetches and dies without a word.
	if ts, err := e.mem.Fetch(e.ctx, broker.FetchParams{Queues: []string{queue.DefaultQueue}, Max: 1, Lease: 30 * time.Second, WorkerID: "dead-worker"}); err != nil || len(ts) != 1 {
		t.Fatal(ts, err)
	}
	e.worker(e.config(), func(w *queue.Worker) { w.HandleFunc("k", noop) })
	time.Sleep(30 * time.Millisecond)
	if got := e.get(info.ID); got.State != queue.StateActive {
		t.Fatalf("recovered before the lease expired: %s", got.State)
	}
	e.clock.Advance(30 * time.Second)
	got := e.waitState(info.ID, queue.StateCompleted)
	if got.Attempts != 2 || got.Errors[0].Kind != "lease_expired" {
		t.Fatalf("recovered task: %+v", got)
	}
}

func TestGracefulShutdownWaitsForRunningTasks(t *testing.T) {
	e := newEnv(t)
	started := make(chan struct{})
	w := e.worker(e.config(), func(w *queue.Worker) {
		w.HandleFunc("k", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			close(started)
			time.Sleep(100 * time.Millisecond)
			return []byte("done"), ctx.Err()
		})
	})
	info := e.enqueue(queue.NewTask("k", nil), queue.Retention(time.Hour))
	<-started
	e.shutdown(w)
	if got := e.get(info.ID); got.State != queue.StateCompleted || string(got.Result) != "done" {
		t.Fatalf("after graceful shutdown: %+v", got)
	}
	if err := w.Shutdown(e.ctx); !errors.Is(err, queue.ErrWorkerState) {
		t.Fatalf("second Shutdown = %v", err)
	}
}

func TestShutdownRequeuesRunningAndPrefetched(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Concurrency, cfg.Prefetch = 1, 4
	cfg.ShutdownTimeout = 50 * time.Millisecond
	started := make(chan struct{}, 10)
	w := e.worker(cfg, func(w *queue.Worker) {
		w.HandleFunc("k", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			started <- struct{}{}
			<-ctx.Done()
			return nil, ctx.Err()
		})
	})
	var ids []string
	for range 5 {
		ids = append(ids, e.enqueue(queue.NewTask("k", nil)).ID)
	}
	<-started
	if !waitFor(func() bool {
		ts, _ := e.mem.ListTasks(e.ctx, broker.ListParams{Queue: queue.DefaultQueue, State: queue.StateActive, Offset: 0, Limit: 0})
		return len(ts) == 5
	}) {
		t.Fatal("worker did not prefetch")
	}
	e.shutdown(w)
	for _, id := range ids {
		if got := e.get(id); got.State != queue.StatePending || got.Attempts != 0 || len(got.Errors) != 0 {
			t.Fatalf("after shutdown task %s: %+v", id, got)
		}
	}
	if len(started) != 0 {
		t.Fatalf("%d prefetched tasks were started during shutdown", len(started))
	}
}

func TestShutdownAbandonsHandlersIgnoringCancellation(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.ShutdownTimeout = 10 * time.Millisecond
	release := make(chan struct{})
	returned := make(chan struct{})
	started := make(chan struct{})
	w := e.worker(cfg, func(w *queue.Worker) {
		w.HandleFunc("k", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			defer close(returned)
			close(started)
			<-release // ignores ctx
			return nil, nil
		})
	})
	info := e.enqueue(queue.NewTask("k", nil))
	<-started
	e.shutdown(w)
	if got := e.get(info.ID); got.State != queue.StatePending || got.Attempts != 0 {
		t.Fatalf("abandoned task: %+v", got)
	}
	close(release)
	<-returned
	time.Sleep(10 * time.Millisecond)
	if got := e.get(info.ID); got.State != queue.StatePending {
		t.Fatalf("a late outcome was recorded: %+v", got)
	}
}

func TestBrokerOutage(t *testing.T) {
	e := newEnv(t)
	faulty := brokertest.NewFaulty(e.mem)
	e.b = faulty
	e.client = e.newClient()
	faulty.SetDown(nil)
	var processed atomic.Int32
	e.worker(e.config(), func(w *queue.Worker) {
		w.HandleFunc("k", func(context.Context, *queue.TaskInfo) ([]byte, error) { processed.Add(1); return nil, nil })
		w.HandleFunc("slow", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			if !waitFor(func() bool { return faulty.Failures("ExtendLeases") >= 2 }) {
				return nil, errors.New("the lease was never renewed through the failing call")
			}
			return nil, ctx.Err()
		})
	})
	if !waitFor(func() bool { return faulty.Failures("Fetch") >= 3 }) {
		t.Fatal("worker stopped trying to fetch")
	}
	if _, err := e.client.Enqueue(e.ctx, queue.NewTask("k", nil)); !errors.Is(err, brokertest.ErrInjected) {
		t.Fatalf("Enqueue while down = %v", err)
	}
	faulty.SetUp()
	faulty.FailNext("Complete", 3, nil)
	// The call production renews leases with: one running task keeps a
	// lease held until both injected renewal failures have happened.
	faulty.FailNext("ExtendLeases", 2, nil)
	slow := e.enqueue(queue.NewTask("slow", nil), queue.Retention(time.Hour))
	var ids []string
	for range 20 {
		ids = append(ids, e.enqueue(queue.NewTask("k", nil), queue.Retention(time.Hour)).ID)
	}
	for _, id := range ids {
		e.waitState(id, queue.StateCompleted)
	}
	if faulty.Failures("Complete") != 3 {
		t.Fatalf("Complete failures %d", faulty.Failures("Complete"))
	}
	e.waitState(slow.ID, queue.StateCompleted)
	if faulty.Failures("ExtendLeases") != 2 {
		t.Fatalf("ExtendLeases failures %d, want the 2 injected", faulty.Failures("ExtendLeases"))
	}
	logs := e.logs.String()
	for _, want := range []string{"fetching tasks failed", "recording task outcomes failed"} {
		if !strings.Contains(logs, want) {
			t.Fatalf("no %q in logs:\n%s", want, logs)
		}
	}
	if processed.Load() != 20 {
		t.Fatalf("processed %d tasks, want 20", processed.Load())
	}
}

func TestMiddlewareOrder(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var trace []string
	mw := func(name string) queue.Middleware {
		return func(next queue.Handler) queue.Handler {
			return queue.HandlerFunc(func(ctx context.Context, ti *queue.TaskInfo) ([]byte, error) {
				mu.Lock()
				trace = append(trace, name+">"+ti.Kind)
				mu.Unlock()
				return next.ProcessTask(ctx, ti)
			})
		}
	}
	e.worker(e.config(), func(w *queue.Worker) {
		w.Use(mw("outer"))
		w.HandleFunc("k", noop)
		w.Use(mw("inner"))
	})
	a := e.enqueue(queue.NewTask("k", nil), queue.Retention(time.Hour))
	e.waitState(a.ID, queue.StateCompleted)
	u := e.enqueue(queue.NewTask("unknown", nil), queue.MaxRetries(0))
	e.waitState(u.ID, queue.StateDead)
	mu.Lock()
	defer mu.Unlock()
	want := []string{"outer>k", "inner>k", "outer>unknown", "inner>unknown"}
	if !slices.Equal(trace, want) {
		t.Fatalf("trace %v, want %v", trace, want)
	}
}

func TestStrictPriority(t *testing.T) {
	e := newEnv(t)
	for i := range 5 {
		e.enqueue(queue.NewTask("k", []byte(fmt.Sprint("low", i))), queue.Queue("low"))
		e.enqueue(queue.NewTask("k", []byte(fmt.Sprint("high", i))), queue.Queue("high"))
	}
	cfg := e.config()
	cfg.Queues = map[string]int{"high": 2, "low": 1}
	cfg.StrictPriority = true
	cfg.Concurrency, cfg.Prefetch = 1, -1
	var mu sync.Mutex
	var order []string
	e.worker(cfg, func(w *queue.Worker) {
		w.HandleFunc("k", func(_ context.Context, ti *queue.TaskInfo) ([]byte, error) {
			mu.Lock()
			order = append(order, string(ti.Payload))
			mu.Unlock()
			return nil, nil
		})
	})
	if !waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return len(order) == 10 }) {
		t.Fatal("not all processed")
	}
	for i, p := range order {
		if (i < 5) != strings.HasPrefix(p, "high") {
			t.Fatalf("order %v: high tasks must all come first", order)
		}
	}
}

func TestWeightedQueuesAllServed(t *testing.T) {
	e := newEnv(t)
	cfg := e.config()
	cfg.Queues = map[string]int{"a": 5, "b": 1}
	e.worker(cfg, func(w *queue.Worker) { w.HandleFunc("k", noop) })
	var ids []string
	for i := range 50 {
		ids = append(ids, e.enqueue(queue.NewTask("k", nil), queue.Queue([]string{"a", "b"}[i%2]), queue.Retention(time.Hour)).ID)
	}
	for _, id := range ids {
		e.waitState(id, queue.StateCompleted)
	}
}

func TestManyWorkersEachTaskOnce(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	seen := map[string]int{}
	for range 3 {
		cfg := e.config()
		cfg.Concurrency = 8
		e.worker(cfg, func(w *queue.Worker) {
			w.HandleFunc("k", func(_ context.Context, ti *queue.TaskInfo) ([]byte, error) {
				mu.Lock()
				seen[ti.ID]++
				mu.Unlock()
				return nil, nil
			})
		})
	}
	const n = 2000
	tasks := make([]*queue.Task, n)
	for i := range tasks {
		tasks[i] = queue.NewTask("k", nil)
	}
	if _, err := e.client.EnqueueMany(e.ctx, tasks); err != nil {
		t.Fatal(err)
	}
	if !waitFor(func() bool { mu.Lock(); defer mu.Unlock(); return len(seen) == n }) {
		t.Fatalf("processed %d of %d", len(seen), n)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("task %s ran %d times", id, c)
		}
	}
}

func TestWorkerConfigErrors(t *testing.T) {
	e := newEnv(t)
	bad := []struct {
		cfg  queue.WorkerConfig
		want string
	}{
		{queue.WorkerConfig{Queues: map[string]int{"a": 0}}, "weights must be positive"},
		{queue.WorkerConfig{Queues: map[string]int{"bad name": 1}}, "bad name"},
		{queue.WorkerConfig{LeaseDuration: -time.Second}, "LeaseDuration"},
		{queue.WorkerConfig{LeaseDuration: time.Second, ExtendInterval: time.Second}, "shorter than LeaseDuration"},
		{queue.WorkerConfig{Concurrency: -1}, "Concurrency"},
		{queue.WorkerConfig{MaxPrefetch: -1}, "MaxPrefetch"},
		{queue.WorkerConfig{ShortConcurrency: -1}, "ShortConcurrency"},
		{queue.WorkerConfig{Prefetch: 1 << 20}, "at most 65536"},
	}
	for _, c := range bad {
		if _, err := queue.NewWorker(e.b, c.cfg); !errors.Is(err, queue.ErrInvalidOption) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("NewWorker(%+v) = %v, want error mentioning %q", c.cfg, err, c.want)
		}
	}
	w, err := queue.NewWorker(e.b, queue.WorkerConfig{Logger: e.logger()})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); !errors.Is(err, queue.ErrInvalidOption) {
		t.Fatalf("Start without handlers = %v", err)
	}
	if err := w.Shutdown(e.ctx); !errors.Is(err, queue.ErrWorkerState) {
		t.Fatalf("Shutdown before Start = %v", err)
	}
	w.HandleFunc("k", noop)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); !errors.Is(err, queue.ErrWorkerState) {
		t.Fatalf("second Start = %v", err)
	}
	e.shutdown(w)
}

func TestRunStopsWithContext(t *testing.T) {
	e := newEnv(t)
	w, err := queue.NewWorker(e.b, e.config())
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("k", noop)
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	info := e.enqueue(queue.NewTask("k", nil), queue.Retention(time.Hour))
	e.waitState(info.ID, queue.StateCompleted)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestMuxRegistrationPanics(t *testing.T) {
	m := registrar(t)
	m.HandleFunc("k", noop)
	for name, fn := range map[string]func(){
		"duplicate":  func() { m.HandleFunc("k", noop) },
		"empty kind": func() { m.HandleFunc("", noop) },
		"nil":        func() { m.Handle("x", nil) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			fn()
		}()
	}
}

func TestExponentialBackoff(t *testing.T) {
	b := queue.ExponentialBackoff{Base: time.Second, Max: time.Minute}
	for attempt, want := range map[int]time.Duration{1: time.Second, 2: 2 * time.Second, 4: 8 * time.Second, 7: time.Minute, 100: time.Minute} {
		if got := b.Delay(attempt, nil, nil); got != want {
			t.Errorf("Delay(%d) = %v, want %v", attempt, got, want)
		}
	}
	for range 100 {
		d := queue.DefaultRetryDelay(3, nil, nil)
		if d < 3200*time.Millisecond || d > 4800*time.Millisecond {
			t.Fatalf("DefaultRetryDelay(3) = %v, want 4s ±20%%", d)
		}
	}
}

func TestDeadlineStopsRetries(t *testing.T) {
	e := newEnv(t)
	e.worker(e.config(), func(w *queue.Worker) {
		w.HandleFunc("k", func(context.Context, *queue.TaskInfo) ([]byte, error) { return nil, errors.New("no") })
	})
	// The retry delay is a minute; the deadline is sooner.
	info := e.enqueue(queue.NewTask("k", nil), queue.Deadline(e.clock.Now().Add(30*time.Second)))
	got := e.waitState(info.ID, queue.StateDead)
	if got.Attempts != 1 || !strings.Contains(got.Errors[0].Message, "after the deadline") {
		t.Fatalf("dead task: %+v", got.Errors)
	}
}

// slowFetch delays every Fetch and records the largest Max asked for.
type slowFetch struct {
	broker.Broker
	delay  time.Duration
	maxAsk atomic.Int64
}

func (s *slowFetch) Fetch(ctx context.Context, p broker.FetchParams) ([]*broker.Task, error) {
	for {
		old := s.maxAsk.Load()
		if int64(p.Max) <= old || s.maxAsk.CompareAndSwap(old, int64(p.Max)) {
			break
		}
	}
	time.Sleep(s.delay)
	return s.Broker.Fetch(ctx, p)
}

// runKTasks enqueues n tasks of kind "k", waits until done counts them
// all, and shuts w down.
func runKTasks(t *testing.T, e *env, w *queue.Worker, n int, done *atomic.Int32) {
	t.Helper()
	batch := make([]*queue.Task, n)
	for i := range batch {
		batch[i] = queue.NewTask("k", nil)
	}
	if _, err := e.client.EnqueueMany(e.ctx, batch); err != nil {
		t.Fatal(err)
	}
	if !waitFor(func() bool { return done.Load() == int32(n) }) {
		t.Fatalf("%d of %d tasks done", done.Load(), n)
	}
	e.shutdown(w)
}

// ShortConcurrency holds while attempts are short, Concurrency otherwise.
func TestShortConcurrency(t *testing.T) {
	const concurrency, short = 2, 8
	run := func(t *testing.T, tasks int, work time.Duration) int32 {
		e := newEnv(t)
		cfg := e.config()
		cfg.Concurrency, cfg.ShortConcurrency = concurrency, short
		var done, running, most atomic.Int32
		w := e.worker(cfg, func(w *queue.Worker) {
			w.HandleFunc("k", func(context.Context, *queue.TaskInfo) ([]byte, error) {
				n := running.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				time.Sleep(work)
				running.Add(-1)
				done.Add(1)
				return nil, nil
			})
		})
		runKTasks(t, e, w, tasks, &done)
		t.Logf("at most %d attempts at once", most.Load())
		return most.Load()
	}
	t.Run("short tasks", func(t *testing.T) {
		if got := run(t, 2000, 200*time.Microsecond); got <= concurrency || got > short {
			t.Fatalf("at most %d attempts at once, want more than Concurrency %d and at most ShortConcurrency %d", got, concurrency, short)
		}
	})
	t.Run("long tasks", func(t *testing.T) {
		if got := run(t, 12, 30*time.Millisecond); got > concurrency {
			t.Fatalf("at most %d attempts at once, want at most Concurrency %d", got, concurrency)
		}
	})
}

func TestAdaptivePrefetch(t *testing.T) {
	const concurrency, maxPrefetch = 4, 28
	run := func(t *testing.T, tasks int, work time.Duration) int64 {
		e := newEnv(t)
		sf := &slowFetch{Broker: e.mem, delay: 2 * time.Millisecond}
		e.b = sf
		cfg := e.config()
		cfg.Concurrency, cfg.MaxPrefetch = concurrency, maxPrefetch
		var done atomic.Int32
		w := e.worker(cfg, func(w *queue.Worker) {
			w.HandleFunc("k", func(context.Context, *queue.TaskInfo) ([]byte, error) {
				time.Sleep(work)
				done.Add(1)
				return nil, nil
			})
		})
		runKTasks(t, e, w, tasks, &done)
		t.Logf("largest fetch asked for %d tasks", sf.maxAsk.Load())
		return sf.maxAsk.Load()
	}
	t.Run("short tasks", func(t *testing.T) {
		// Attempts of microseconds behind 2 ms fetches: the prefetch grows
		// beyond its start (Concurrency), never beyond MaxPrefetch.
		got := run(t, 3000, 0)
		if got <= 2*concurrency || got > concurrency+maxPrefetch {
			t.Fatalf("largest fetch asked for %d tasks, want more than %d and at most %d", got, 2*concurrency, concurrency+maxPrefetch)
		}
	})
	t.Run("long tasks", func(t *testing.T) {
		// Attempts of 50 ms behind 2 ms fetches: it stays at its start.
		got := run(t, 24, 50*time.Millisecond)
		if got > 2*concurrency {
			t.Fatalf("largest fetch asked for %d tasks, want at most %d", got, 2*concurrency)
		}
	})
}
