package queue_test

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	"github.com/conqhq/conq/queue/broker/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// env is a memory broker on a manual clock with a client.
type env struct {
	t      *testing.T
	clock  *brokertest.ManualClock
	mem    *memory.Broker
	b      broker.Broker // mem, or a Faulty around it
	client *queue.Client
	ctx    context.Context
	logs   *syncBuffer
}

func newEnv(t *testing.T) *env {
	t.Helper()
	clock := brokertest.NewManualClock(time.Time{})
	mem := memory.New(memory.Config{Clock: clock})
	t.Cleanup(func() { mem.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	e := &env{t: t, clock: clock, mem: mem, b: mem, ctx: ctx, logs: &syncBuffer{}}
	e.client = e.newClient()
	return e
}

func (e *env) newClient(opts ...queue.Option) *queue.Client {
	e.t.Helper()
	c, err := queue.NewClient(e.b, queue.ClientConfig{Options: opts})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// config returns a worker config with fast real-time intervals.
func (e *env) config() queue.WorkerConfig {
	return queue.WorkerConfig{
		Concurrency:     4,
		LeaseDuration:   30 * time.Second,
		ExtendInterval:  20 * time.Millisecond,
		ForwardInterval: 5 * time.Millisecond,
		RecoverInterval: 5 * time.Millisecond,
		CleanupInterval: 5 * time.Millisecond,
		PollInterval:    20 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
		RetryDelay:      func(int, error, *queue.TaskInfo) time.Duration { return time.Minute },
		Logger:          e.logger(),
	}
}

func (e *env) worker(cfg queue.WorkerConfig, setup func(w *queue.Worker)) *queue.Worker {
	e.t.Helper()
	w, err := queue.NewWorker(e.b, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	setup(w)
	if err := w.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	stopped := false
	e.t.Cleanup(func() {
		if !stopped {
			w.Shutdown(context.Background())
		}
	})
	return w
}

func (e *env) shutdown(w *queue.Worker) {
	e.t.Helper()
	if err := w.Shutdown(e.ctx); err != nil {
		e.t.Fatalf("Shutdown: %v", err)
	}
}

func (e *env) enqueue(task *queue.Task, opts ...queue.Option) *queue.TaskInfo {
	e.t.Helper()
	info, err := e.client.Enqueue(e.ctx, task, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

func (e *env) get(id string) *queue.TaskInfo {
	e.t.Helper()
	got, err := e.mem.GetTask(e.ctx, "", id)
	if err != nil {
		e.t.Fatalf("GetTask(%s): %v", id, err)
	}
	return got
}

// waitState polls until the task is in state.
func (e *env) waitState(id string, state queue.State) *queue.TaskInfo {
	e.t.Helper()
	var last *queue.TaskInfo
	ok := waitFor(func() bool {
		t, err := e.mem.GetTask(e.ctx, "", id)
		last = t
		return err == nil && t.State == state
	})
	if !ok {
		e.t.Fatalf("task %s never reached %s; last %+v", id, state, last)
	}
	return last
}

func waitFor(cond func() bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(2 * time.Millisecond)
	}
	return false
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func noop(context.Context, *queue.TaskInfo) ([]byte, error) { return nil, nil }

// registrar is a worker that is never started, to register handlers on.
func registrar(t *testing.T) *queue.Worker {
	t.Helper()
	w, err := queue.NewWorker(memory.New(memory.Config{}), queue.WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return w
}
