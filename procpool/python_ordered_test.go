package procpool

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/conqhq/conq/future"
)

// The Python SDK's plain functions run one at a time on the main thread and
// announce "ordered": the pool queues short calls in their pipe behind the
// running one (Config.Pipeline).

func orderedPool(t *testing.T, cfg Config) *Pool {
	t.Helper()
	base := pyConfig(t, python3(t), "pyworker.py")
	cfg.Command, cfg.Env = base.Command, base.Env
	cfg.Workers = 1
	p, _ := newPool(t, cfg)
	if got := p.Slots(); got != DefaultPipeline || !p.Ordered() {
		t.Fatalf("Slots() = %d, Ordered() = %v: want %d (DefaultPipeline), true", got, p.Ordered(), DefaultPipeline)
	}
	return p
}

// warm gives the worker an average call time (no call is queued behind
// another before one is known).
func warm(t *testing.T, p *Pool) {
	t.Helper()
	for i := range 5 {
		if v, err := callT(t, p, "echo", strconv.Itoa(i)); err != nil || string(v) != strconv.Itoa(i) {
			t.Fatalf("echo = %q, %v", v, err)
		}
	}
}

func result(t *testing.T, f *future.Future[[]byte]) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return f.Result(ctx)
}

// A worker that dies fails only the call it was running: the calls queued
// behind it never started, and the replacement runs them.
func TestPythonOrderedCrashSendsQueuedCallsAgain(t *testing.T) {
	p := orderedPool(t, Config{})
	ctx := context.Background()
	for round := 0; round < 20 && p.resent.Load() == 0; round++ {
		warm(t, p)
		crash, _ := p.Submit(ctx, "segv", nil)
		var fs []*future.Future[[]byte]
		for i := range 3 {
			f, _ := p.Submit(ctx, "echo", []byte("after "+strconv.Itoa(i)))
			fs = append(fs, f)
		}
		var ce *WorkerCrashedError
		if _, err := result(t, crash); !errors.As(err, &ce) {
			t.Fatalf("round %d: segv: %v, want *WorkerCrashedError", round, err)
		}
		for i, f := range fs {
			if v, err := result(t, f); err != nil || string(v) != "after "+strconv.Itoa(i) {
				t.Fatalf("round %d: call %d queued behind the crash = %q, %v; want it run by the replacement", round, i, v, err)
			}
		}
	}
	if p.resent.Load() == 0 {
		t.Fatal("in 20 rounds no call was queued behind the crashing one: the resend path was not exercised")
	}
}

// TaskTimeout counts from a queued call's start, not from when it was
// written to the pipe.
func TestPythonOrderedTimeoutCountsFromStart(t *testing.T) {
	p := orderedPool(t, Config{TaskTimeout: 2 * time.Second})
	warm(t, p)
	ctx := context.Background()
	var fs []*future.Future[[]byte]
	for range 3 {
		f, _ := p.Submit(ctx, "nap", []byte("0.8"))
		fs = append(fs, f)
	}
	for i, f := range fs {
		if v, err := result(t, f); err != nil || string(v) != "slept" {
			t.Fatalf("nap %d = %q, %v; want slept (each runs 0.8 s of its 2 s timeout)", i, v, err)
		}
	}
}

// Cancelling a call queued behind a running one fails it without killing
// the worker, though the worker can only answer it once the running call
// ends, after CancelGrace.
func TestPythonOrderedCancelQueuedCall(t *testing.T) {
	p := orderedPool(t, Config{CancelGrace: 300 * time.Millisecond})
	warm(t, p)
	before, err := callT(t, p, "pid", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nap, _ := p.Submit(ctx, "nap", []byte("1"))
	queued, _ := p.Submit(ctx, "echo", []byte("never"))
	time.Sleep(100 * time.Millisecond)
	queued.Cancel()
	if v, err := result(t, nap); err != nil || string(v) != "slept" {
		t.Fatalf("running nap = %q, %v; want slept (the worker must not be killed for the queued call's cancel)", v, err)
	}
	if v, err := result(t, queued); !errors.Is(err, future.ErrCancelled) {
		t.Fatalf("cancelled queued call = %q, %v; want future.ErrCancelled", v, err)
	}
	if after, err := callT(t, p, "pid", ""); err != nil || string(after) != string(before) {
		t.Fatalf("pid after = %q, %v; want the same worker %q", after, err, before)
	}
}

// A worker busy with a long call takes no call from the queue: the next
// call goes to the free worker, not behind the long one.
func TestPythonOrderedLongCallLeavesQueueToOthers(t *testing.T) {
	base := pyConfig(t, python3(t), "pyworker.py")
	p, _ := newPool(t, Config{Command: base.Command, Env: base.Env, Workers: 2})
	for i := range 10 {
		if _, err := callT(t, p, "echo", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	long, _ := p.Submit(ctx, "nap", []byte("1.5"))
	time.Sleep(100 * time.Millisecond) // the nap has run well past PipelineMaxCall
	for i := range 5 {
		if v, err := callT(t, p, "echo", "quick"); err != nil || string(v) != "quick" {
			t.Fatalf("echo = %q, %v", v, err)
		}
		if st := long.State(); st != future.Running {
			t.Fatalf("call %d answered with the nap %v: it waited behind the nap though the other worker was free", i, st)
		}
	}
	if v, err := result(t, long); err != nil || string(v) != "slept" {
		t.Fatalf("nap = %q, %v", v, err)
	}
}
