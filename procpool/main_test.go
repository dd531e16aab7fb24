package procpool

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// testWorker is the Go test worker binary built by TestMain.
var testWorker string

const helperEnv = "PROCPOOL_TEST_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) != "" {
		helperMain()
		return
	}
	dir, err := os.MkdirTemp("", "procpool-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	testWorker = filepath.Join(dir, "testworker")
	build := exec.Command("go", "build", "-o", testWorker, "./internal/testworker")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the test worker:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(IgnoreSpawner); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// helperMain is a parent process for TestWorkersDieWithParent: it starts a
// pool, prints its worker's pid and waits to be killed.
func helperMain() {
	p, err := New(context.Background(), Config{Command: []string{os.Getenv("PROCPOOL_TEST_WORKER")}, Workers: 1})
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	pid, err := p.Call(context.Background(), "pid", nil)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Printf("%s\n", pid)
	f, _ := p.Submit(context.Background(), "sleep_ignore", []byte("1h"))
	_, _ = f.Result(context.Background())
}

// logSink collects log records for assertions.
type logSink struct {
	mu   sync.Mutex
	recs []string
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
	s.mu.Lock()
	s.recs = append(s.recs, b.String())
	s.mu.Unlock()
	return nil
}
func (s *logSink) WithAttrs(as []slog.Attr) slog.Handler { return &attrHandler{s, as} }
func (s *logSink) WithGroup(string) slog.Handler         { return s }

func (s *logSink) contains(sub ...string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
outer:
	for _, r := range s.recs {
		for _, x := range sub {
			if !strings.Contains(r, x) {
				continue outer
			}
		}
		return true
	}
	return false
}

type attrHandler struct {
	s  *logSink
	as []slog.Attr
}

func (h *attrHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *attrHandler) Handle(ctx context.Context, r slog.Record) error {
	r.AddAttrs(h.as...)
	return h.s.Handle(ctx, r)
}
func (h *attrHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &attrHandler{h.s, append(append([]slog.Attr(nil), h.as...), as...)}
}
func (h *attrHandler) WithGroup(string) slog.Handler { return h }

// newPool starts a pool of test workers and shuts it down with the test.
func newPool(t testing.TB, cfg Config) (*Pool, *logSink) {
	t.Helper()
	if cfg.Command == nil {
		cfg.Command = []string{testWorker}
	}
	if cfg.Workers == 0 {
		cfg.Workers = 2
	}
	sink := &logSink{}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(sink)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
	})
	return p, sink
}

func callT(t testing.TB, p *Pool, task, args string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := p.Call(ctx, task, []byte(args))
	return string(b), err
}

func mustCall(t testing.TB, p *Pool, task, args string) string {
	t.Helper()
	s, err := callT(t, p, task, args)
	if err != nil {
		t.Fatalf("%s(%q): %v", task, args, err)
	}
	return s
}

// pids asks every worker of a two-worker pool for its pid.
func workerPIDs(t *testing.T, p *Pool) []string {
	t.Helper()
	var fs []string
	for range 8 {
		fs = append(fs, mustCall(t, p, "pid", ""))
	}
	return fs
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func bytesOf(n int, b byte) []byte { return bytes.Repeat([]byte{b}, n) }
