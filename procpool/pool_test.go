package procpool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/conqhq/conq/future"
)

func TestCall(t *testing.T) {
	p, _ := newPool(t, Config{})
	if got := mustCall(t, p, "echo", "hello"); got != "hello" {
		t.Fatalf("echo = %q", got)
	}
	if got := mustCall(t, p, "noop", "x"); got != "" {
		t.Fatalf("noop = %q", got)
	}
	n, err := CallJSON[int, int](context.Background(), p, "double", 21)
	if err != nil || n != 42 {
		t.Fatalf("double = %d, %v", n, err)
	}
	big := bytesOf(3<<20, 'z')
	out, err := p.Call(context.Background(), "echo", big)
	if err != nil || string(out) != string(big) {
		t.Fatalf("big echo: %d bytes, %v", len(out), err)
	}
}

func TestTaskErrors(t *testing.T) {
	p, _ := newPool(t, Config{})
	cases := []struct{ task, typ, msg, trace string }{
		{"fail", "ValueError", "bad value", ""},
		{"plainfail", "errors.errorString", "plain: bad value", ""},
		{"panic", "panic", "boom", "goroutine"},
		{"nosuchtask", "UnknownTask", `no handler for task "nosuchtask"`, ""},
	}
	for _, c := range cases {
		_, err := callT(t, p, c.task, "bad value")
		var te *TaskError
		if !errors.As(err, &te) {
			t.Fatalf("%s: err = %v, want *TaskError", c.task, err)
		}
		if te.Type != c.typ || te.Message != c.msg || !strings.Contains(te.Traceback, c.trace) || te.Task != c.task {
			t.Errorf("%s: got %+v", c.task, te)
		}
	}
	// The worker survived all of that.
	mustCall(t, p, "echo", "still here")
}

func TestWorkerCrash(t *testing.T) {
	cases := []struct {
		task, args string
		code       int
		sig        syscall.Signal
		stderr     string
	}{
		{"exit", "7", 7, 0, "testworker: exiting with 7"},
		{"sigkill", "", -1, syscall.SIGKILL, "about to be killed"},
		{"segv", "", -1, syscall.SIGSEGV, "segfaulting"},
	}
	for _, c := range cases {
		t.Run(c.task, func(t *testing.T) {
			p, sink := newPool(t, Config{Workers: 2})
			before := workerPIDs(t, p)
			// Another task runs alongside on the other worker.
			other, err := p.Submit(context.Background(), "sleep", []byte("300ms"))
			if err != nil {
				t.Fatal(err)
			}
			_, err = callT(t, p, c.task, c.args)
			var ce *WorkerCrashedError
			if !errors.As(err, &ce) || !errors.Is(err, ErrWorkerCrashed) {
				t.Fatalf("err = %v, want *WorkerCrashedError", err)
			}
			if ce.ExitCode != c.code || ce.Signal != c.sig || ce.Task != c.task {
				t.Errorf("crash = code %d signal %v task %q, want %d %v %q", ce.ExitCode, ce.Signal, ce.Task, c.code, c.sig, c.task)
			}
			if !slices.ContainsFunc(ce.Stderr, func(l string) bool { return strings.Contains(l, c.stderr) }) {
				t.Errorf("stderr tail %q lacks %q", ce.Stderr, c.stderr)
			}
			if !strings.Contains(err.Error(), c.stderr) {
				t.Errorf("message %q lacks the stderr tail", err)
			}
			if v, err := other.Result(context.Background()); err != nil || string(v) != "slept" {
				t.Errorf("the other task: %q, %v", v, err)
			}
			// A fresh worker replaced the dead one; both serve.
			after := workerPIDs(t, p)
			if slices.Equal(uniq(before), uniq(after)) {
				t.Errorf("worker pids unchanged: %v", uniq(after))
			}
			_ = sink
		})
	}
}

func uniq(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return slices.Compact(s)
}

// An OOM-like kill: SIGKILL from outside while the task runs.
func TestWorkerKilledFromOutside(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1})
	pid, _ := strconv.Atoi(mustCall(t, p, "pid", ""))
	f, err := p.Submit(context.Background(), "sleep_ignore", []byte("10s"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the task to start", func() bool { return f.State() == future.Running })
	time.Sleep(50 * time.Millisecond)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, err = f.Result(context.Background())
	var ce *WorkerCrashedError
	if !errors.As(err, &ce) || ce.Signal != syscall.SIGKILL || ce.PID != pid {
		t.Fatalf("err = %v, want a crash by SIGKILL of pid %d", err, pid)
	}
	if got := mustCall(t, p, "pid", ""); got == strconv.Itoa(pid) {
		t.Fatal("the killed worker still answers")
	}
}

func TestIdleWorkerDeathIsReplaced(t *testing.T) {
	p, sink := newPool(t, Config{Workers: 1})
	pid, _ := strconv.Atoi(mustCall(t, p, "pid", ""))
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, "the idle exit to be logged", func() bool { return sink.contains("idle worker exited", "signal 9") })
	if got := mustCall(t, p, "pid", ""); got == strconv.Itoa(pid) {
		t.Fatal("same pid after kill")
	}
}

func TestTaskTimeout(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, TaskTimeout: 200 * time.Millisecond, CancelGrace: 300 * time.Millisecond})
	pid := mustCall(t, p, "pid", "")

	// A handler that honours its ctx stops in time: the worker is kept.
	start := time.Now()
	_, err := callT(t, p, "sleep", "10s")
	if !errors.Is(err, ErrTaskTimeout) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want ErrTaskTimeout", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("timeout took %v", d)
	}
	if got := mustCall(t, p, "pid", ""); got != pid {
		t.Fatalf("cooperative worker was replaced: %s -> %s", pid, got)
	}

	// One that ignores it is killed after the grace period and replaced.
	start = time.Now()
	_, err = callT(t, p, "sleep_ignore", "10s")
	if !errors.Is(err, ErrTaskTimeout) {
		t.Fatalf("err = %v, want ErrTaskTimeout", err)
	}
	if d := time.Since(start); d < 450*time.Millisecond || d > 3*time.Second {
		t.Fatalf("timeout with grace took %v, want about 500ms", d)
	}
	if got := mustCall(t, p, "pid", ""); got == pid {
		t.Fatal("stuck worker was not replaced")
	}
}

func TestContextCancelsRunningTask(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, CancelGrace: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	f, err := p.Submit(ctx, "sleep_ignore", []byte("10s"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the task to start", func() bool { return f.State() == future.Running })
	cancel()
	if _, err := f.Result(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}

	// Future.Cancel on a running task asks it to stop.
	f, _ = p.Submit(context.Background(), "sleep", []byte("10s"))
	eventually(t, "the task to start", func() bool { return f.State() == future.Running })
	if f.Cancel() {
		t.Fatal("Cancel of a running task reported true")
	}
	if _, err := f.Result(context.Background()); !errors.Is(err, future.ErrCancelled) {
		t.Fatalf("err = %v, want future.ErrCancelled", err)
	}

	// A queued task is cancelled before it runs.
	blocker, _ := p.Submit(context.Background(), "sleep", []byte("300ms"))
	ctx, cancel = context.WithCancel(context.Background())
	queued, _ := p.Submit(ctx, "echo", []byte("never"))
	cancel()
	if _, err := queued.Result(context.Background()); !errors.Is(err, context.Canceled) || queued.State() != future.Cancelled {
		t.Fatalf("queued: %v, state %v", err, queued.State())
	}
	if _, err := blocker.Result(context.Background()); err != nil {
		t.Fatal(err)
	}
	mustCall(t, p, "echo", "ok")
}

func TestStartFailures(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"missing binary", Config{Command: []string{"/nonexistent/worker"}}, "exec failed"},
		{"exits", Config{Env: []string{"TESTWORKER_FAIL_IF_EXISTS=/"}}, "exited before its ready frame (exit status 3)"},
		{"silent", Config{Env: []string{"TESTWORKER_NO_HANDSHAKE=1"}, StartTimeout: 300 * time.Millisecond}, "no ready frame within 300ms"},
		{"garbage", Config{Env: []string{"TESTWORKER_BAD_HANDSHAKE=1"}}, "bad ready frame"},
		{"not a worker", Config{Command: []string{"true"}}, "before its ready frame"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.cfg.Command == nil {
				c.cfg.Command = []string{testWorker}
			}
			c.cfg.Workers = 2
			c.cfg.Logger = slog.New(slog.DiscardHandler)
			start := time.Now()
			p, err := New(context.Background(), c.cfg)
			if err == nil {
				p.Close()
				t.Fatal("New succeeded")
			}
			var se *StartError
			if !errors.As(err, &se) || !errors.Is(err, ErrWorkerStart) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want a *StartError containing %q", err, c.want)
			}
			if c.name == "exits" && !strings.Contains(err.Error(), "refusing to start") {
				t.Errorf("no stderr tail in %v", err)
			}
			if time.Since(start) > 5*time.Second {
				t.Errorf("New took %v", time.Since(start))
			}
		})
	}
}

func TestRestartFailuresSurface(t *testing.T) {
	flag := t.TempDir() + "/fail"
	p, sink := newPool(t, Config{
		Workers: 1, Env: []string{"TESTWORKER_FAIL_IF_EXISTS=" + flag},
		RestartBackoff: 50 * time.Millisecond, MaxRestartBackoff: 400 * time.Millisecond, MaxStartFailures: 3,
	})
	if err := os.WriteFile(flag, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// Crash the only worker; its replacements refuse to start.
	if _, err := callT(t, p, "exit", "1"); !errors.Is(err, ErrWorkerCrashed) {
		t.Fatalf("err = %v", err)
	}
	// Queued and new tasks fail with the start error instead of waiting.
	f, err := p.Submit(context.Background(), "echo", []byte("x"))
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err = f.Result(ctx)
		cancel()
	}
	if !errors.Is(err, ErrWorkerStart) || !strings.Contains(err.Error(), "refusing to start") {
		t.Fatalf("err = %v, want the start error", err)
	}
	eventually(t, "Submit to fail fast", func() bool {
		_, err := p.Submit(context.Background(), "echo", nil)
		return errors.Is(err, ErrWorkerStart)
	})
	// Backing off, not looping hot: few attempts in a second.
	time.Sleep(time.Second)
	sink.mu.Lock()
	attempts := 0
	for _, r := range sink.recs {
		if strings.Contains(r, "worker failed to start") {
			attempts++
		}
	}
	sink.mu.Unlock()
	if attempts > 12 {
		t.Fatalf("%d start attempts in about 1.5s: not backing off (a hot loop makes hundreds)", attempts)
	}
	// The pool heals once workers start again.
	os.Remove(flag)
	eventually(t, "the pool to heal", func() bool {
		_, err := callT(t, p, "echo", "back")
		return err == nil
	})
}

func TestOutputForwardedToLogger(t *testing.T) {
	p, sink := newPool(t, Config{Workers: 1})
	if got := mustCall(t, p, "noisy", "tag"); got != "ok" {
		t.Fatalf("noisy = %q", got)
	}
	mustCall(t, p, "echo", "after")
	eventually(t, "output lines", func() bool {
		return sink.contains("worker stdout", "line=stdout line 49 tag", "worker=1") &&
			sink.contains("worker stderr", "line=stderr line 49", "worker=1")
	})
}

func TestProtocolErrors(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, MaxPayload: 1 << 20})
	cases := map[string]string{
		"garbage":  "unknown kind 77",
		"oversize": "exceeds the limit",
		"wrongid":  "unexpected result frame",
	}
	for task, want := range cases {
		pid := mustCall(t, p, "pid", "")
		_, err := callT(t, p, task, "")
		var pe *ProtocolError
		if !errors.As(err, &pe) || !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: err = %v, want a protocol error with %q", task, err, want)
		}
		if strconv.Itoa(pe.PID) != pid {
			t.Errorf("%s: error names pid %d, worker was %s", task, pe.PID, pid)
		}
		if got := mustCall(t, p, "pid", ""); got == pid {
			t.Fatalf("%s: misbehaving worker kept", task)
		}
	}
}

func TestPayloadLimits(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, MaxPayload: 1000})
	if _, err := p.Submit(context.Background(), "echo", bytesOf(1001, 'x')); !errors.Is(err, ErrPayloadTooLarge) {
		t.Fatalf("err = %v", err)
	}
	mustCall(t, p, "echo", string(bytesOf(1000, 'x')))
	// The SDK refuses to send a result the pool would reject.
	_, err := callT(t, p, "bytes", "70000")
	var te *TaskError
	if !errors.As(err, &te) || te.Type != "PayloadTooLarge" {
		t.Fatalf("err = %v, want a PayloadTooLarge task error", err)
	}
}

func TestShutdownLetsRunningTasksFinish(t *testing.T) {
	p, err := New(context.Background(), Config{Command: []string{testWorker}, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	pids := workerPIDs(t, p)
	var fs []*future.Future[[]byte]
	for range 4 {
		f, err := p.Submit(context.Background(), "sleep", []byte("200ms"))
		if err != nil {
			t.Fatal(err)
		}
		fs = append(fs, f)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if v, err := f.Result(context.Background()); err != nil || string(v) != "slept" {
			t.Fatalf("task: %q, %v", v, err)
		}
	}
	if _, err := p.Submit(context.Background(), "echo", nil); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("Submit after Shutdown: %v", err)
	}
	for _, pid := range uniq(pids) {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			t.Errorf("worker %s still exists (zombie or alive)", pid)
		}
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestShutdownDeadlineKills(t *testing.T) {
	p, err := New(context.Background(), Config{Command: []string{testWorker}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	running, _ := p.Submit(context.Background(), "sleep_ignore", []byte("10s"))
	queued, _ := p.Submit(context.Background(), "echo", []byte("x"))
	eventually(t, "the task to start", func() bool { return running.State() == future.Running })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := p.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	for _, f := range []*future.Future[[]byte]{running, queued} {
		if _, err := f.Result(context.Background()); !errors.Is(err, ErrPoolClosed) {
			t.Fatalf("err = %v, want ErrPoolClosed", err)
		}
	}
}

func TestMaxTasksPerWorker(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, MaxTasksPerWorker: 3})
	var pids []string
	for range 7 {
		pids = append(pids, mustCall(t, p, "pid", ""))
	}
	if pids[0] != pids[2] || pids[2] == pids[3] || pids[3] != pids[5] || pids[5] == pids[6] {
		t.Fatalf("pids %v: want a new worker every 3 tasks", pids)
	}
}

func TestMap(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 3})
	args := func(yield func([]byte) bool) {
		for i := range 200 {
			if !yield([]byte(strconv.Itoa(i))) {
				return
			}
		}
	}
	i := 0
	for v, err := range p.Map(context.Background(), "echo", args) {
		if err != nil || string(v) != strconv.Itoa(i) {
			t.Fatalf("item %d: %q, %v", i, v, err)
		}
		i++
	}
	if i != 200 {
		t.Fatalf("%d results", i)
	}
	// Breaking early cancels the rest and leaks nothing.
	for range p.Map(context.Background(), "sleep", func(yield func([]byte) bool) {
		for yield([]byte("10ms")) {
		}
	}) {
		break
	}
	// MapJSON, with one failure in the middle.
	ins := slices.Values([]any{1, 2, "three", 4})
	var got []string
	for v, err := range MapJSON[any, int](context.Background(), p, "double", ins) {
		got = append(got, fmt.Sprint(v, err != nil))
	}
	if want := []string{"2 false", "4 false", "0 true", "8 false"}; !slices.Equal(got, want) {
		t.Fatalf("MapJSON = %v, want %v", got, want)
	}
}

func TestConcurrentSubmitters(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 2, QueueSize: 4})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				s := fmt.Sprintf("%d-%d", g, i)
				if got, err := callT(t, p, "echo", s); err != nil || got != s {
					t.Errorf("echo %s = %q, %v", s, got, err)
				}
			}
		})
	}
	wg.Wait()
}

func TestConfigValidation(t *testing.T) {
	_, err := New(context.Background(), Config{Workers: -1, MaxPayload: -5, TaskTimeout: -time.Second})
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"missing Command", "Workers = -1", "MaxPayload = -5", "TaskTimeout = -1s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v lacks %q", err, want)
		}
	}
}

func TestShutdownKillsLingeringWorker(t *testing.T) {
	sink := &logSink{}
	p, err := New(context.Background(), Config{
		Command: []string{testWorker}, Workers: 2, Env: []string{"TESTWORKER_IGNORE_EOF=1"},
		ShutdownGrace: 200 * time.Millisecond, Logger: slog.New(sink),
	})
	if err != nil {
		t.Fatal(err)
	}
	pids := workerPIDs(t, p)
	start := time.Now()
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("Shutdown took %v", d)
	}
	if !sink.contains("ignored the end of its request stream") {
		t.Error("no log of the kill")
	}
	for _, pid := range uniq(pids) {
		if _, err := os.Stat("/proc/" + pid); err == nil {
			t.Errorf("worker %s still exists", pid)
		}
	}
}
