package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/memory"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestWorkerMiddleware(t *testing.T) {
	ctx := context.Background()
	b := memory.New(memory.Config{})
	defer b.Close()
	reg := prometheus.NewRegistry()
	wm, err := NewWorkerMetrics(WorkerConfig{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	// A second instance on the same registry shares the series.
	if _, err := NewWorkerMetrics(WorkerConfig{Registerer: reg}); err != nil {
		t.Fatalf("second WorkerMetrics on one registry: %v", err)
	}
	w, err := queue.NewWorker(b, queue.WorkerConfig{
		Queues: map[string]int{"m": 1}, Concurrency: 4, Logger: quiet(),
		RetryDelay:      func(int, error, *queue.TaskInfo) time.Duration { return time.Millisecond },
		ForwardInterval: 5 * time.Millisecond, PollInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	w.Use(wm.Middleware())
	release := make(chan struct{})
	w.HandleFunc("ok", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) { return []byte("ok"), nil })
	w.HandleFunc("fail", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) { return nil, errors.New("nope") })
	w.HandleFunc("skip", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) {
		return nil, fmt.Errorf("bad input: %w", queue.SkipRetry)
	})
	w.HandleFunc("panic", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) { panic("boom") })
	w.HandleFunc("block", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) {
		<-release
		return nil, nil
	})
	c, err := queue.NewClient(b, queue.ClientConfig{Options: []queue.Option{queue.Queue("m")}})
	if err != nil {
		t.Fatal(err)
	}
	ec, err := NewEnqueueCounter(reg, "")
	if err != nil {
		t.Fatal(err)
	}
	enq := func(kind string, opts ...queue.Option) {
		info, err := c.Enqueue(ctx, queue.NewTask(kind, nil), opts...)
		if err != nil {
			t.Fatal(err)
		}
		ec.Observe(info)
	}
	enq("ok")
	enq("ok")
	enq("fail", queue.MaxRetries(1)) // two attempts: retried, then dead
	enq("skip", queue.MaxRetries(5)) // SkipRetry: dead at once
	enq("panic", queue.MaxRetries(0))
	enq("block")
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = w.Shutdown(sctx)
	}()

	val := func(v *prometheus.CounterVec, kind string) float64 {
		return testutil.ToFloat64(v.WithLabelValues("m", kind))
	}
	waitFor(t, func() bool {
		return val(wm.failed, "fail") == 2 && val(wm.failed, "panic") == 1 && val(wm.processed, "ok") == 2 &&
			val(wm.failed, "skip") == 1 && testutil.ToFloat64(wm.active.WithLabelValues("m", "block")) == 1
	})
	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"processed ok", val(wm.processed, "ok"), 2},
		{"failed ok", val(wm.failed, "ok"), 0},
		{"processed fail", val(wm.processed, "fail"), 2},
		{"retried fail", val(wm.retried, "fail"), 1},
		{"retried skip", val(wm.retried, "skip"), 0},
		{"retried panic", val(wm.retried, "panic"), 0},
		{"active ok", testutil.ToFloat64(wm.active.WithLabelValues("m", "ok")), 0},
		{"enqueued ok", testutil.ToFloat64(ec.c.WithLabelValues("m", "ok")), 2},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
	close(release)
	waitFor(t, func() bool { return val(wm.processed, "block") == 1 })

	// Histograms: one duration per attempt, one latency per first attempt.
	n, err := testutil.GatherAndCount(reg, "conq_task_duration_seconds", "conq_task_queue_latency_seconds")
	if err != nil {
		t.Fatal(err)
	}
	if n != 10 { // 5 kinds × 2 histograms
		t.Errorf("%d histogram series, want 10", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "conq_task_queue_latency_seconds" {
			continue
		}
		var total uint64
		for _, m := range mf.GetMetric() {
			total += m.GetHistogram().GetSampleCount()
		}
		if total != 6 {
			t.Errorf("latency observations %d, want 6 (first attempts only)", total)
		}
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type listerFunc func(ctx context.Context) ([]queue.QueueInfo, error)

func (f listerFunc) Queues(ctx context.Context) ([]queue.QueueInfo, error) { return f(ctx) }

func TestQueueCollector(t *testing.T) {
	down := false
	src := listerFunc(func(context.Context) ([]queue.QueueInfo, error) {
		if down {
			return nil, errors.New("connection refused")
		}
		return []queue.QueueInfo{
			{Name: "a", Counts: map[broker.State]int64{broker.StatePending: 3, broker.StateDead: 1}},
			{Name: "b", Paused: true, Counts: map[broker.State]int64{}},
		}, nil
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewQueueCollector(src, QueueCollectorConfig{Logger: quiet()}))
	want := `
# HELP conq_queue_tasks Tasks in the queue by state, read from the broker at scrape time.
# TYPE conq_queue_tasks gauge
conq_queue_tasks{queue="a",state="active"} 0
conq_queue_tasks{queue="a",state="completed"} 0
conq_queue_tasks{queue="a",state="dead"} 1
conq_queue_tasks{queue="a",state="pending"} 3
conq_queue_tasks{queue="a",state="retry"} 0
conq_queue_tasks{queue="a",state="scheduled"} 0
conq_queue_tasks{queue="b",state="active"} 0
conq_queue_tasks{queue="b",state="completed"} 0
conq_queue_tasks{queue="b",state="dead"} 0
conq_queue_tasks{queue="b",state="pending"} 0
conq_queue_tasks{queue="b",state="retry"} 0
conq_queue_tasks{queue="b",state="scheduled"} 0
# HELP conq_queue_paused 1 if the queue is paused (workers take none of its tasks).
# TYPE conq_queue_paused gauge
conq_queue_paused{queue="a"} 0
conq_queue_paused{queue="b"} 1
# HELP conq_broker_up 1 if the broker answered the last scrape's queue listing.
# TYPE conq_broker_up gauge
conq_broker_up 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "conq_queue_tasks", "conq_queue_paused", "conq_broker_up"); err != nil {
		t.Fatal(err)
	}
	down = true
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP conq_broker_up 1 if the broker answered the last scrape's queue listing.
# TYPE conq_broker_up gauge
conq_broker_up 0
`), "conq_broker_up", "conq_queue_tasks"); err != nil {
		t.Fatal(err)
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	reg := NewRegistry()
	ec, err := NewEnqueueCounter(reg, "")
	if err != nil {
		t.Fatal(err)
	}
	ec.Observe(&queue.TaskInfo{Queue: "q", Kind: "k"}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, addr, reg, quiet()) }()
	var body string
	waitFor(t, func() bool {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		return resp.StatusCode == 200
	})
	if !strings.Contains(body, `conq_tasks_enqueued_total{kind="k",queue="q"} 1`) || !strings.Contains(body, "process_cpu_seconds_total") {
		t.Fatalf("metrics:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if err := Serve(context.Background(), "256.0.0.1:1", reg, quiet()); err == nil {
		t.Fatal("Serve on a bad address succeeded")
	}
}

func TestQueueCollectorWorkers(t *testing.T) {
	ctx := context.Background()
	b := memory.New(memory.Config{})
	defer b.Close()
	w, err := queue.NewWorker(b, queue.WorkerConfig{Concurrency: 3, HeartbeatInterval: 20 * time.Millisecond, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	w.HandleFunc("block", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
		<-release
		return nil, nil
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	defer close(release)
	c, err := queue.NewClient(b, queue.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Enqueue(ctx, queue.NewTask("block", nil)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewQueueCollector(queue.NewInspector(b), QueueCollectorConfig{Logger: quiet()}))
	want := `
# HELP conq_workers Live workers: those whose last heartbeat has not expired.
# TYPE conq_workers gauge
conq_workers 1
# HELP conq_worker_slots Concurrency of the live workers, summed: tasks they can run at once.
# TYPE conq_worker_slots gauge
conq_worker_slots 3
# HELP conq_worker_tasks_running Tasks the live workers reported running in their last heartbeat.
# TYPE conq_worker_tasks_running gauge
conq_worker_tasks_running 1
`
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := testutil.GatherAndCompare(reg, strings.NewReader(want), "conq_workers", "conq_worker_slots", "conq_worker_tasks_running")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
