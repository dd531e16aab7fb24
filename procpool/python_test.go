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
