package procpool

import (
	"context"
	"errors"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
)

// pythonConfig runs testdata/pyworker.py with the SDK from sdk/python.
func pythonConfig(t testing.TB) Config {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Need(t, "python3 not found", "install it with apt-get install python3")
	}
	sdk, _ := filepath.Abs("../sdk/python")
	script, _ := filepath.Abs("testdata/pyworker.py")
	return Config{Command: []string{py, script}, Env: []string{"PYTHONPATH=" + sdk}}
}

func TestPythonWorker(t *testing.T) {
	p, sink := newPool(t, pythonConfig(t))
	if got := mustCall(t, p, "echo", "hi"); got != "hi" {
		t.Fatalf("echo = %q", got)
	}
	if n, err := CallJSON[int, int](context.Background(), p, "double", 21); err != nil || n != 42 {
		t.Fatalf("double = %d, %v", n, err)
	}
	big := bytesOf(10<<20, 'q')
	if got, err := p.Call(context.Background(), "size", big); err != nil || string(got) != "10485760" {
		t.Fatalf("size = %q, %v", got, err)
	}
	_, err := callT(t, p, "fail", "x")
	var te *TaskError
	if !errors.As(err, &te) || te.Type != "ValueError" || te.Message != "bad value: x" || !strings.Contains(te.Traceback, "in fail") {
		t.Fatalf("err = %#v", err)
	}
	if got := mustCall(t, p, "noisy", ""); got != "ok" {
		t.Fatalf("noisy = %q", got)
	}
	eventually(t, "python output in the log", func() bool {
		return sink.contains("worker stdout", "line=py stdout 19") && sink.contains("worker stderr", "line=py stderr 19")
	})
}

func TestPythonSegfault(t *testing.T) {
	p, _ := newPool(t, pythonConfig(t))
	other, _ := p.Submit(context.Background(), "echo", []byte("unaffected"))
	_, err := callT(t, p, "segv", "")
	var ce *WorkerCrashedError
	if !errors.As(err, &ce) || ce.Signal != syscall.SIGSEGV {
		t.Fatalf("err = %v, want a crash by SIGSEGV", err)
	}
	if !slices.Contains(ce.Stderr, "about to segfault") {
		t.Errorf("stderr tail = %q", ce.Stderr)
	}
	if v, err := other.Result(context.Background()); err != nil || string(v) != "unaffected" {
		t.Fatalf("other: %q %v", v, err)
	}
	mustCall(t, p, "echo", "replaced")
}

func TestPythonCancel(t *testing.T) {
	cfg := pythonConfig(t)
	cfg.Workers = 1
	cfg.TaskTimeout = 300 * time.Millisecond
	cfg.CancelGrace = 500 * time.Millisecond
	p, _ := newPool(t, cfg)
	pid := mustCall(t, p, "pid", "")
	// Pure Python code is interrupted: the worker is kept.
	if _, err := callT(t, p, "spin", ""); !errors.Is(err, ErrTaskTimeout) {
		t.Fatalf("spin: %v", err)
	}
	if got := mustCall(t, p, "pid", ""); got != pid {
		t.Fatalf("interrupted worker replaced: %s -> %s", pid, got)
	}
	// So is a blocking call.
	if _, err := callT(t, p, "sleepy", ""); !errors.Is(err, ErrTaskTimeout) {
		t.Fatalf("sleepy: %v", err)
	}
	if got := mustCall(t, p, "pid", ""); got != pid {
		t.Fatalf("interrupted worker replaced: %s -> %s", pid, got)
	}
	// A long C call is not: the worker is killed after the grace period.
	start := time.Now()
	if _, err := callT(t, p, "stuck", ""); !errors.Is(err, ErrTaskTimeout) {
		t.Fatalf("stuck: %v", err)
	}
	if d := time.Since(start); d < 700*time.Millisecond {
		t.Fatalf("stuck ended after %v, before the grace period", d)
	}
	if got := mustCall(t, p, "pid", ""); got == pid {
		t.Fatal("stuck worker kept")
	}
}

// pythonSyncWorker starts one sync Python worker and returns its process;
// a protocol 2 pool gets the feature "sigcancel" from it.
func pythonSyncWorker(t *testing.T, cfg Config) (*Pool, *process) {
	t.Helper()
	cfg.Workers = 1
	p, _ := newPool(t, cfg)
	mustCall(t, p, "echo", "up")
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.procs {
		if !pr.sigc {
			t.Fatalf("the sync Python worker did not announce sigcancel (protocol %d)", pr.proto)
		}
		return p, pr
	}
	t.Fatal("no worker")
	return nil, nil
}

// A cancel of a running sync call is a cancel frame and a SIGINT: the
// SIGINT interrupts time.sleep at once, the worker answers Cancelled and
// stays.
func TestPythonSigCancelInterruptsSleep(t *testing.T) {
	cfg := pythonConfig(t)
	cfg.CancelGrace = 10 * time.Second // a kill would take this long
	p, _ := pythonSyncWorker(t, cfg)
	pid := mustCall(t, p, "pid", "")
	ctx, cancel := context.WithCancel(context.Background())
	f, err := p.Submit(ctx, "sleepy", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // in time.sleep
	start := time.Now()
	cancel()
	if _, err := f.Result(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("sleepy: %v, want context.Canceled", err)
	}
	// The next call waits for the cancelled one's answer: the worker
	// answered, it was not killed after the grace period.
	if got := mustCall(t, p, "pid", ""); got != pid {
		t.Fatalf("cancelled worker replaced: %s -> %s", pid, got)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("the cancelled call took %v to answer", d)
	}
}

// A SIGINT that does not follow a cancel frame (idle, or in the middle of
// a call) neither cancels the call nor kills the worker.
func TestPythonSigCancelStraySIGINT(t *testing.T) {
	p, pr := pythonSyncWorker(t, pythonConfig(t))
	pid := mustCall(t, p, "pid", "")
	if err := syscall.Kill(pr.pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	f, err := p.Submit(context.Background(), "nap", []byte("0.3"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // in time.sleep
	for range 3 {
		_ = syscall.Kill(pr.pid, syscall.SIGINT)
		time.Sleep(20 * time.Millisecond)
	}
	if got, err := f.Result(context.Background()); err != nil || string(got) != "slept" {
		t.Fatalf("nap after stray SIGINTs = %q, %v", got, err)
	}
	if got := mustCall(t, p, "pid", ""); got != pid {
		t.Fatalf("worker replaced after a stray SIGINT: %s -> %s", pid, got)
	}
}

// A cancel that races with the end of its call (its SIGINT reaching the
// worker while the next call runs) never cancels the next call.
func TestPythonSigCancelRaceSparesNextCall(t *testing.T) {
	p, _ := pythonSyncWorker(t, pythonConfig(t))
	pid := mustCall(t, p, "pid", "")
	for i := range 150 {
		ctx, cancel := context.WithCancel(context.Background())
		f, err := p.Submit(ctx, "nap", []byte("0.002"))
		if err != nil {
			t.Fatal(err)
		}
		time.AfterFunc(time.Duration(i%40)*100*time.Microsecond, cancel)
		_, _ = f.Result(context.Background())
		if got, err := callT(t, p, "nap", "0.003"); err != nil || got != "slept" {
			t.Fatalf("round %d: the call after a cancelled one = %q, %v", i, got, err)
		}
		cancel()
	}
	if got := mustCall(t, p, "pid", ""); got != pid {
		t.Fatalf("worker replaced: %s -> %s", pid, got)
	}
}

// End of the request stream while a sync call runs (no reader thread in
// the worker) cancels the call and the worker exits with status 0.
func TestPythonSigCancelEOFEndsWorker(t *testing.T) {
	p, pr := pythonSyncWorker(t, pythonConfig(t))
	f, err := p.Submit(context.Background(), "sleepy", nil)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	_ = pr.reqW.Close()
	select {
	case <-pr.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("the worker did not exit at end of its request stream")
	}
	if code, sig := pr.exitStatus(); code != 0 || sig != 0 {
		t.Fatalf("exit: code %d, signal %v; want 0", code, sig)
	}
	if _, err := f.Result(context.Background()); err == nil {
		t.Fatal("the call of a worker whose stream ended succeeded")
	}
}
