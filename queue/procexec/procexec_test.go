package procexec_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/conqhq/conq/procpool"
	"github.com/conqhq/conq/procpool/worker"
	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
	"github.com/conqhq/conq/queue/procexec"
)

// workerEnv makes the test binary serve as a procpool worker program.
const workerEnv = "CONQ_PROCEXEC_TEST_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) != "" {
		serveTestWorker()
		return
	}
	os.Exit(m.Run())
}

// serveTestWorker is the worker program: tasks named after what they do.
func serveTestWorker() {
	worker.Handle("echo", func(_ context.Context, args []byte) ([]byte, error) { return args, nil })
	worker.Handle("fail", func(_ context.Context, args []byte) ([]byte, error) {
		return nil, &worker.Error{Type: "ValueError", Message: "bad value " + string(args),
			Traceback: "Traceback (most recent call last):\n  File \"tasks.py\", line 3, in fail\n"}
	})
	worker.Handle("skip", func(_ context.Context, _ []byte) ([]byte, error) {
		return nil, &worker.Error{Type: procexec.SkipRetryType, Message: "hopeless"}
	})
	// crash_once exits the process unless its marker file (the argument)
	// exists; it creates the file first, so the retry succeeds.
	worker.Handle("crash_once", func(_ context.Context, args []byte) ([]byte, error) {
		if _, err := os.Stat(string(args)); err != nil {
			_ = os.WriteFile(string(args), nil, 0o600)
			os.Exit(3)
		}
		return []byte("survived"), nil
	})
	worker.Handle("sleep", func(ctx context.Context, _ []byte) ([]byte, error) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Minute):
			return []byte("slept"), nil
		}
	})
	// together answers once 4 calls run at once in this process.
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	running := 0
	worker.Handle("together", func(ctx context.Context, _ []byte) ([]byte, error) {
		mu.Lock()
		defer mu.Unlock()
		running++
		cond.Broadcast()
		stop := context.AfterFunc(ctx, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
		defer stop()
		for running < 4 && ctx.Err() == nil {
			cond.Wait()
		}
		return []byte(strconv.Itoa(os.Getpid())), ctx.Err()
	})
	worker.Handle("info", func(ctx context.Context, _ []byte) ([]byte, error) {
		info, _ := worker.CallInfo(ctx)
		return json.Marshal(info)
	})
	// retry_once asks to be retried in 400ms unless its marker exists.
	worker.Handle("retry_once", func(_ context.Context, args []byte) ([]byte, error) {
		if _, err := os.Stat(string(args)); err != nil {
			_ = os.WriteFile(string(args), nil, 0o600)
			return nil, worker.RetryAfter(400*time.Millisecond, errors.New("rate limited"))
		}
		return []byte("done"), nil
	})
	worker.Handle("skip_field", func(context.Context, []byte) ([]byte, error) {
		return nil, fmt.Errorf("no such user: %w", worker.ErrSkipRetry)
	})
	if err := worker.Run(); err != nil {
		os.Exit(1)
	}
}

type env struct {
	t       *testing.T
	ctx     context.Context
	client  *queue.Client
	inspect *queue.Inspector
}

// start runs a queue worker on a memory broker whose every kind goes
// through procexec to a pool of the test binary.
func start(t *testing.T, opts ...func(*procpool.Config)) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	cfg := procpool.Config{
		Command: []string{os.Args[0]}, Env: []string{workerEnv + "=1"},
		Workers: 2, CancelGrace: 500 * time.Millisecond, Logger: logger,
	}
	for _, o := range opts {
		o(&cfg)
	}
	pool, err := procpool.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pool.Close() })
	b := memory.New(memory.Config{})
	t.Cleanup(func() { b.Close() })
	w, err := queue.NewWorker(b, queue.WorkerConfig{
		Concurrency: 2, Logger: logger, ForwardInterval: 20 * time.Millisecond,
		RetryDelay: func(int, error, *queue.TaskInfo) time.Duration { return 10 * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	h := procexec.Handler(pool)
	for _, kind := range []string{"echo", "fail", "skip", "crash_once", "sleep", "missing", "info", "retry_once", "skip_field"} {
		w.Handle(kind, h)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	c, err := queue.NewClient(b, queue.ClientConfig{Options: []queue.Option{queue.Retention(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, ctx: ctx, client: c, inspect: queue.NewInspector(b)}
}

func (e *env) run(kind, payload string, opts ...queue.Option) ([]byte, error) {
	e.t.Helper()
	info, err := e.client.Enqueue(e.ctx, queue.NewTask(kind, []byte(payload)), opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.client.Result(e.ctx, info.ID)
}

func failed(t *testing.T, err error) *queue.TaskFailedError {
	t.Helper()
	var tf *queue.TaskFailedError
	if !errors.As(err, &tf) {
		t.Fatalf("want a dead task, got %v", err)
	}
	return tf
}

func TestResult(t *testing.T) {
	e := start(t)
	res, err := e.run("echo", `{"x":1}`)
	if err != nil || string(res) != `{"x":1}` {
		t.Fatalf("echo = %q, %v", res, err)
	}
}

func TestTaskErrorCarriesTypeAndMessage(t *testing.T) {
	e := start(t)
	_, err := e.run("fail", "42", queue.MaxRetries(1))
	tf := failed(t, err)
	if tf.Attempts != 2 || len(tf.Errors) != 2 {
		t.Fatalf("attempts %d, errors %v: want 2 (retried once)", tf.Attempts, tf.Errors)
	}
	last, _ := tf.Last()
	if last.Kind != "error" || !strings.HasPrefix(last.Message, "ValueError: bad value 42") {
		t.Fatalf("last error = %+v", last)
	}
	// The traceback is the attempt's stack, not part of its message.
	if strings.Contains(last.Message, "Traceback") || !strings.HasPrefix(last.Stack, "Traceback (most recent call last)") || !strings.Contains(last.Stack, "in fail") {
		t.Fatalf("message %q, stack %q", last.Message, last.Stack)
	}
}

func TestSkipRetryType(t *testing.T) {
	e := start(t)
	_, err := e.run("skip", "", queue.MaxRetries(5))
	tf := failed(t, err)
	if tf.Attempts != 1 {
		t.Fatalf("attempts = %d, want 1: SkipRetry gives up at once", tf.Attempts)
	}
	if last, _ := tf.Last(); !strings.Contains(last.Message, "SkipRetry: hopeless") {
		t.Fatalf("last error = %+v", last)
	}
}

func TestUnknownKindNamesIt(t *testing.T) {
	e := start(t)
	_, err := e.run("missing", "1", queue.MaxRetries(0))
	last, _ := failed(t, err).Last()
	if last.Kind != "unknown_kind" || !strings.Contains(last.Message, `"missing"`) {
		t.Fatalf("last error = %+v, want unknown_kind naming the kind", last)
	}
}

func TestWorkerCrashIsRetried(t *testing.T) {
	e := start(t)
	marker := t.TempDir() + "/crashed"
	info, err := e.client.Enqueue(e.ctx, queue.NewTask("crash_once", []byte(marker)), queue.MaxRetries(2))
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.client.Result(e.ctx, info.ID)
	if err != nil || string(res) != "survived" {
		t.Fatalf("crash_once = %q, %v; want the retry to succeed", res, err)
	}
	done, err := e.inspect.Task(e.ctx, "", info.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(done.Errors) != 1 || !strings.Contains(done.Errors[0].Message, "crashed") || done.Errors[0].Kind != procexec.KindWorkerCrashed {
		t.Fatalf("errors = %+v, want one worker crash of kind %s", done.Errors, procexec.KindWorkerCrashed)
	}
}

func TestTimeout(t *testing.T) {
	e := start(t)
	t0 := time.Now()
	_, err := e.run("sleep", "", queue.MaxRetries(0), queue.Timeout(200*time.Millisecond))
	last, _ := failed(t, err).Last()
	if last.Kind != "timeout" {
		t.Fatalf("last error = %+v, want kind timeout", last)
	}
	if d := time.Since(t0); d > 10*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	// The pool is usable afterwards.
	if res, err := e.run("echo", "1"); err != nil || string(res) != "1" {
		t.Fatalf("echo after timeout = %q, %v", res, err)
	}
}

// The worker sees the queue task through CallInfo (protocol 2 META).
func TestTaskInfoReachesWorker(t *testing.T) {
	e := start(t)
	deadline := time.Now().Add(time.Hour).Round(0)
	task, err := queue.NewCallTask("info", []any{1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.client.Enqueue(e.ctx, task, queue.MaxRetries(3), queue.Deadline(deadline))
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.client.Result(e.ctx, info.ID)
	if err != nil {
		t.Fatal(err)
	}
	var got worker.Info
	if err := json.Unmarshal(res, &got); err != nil {
		t.Fatalf("%s: %v", res, err)
	}
	if !got.Meta || got.TaskID != info.ID || got.Kind != "info" || got.Queue != info.Queue || got.Queue == "" || got.Attempt != 1 ||
		got.MaxRetries != 3 || got.Encoding != queue.EncodingArgs || got.Deadline.IsZero() || got.Deadline.After(deadline) {
		t.Fatalf("worker saw %+v (task %s, deadline %v)", got, info.ID, deadline)
	}
}

func TestRetryAfterFromWorker(t *testing.T) {
	e := start(t)
	marker := t.TempDir() + "/once"
	t0 := time.Now()
	res, err := e.run("retry_once", marker, queue.MaxRetries(1))
	if err != nil || string(res) != "done" {
		t.Fatalf("retry_once = %q, %v", res, err)
	}
	// The worker's RetryDelay is 10ms; the task asked for 400ms.
	if d := time.Since(t0); d < 400*time.Millisecond {
		t.Fatalf("retried after %v, before the 400ms the task asked for", d)
	}
}

func TestSkipRetryFieldFromWorker(t *testing.T) {
	e := start(t)
	_, err := e.run("skip_field", "", queue.MaxRetries(5))
	tf := failed(t, err)
	if tf.Attempts != 1 {
		t.Fatalf("attempts = %d, want 1", tf.Attempts)
	}
	if last, _ := tf.Last(); last.Kind != "SkipRetry" {
		t.Fatalf("last error = %+v, want kind SkipRetry (the error's type)", last)
	}
}

// The pool's own TaskTimeout (not the queue's) is recorded as kind timeout.
func TestPoolTimeoutKind(t *testing.T) {
	e := start(t, func(c *procpool.Config) { c.TaskTimeout = 200 * time.Millisecond })
	_, err := e.run("sleep", "", queue.MaxRetries(0))
	if last, _ := failed(t, err).Last(); last.Kind != procexec.KindTimeout {
		t.Fatalf("last error = %+v, want kind %s", last, procexec.KindTimeout)
	}
}

// Serve with fewer processes than the worker's concurrency: one process
// takes the 4 tasks at once.
func TestServeProcessesTakeSeveralTasks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := memory.New(memory.Config{})
	defer b.Close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Setenv(workerEnv, "1") // Serve's worker processes inherit it
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- procexec.Serve(sctx, b, procexec.ServeConfig{
			Command: []string{os.Args[0]}, Processes: 1, Logger: logger,
			Worker: queue.WorkerConfig{Concurrency: 4, ForwardInterval: 20 * time.Millisecond},
		})
	}()
	c, err := queue.NewClient(b, queue.ClientConfig{Options: []queue.Option{queue.Retention(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for range 4 {
		info, err := c.Enqueue(ctx, queue.NewTask("together", nil), queue.Timeout(20*time.Second), queue.MaxRetries(0))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, info.ID)
	}
	var pid string
	for _, id := range ids {
		res, err := c.Result(ctx, id)
		if err != nil {
			t.Fatalf("task %s: %v", id, err)
		}
		if pid != "" && string(res) != pid {
			t.Fatalf("tasks ran in processes %s and %s, want one", pid, res)
		}
		pid = string(res)
	}
	stop()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}

// Serve's worker publishes, as its kinds, the task names its worker
// processes announce in their ready frames.
func TestServePublishesReadyFrameKinds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := memory.New(memory.Config{})
	defer b.Close()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Setenv(workerEnv, "1")
	sctx, stop := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- procexec.Serve(sctx, b, procexec.ServeConfig{
			Command: []string{os.Args[0]}, Processes: 2, Logger: logger,
			Worker: queue.WorkerConfig{Concurrency: 2, HeartbeatInterval: 20 * time.Millisecond},
		})
	}()
	insp := queue.NewInspector(b)
	var ws []queue.WorkerInfo
	for ctx.Err() == nil {
		var err error
		if ws, err = insp.Workers(ctx); err != nil {
			t.Fatal(err)
		}
		if len(ws) == 1 && len(ws[0].Kinds) > 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(ws) != 1 {
		t.Fatalf("Workers = %+v", ws)
	}
	for _, k := range []string{"echo", "fail", "together", "skip_field"} {
		if !slices.Contains(ws[0].Kinds, k) {
			t.Fatalf("Kinds = %v, want %q among them", ws[0].Kinds, k)
		}
	}
	if !slices.IsSorted(ws[0].Kinds) {
		t.Fatalf("Kinds = %v, not sorted", ws[0].Kinds)
	}
	stop()
	if err := <-served; err != nil {
		t.Fatal(err)
	}
}
