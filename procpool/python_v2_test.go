package procpool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/internal/testenv"
)

// pyConfig runs testdata/<script> with the SDK from sdk/python under py.
func pyConfig(t testing.TB, py, script string, env ...string) Config {
	t.Helper()
	sdk, _ := filepath.Abs("../sdk/python")
	s, _ := filepath.Abs(filepath.Join("testdata", script))
	return Config{Command: []string{py, s}, Env: append([]string{"PYTHONPATH=" + sdk}, env...)}
}

func python3(t testing.TB) string {
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Need(t, "python3 not found", "install it with apt-get install python3")
	}
	return py
}

// pythons313 is every Python >= 3.13 found, newest first, one per minor
// version: the sub-interpreter API differs between 3.13 (_interpreters)
// and 3.14 (concurrent.interpreters), and both are served.
func pythons313(t testing.TB) []string {
	home, _ := os.UserHomeDir()
	var cands []string
	for _, v := range []string{"3.16", "3.15", "3.14", "3.13"} {
		m, _ := filepath.Glob(filepath.Join(home, ".pyenv/versions", v+".*", "bin/python3"))
		if len(m) > 0 {
			cands = append(cands, m[len(m)-1])
		} else if p, err := exec.LookPath("python" + v); err == nil && exec.Command(p, "-c", "").Run() == nil {
			cands = append(cands, p) // not a pyenv shim without that version
		}
	}
	if len(cands) == 0 {
		testenv.Need(t, "no Python >= 3.13 found (PATH or ~/.pyenv/versions)", "install one, e.g. pyenv install 3.13")
	}
	return cands
}

// 200 async def calls on one process all run at once.
func TestPythonAsyncOverlap(t *testing.T) {
	const n = 200
	cfg := pyConfig(t, python3(t), "pyasync.py", "PYASYNC_SLOTS=200")
	cfg.Workers = 1
	p, _ := newPool(t, cfg)
	if got := p.Slots(); got < n {
		t.Fatalf("Slots() = %d, want >= %d", got, n)
	}
	_ = p
	fs := make([]*future.Future[[]byte], n)
	for i := range fs {
		fs[i], _ = p.Submit(context.Background(), "overlap", []byte(strconv.Itoa(n)))
	}
	pids := map[string]bool{}
	var lastStart, firstEnd int64 = 0, 1<<63 - 1
	for i, f := range fs {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		v, err := f.Result(ctx)
		cancel()
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		var pid string
		var start, end int64
		if _, err := fmt.Sscan(string(v), &pid, &start, &end); err != nil {
			t.Fatalf("call %d: %q", i, v)
		}
		pids[pid] = true
		lastStart, firstEnd = max(lastStart, start), min(firstEnd, end)
	}
	if lastStart >= firstEnd || len(pids) != 1 {
		t.Fatalf("%d processes; last start %d, first end %d: the calls did not overlap", len(pids), lastStart, firstEnd)
	}
}

// Cancelling one async call stops it alone; its process is kept.
func TestPythonAsyncCancelOne(t *testing.T) {
	cfg := pyConfig(t, python3(t), "pyasync.py")
	cfg.Workers = 1
	p, _ := newPool(t, cfg)
	pid := mustCall(t, p, "pid", "")
	var others []*future.Future[[]byte]
	for range 5 {
		f, _ := p.Submit(context.Background(), "sleep", []byte("1"))
		others = append(others, f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := p.Call(ctx, "sleep", []byte("3600")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled call: %v", err)
	}
	for i, f := range others {
		if v, err := f.Result(context.Background()); err != nil || string(v) != "slept" {
			t.Fatalf("other %d: %q, %v", i, v, err)
		}
	}
	if got := mustCall(t, p, "pid", ""); got != pid {
		t.Fatalf("worker replaced: %s, was %s", got, pid)
	}
}

// SIGKILL fails exactly the calls the killed process held.
func TestPythonAsyncKillFailsOnlyItsCalls(t *testing.T) {
	cfg := pyConfig(t, python3(t), "pyasync.py", "PYASYNC_SLOTS=4")
	cfg.Workers = 2
	p, _ := newPool(t, cfg)
	fs, owner := holdCalls(t, p, 8)
	victim := owner[0]
	syscall.Kill(victim, syscall.SIGKILL)
	for i, f := range fs {
		if owner[i] != victim {
			f.Cancel()
			continue
		}
		_, err := f.Result(context.Background())
		var ce *WorkerCrashedError
		if !errors.As(err, &ce) || ce.PID != victim || ce.Signal != syscall.SIGKILL {
			t.Errorf("call %d on the killed process: %v", i, err)
		}
	}
	for i, f := range fs {
		if owner[i] != victim {
			if _, err := f.Result(context.Background()); !errors.Is(err, future.ErrCancelled) {
				t.Errorf("call %d on the other process: %v, want cancelled (not crashed)", i, err)
			}
		}
	}
}

// A protocol 1 pool gets exactly protocol 1 from the Python SDK.
func TestPythonProtocol1(t *testing.T) {
	cfg := pyConfig(t, python3(t), "pyasync.py")
	cfg.Workers = 1
	p, _ := newPool(t, cfg)
	p.mu.Lock()
	for pr := range p.procs {
		if pr.proto != 2 || pr.slots != 100 || !pr.meta {
			t.Errorf("async worker: protocol %d, %d slots, meta %v", pr.proto, pr.slots, pr.meta)
		}
	}
	p.mu.Unlock()
	// The SDK reads CONQ_PROTOCOL; a pool of protocol 1 sets it to 1
	// (env(1) overrides what this pool sets).
	cfg2 := pythonConfig(t)
	cfg2.Workers = 1
	cfg2.Command = append([]string{"env", "CONQ_PROTOCOL=1"}, cfg2.Command...)
	p2, _ := newPool(t, cfg2)
	p2.mu.Lock()
	for pr := range p2.procs {
		if pr.proto != 1 || pr.slots != 1 || pr.shm {
			t.Errorf("v1 worker: protocol %d, %d slots, shm %v", pr.proto, pr.slots, pr.shm)
		}
	}
	p2.mu.Unlock()
	if got := mustCall(t, p2, "echo", "v1"); got != "v1" {
		t.Fatalf("echo = %q", got)
	}
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// A 64 MiB argument reaches Python as a read-only memoryview of the same
// bytes; results over the threshold come back intact.
func TestPythonSharedMemory(t *testing.T) {
	cfg := pyConfig(t, python3(t), "pyshm.py")
	cfg.Workers, cfg.MaxPayload = 1, 128<<20
	p, _ := newPool(t, cfg)
	big := make([]byte, 64<<20)
	pattern(big)
	got := mustCall(t, p, "kind", string(big))
	if want := fmt.Sprintf("memoryview %d True %s", len(big), sum(big)); got != want {
		t.Fatalf("kind = %q, want %q", got, want)
	}
	for _, task := range []string{"echo", "copy"} {
		out, err := p.Call(context.Background(), task, big)
		if err != nil || !bytes.Equal(out, big) {
			t.Fatalf("%s: %d bytes, %v", task, len(out), err)
		}
		buf, _ := p.NewBuffer(len(big))
		copy(buf.Bytes(), big)
		r, err := p.CallBuffer(context.Background(), task, buf)
		if err != nil || !bytes.Equal(r.Bytes(), big) || !r.Shared() {
			t.Fatalf("%s buffer: %v", task, err)
		}
		r.Release()
	}
	out, err := p.Call(context.Background(), "gen", []byte(strconv.Itoa(8<<20)))
	if err != nil || len(out) != 8<<20 || out[257] != 1 {
		t.Fatalf("gen: %d bytes, %v", len(out), err)
	}
	// In the worker: the pool's segments are mapped (kept for reuse), its
	// own result segments open; nothing grows with more calls.
	c1 := mustCall(t, p, "counts", "")
	for range 5 {
		p.Call(context.Background(), "copy", big)
		p.Call(context.Background(), "gen", []byte(strconv.Itoa(8<<20)))
	}
	if c2 := mustCall(t, p, "counts", ""); c2 != c1 {
		t.Fatalf("worker's shared memory grew: %s, then %s", c1, c2)
	}
}

// No segment leaks in the pool's process when a Python worker is killed
// mid-call or the pool is closed mid-call.
func TestPythonSharedMemoryLeaks(t *testing.T) {
	if _, err := os.Stat("/proc/self/maps"); err != nil {
		t.Skip("no /proc")
	}
	fds0, maps0 := shmUse(t)
	big := bytesOf(8<<20, 'L')
	t.Run("worker killed mid-call", func(t *testing.T) {
		cfg := pyConfig(t, python3(t), "pyshm.py")
		cfg.Workers = 1
		p, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(mustCall(t, p, "pid", ""))
		if _, err := p.Call(context.Background(), "gen", []byte(strconv.Itoa(4<<20))); err != nil {
			t.Fatal(err)
		}
		f1, _ := p.Submit(context.Background(), "sleepy", big)
		eventually(t, "the call to run", func() bool { return f1.State() == future.Running })
		time.Sleep(100 * time.Millisecond)
		mustUseShm(t, maps0)
		syscall.Kill(pid, syscall.SIGKILL)
		if _, err := f1.Result(context.Background()); !errors.Is(err, ErrWorkerCrashed) {
			t.Fatalf("err = %v", err)
		}
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		waitShmBack(t, fds0, maps0)
	})
	t.Run("pool closed mid-call", func(t *testing.T) {
		cfg := pyConfig(t, python3(t), "pyshm.py")
		cfg.Workers = 2
		p, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		var fs []*future.Future[[]byte]
		for range 4 {
			f, _ := p.Submit(context.Background(), "sleepy", big)
			fs = append(fs, f)
		}
		eventually(t, "the calls to run", func() bool { return fs[3].State() == future.Running })
		mustUseShm(t, maps0)
		p.Close()
		for _, f := range fs {
			if _, err := f.Result(context.Background()); !errors.Is(err, ErrPoolClosed) {
				t.Fatalf("err = %v", err)
			}
		}
		waitShmBack(t, fds0, maps0)
	})
}

// The primes on 2 sub-interpreters of one process: right, and at once.
func TestPythonInterpreters(t *testing.T) {
	for _, py := range pythons313(t) {
		t.Run(filepath.Base(filepath.Dir(filepath.Dir(py)))+"-"+filepath.Base(py), func(t *testing.T) { testPythonInterpreters(t, py) })
	}
}

func testPythonInterpreters(t *testing.T, py string) {
	cfg := pyConfig(t, py, "pyinterp.py")
	cfg.Workers = 1
	p, _ := newPool(t, cfg)
	if p.Slots() != 2 {
		t.Fatalf("Slots() = %d, want 2", p.Slots())
	}
	nums := []int{2, 142702110479723, 299593572317531, 3333333333333301, 3333333333333333, 3333335652092209, 4444444444444423, 4444444444444444, 4444444488888889, 5555553133149889}
	fs := make([]*future.Future[[]byte], len(nums))
	for i, n := range nums {
		fs[i], _ = p.Submit(context.Background(), "prime", []byte(strconv.Itoa(n)))
	}
	type span struct{ start, end int64 }
	var spans []span
	pids := map[float64]bool{}
	for i, f := range fs {
		v, err := f.Result(context.Background())
		if err != nil {
			t.Fatalf("prime(%d): %v", nums[i], err)
		}
		var r []any
		if err := json.Unmarshal(v, &r); err != nil {
			t.Fatal(err)
		}
		want := map[int]bool{2: true, 142702110479723: true, 299593572317531: true, 3333333333333301: true, 4444444444444423: true}[nums[i]]
		if r[0].(bool) != want {
			t.Errorf("prime(%d) = %v", nums[i], r[0])
		}
		spans = append(spans, span{int64(r[1].(float64)), int64(r[2].(float64))})
		pids[r[3].(float64)] = true
	}
	overlap := false
	for i := range spans {
		for j := range i {
			if spans[i].start < spans[j].end && spans[j].start < spans[i].end {
				overlap = true
			}
		}
	}
	if !overlap || len(pids) != 1 {
		t.Fatalf("%d processes, overlap %v: want one process running calls at once", len(pids), overlap)
	}
}

func TestPythonInterpretersStartErrors(t *testing.T) {
	home, _ := os.UserHomeDir()
	old, _ := filepath.Glob(filepath.Join(home, ".pyenv/versions/3.12.*/bin/python3"))
	if len(old) == 0 {
		testenv.Need(t, "no Python 3.12 in ~/.pyenv/versions", "pyenv install 3.12")
	}
	cases := []struct{ py, env, want string }{{old[len(old)-1], "", "needs Python 3.13 or newer"}}
	for _, py := range pythons313(t) {
		cases = append(cases, struct{ py, env, want string }{py, "PYINTERP_BAD=1", "_testsinglephase"})
	}
	for _, tc := range cases {
		cfg := pyConfig(t, tc.py, "pyinterp.py", tc.env)
		cfg.Workers, cfg.MaxStartFailures = 1, 1
		cfg.Logger = nil
		_, err := New(context.Background(), cfg)
		var se *StartError
		if !errors.As(err, &se) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s: err = %v, want a start error with %q", tc.py, tc.env, err, tc.want)
		}
	}
}

// A blocking call in an async def task makes the SDK warn on stderr.
func TestPythonAsyncBlockedLoopWarns(t *testing.T) {
	cfg := pyConfig(t, python3(t), "pyasync.py")
	cfg.Workers = 1
	p, sink := newPool(t, cfg)
	if got := mustCall(t, p, "block", "1.6"); got != "blocked" {
		t.Fatalf("block = %q", got)
	}
	eventually(t, "the loop-blocked warning in the log", func() bool {
		return sink.contains("worker stderr", "event loop has been blocked")
	})
}
