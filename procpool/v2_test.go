package procpool

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conqhq/conq/future"
)

// 200 calls in flight on one worker process, all running at once: each
// handler waits until 200 run, and the intervals they report overlap.
func TestManySlotsOverlap(t *testing.T) {
	const n = 200
	p, _ := newPool(t, Config{Workers: 1, Slots: n})
	if got := p.Slots(); got != n {
		t.Fatalf("Slots() = %d, want %d", got, n)
	}
	fs := make([]*future.Future[[]byte], n)
	for i := range fs {
		var err error
		if fs[i], err = p.Submit(context.Background(), "overlap", []byte(strconv.Itoa(n))); err != nil {
			t.Fatal(err)
		}
	}
	var pids = map[string]bool{}
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
	if len(pids) != 1 {
		t.Fatalf("calls ran in %d processes, want 1", len(pids))
	}
	if lastStart >= firstEnd {
		t.Fatalf("the calls did not all overlap: last start %d, first end %d", lastStart, firstEnd)
	}
}

// Cancelling one call of many in flight on a process stops that call
// alone; a timeout too.
func TestManySlotsCancelOne(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, Slots: 8, TaskTimeout: 5 * time.Second})
	pid := mustCall(t, p, "pid", "")
	var others []*future.Future[[]byte]
	for range 6 {
		f, err := p.Submit(context.Background(), "sleep", []byte("1s"))
		if err != nil {
			t.Fatal(err)
		}
		others = append(others, f)
	}
	ctx, cancel := context.WithCancel(context.Background())
	victim, err := p.Submit(ctx, "sleep", []byte("1h"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the victim to run", func() bool { return victim.State() == future.Running })
	cancel()
	if _, err := victim.Result(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("victim: %v, want context.Canceled", err)
	}
	for i, f := range others {
		if s := f.State(); s == future.Done {
			// One second has not passed: they cannot have finished.
			v, err := f.Result(context.Background())
			t.Fatalf("call %d ended with the cancelled one: %q %v", i, v, err)
		}
	}
	for i, f := range others {
		if v, err := f.Result(context.Background()); err != nil || string(v) != "slept" {
			t.Fatalf("call %d: %q, %v", i, v, err)
		}
	}
	if got := mustCall(t, p, "pid", ""); got != pid {
		t.Fatalf("the worker was replaced: %s -> %s", pid, got)
	}
}

func TestManySlotsTimeoutOne(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, Slots: 4, TaskTimeout: 300 * time.Millisecond, CancelGrace: 2 * time.Second})
	pid := mustCall(t, p, "pid", "")
	long, _ := p.Submit(context.Background(), "sleep", []byte("1h"))
	short, _ := p.Submit(context.Background(), "sleep", []byte("100ms"))
	if _, err := long.Result(context.Background()); !errors.Is(err, ErrTaskTimeout) {
		t.Fatalf("long: %v, want ErrTaskTimeout", err)
	}
	if v, err := short.Result(context.Background()); err != nil || string(v) != "slept" {
		t.Fatalf("short: %q, %v", v, err)
	}
	if got := mustCall(t, p, "pid", ""); got != pid {
		t.Fatalf("the worker was replaced: %s -> %s", pid, got)
	}
}

// A call that ignores its cancel gets its worker killed after the grace
// period; the other calls that worker held fail as crashed.
func TestManySlotsStuckCancelKills(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, Slots: 4, CancelGrace: 200 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	stuck, _ := p.Submit(ctx, "sleep_ignore", []byte("1h"))
	other, _ := p.Submit(context.Background(), "sleep", []byte("1h"))
	eventually(t, "both to run", func() bool { return stuck.State() == future.Running && other.State() == future.Running })
	time.Sleep(50 * time.Millisecond) // both sent
	cancel()
	if _, err := stuck.Result(context.Background()); !errors.Is(err, context.Canceled) {
		t.Fatalf("stuck: %v", err)
	}
	var ce *WorkerCrashedError
	if _, err := other.Result(context.Background()); !errors.As(err, &ce) || ce.Task != "sleep" {
		t.Fatalf("other: %v, want a *WorkerCrashedError for task sleep", err)
	}
	mustCall(t, p, "echo", "replaced")
}

// SIGKILL of one process fails exactly the calls it held; those on the
// other process succeed.
func TestManySlotsKillFailsOnlyItsCalls(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 2, Slots: 4})
	fs, owner := holdCalls(t, p, 8)
	victim := owner[0]
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := 0
	for i, f := range fs {
		v, err := f.Result(context.Background())
		if owner[i] == victim {
			killed++
			var ce *WorkerCrashedError
			if !errors.As(err, &ce) || ce.PID != victim || ce.Signal != syscall.SIGKILL || ce.Task != "hold" {
				t.Errorf("call %d on the killed process: %v", i, err)
			}
			continue
		}
		if err != nil || string(v) != strconv.Itoa(owner[i]) {
			t.Errorf("call %d on the other process: %q, %v", i, v, err)
		}
	}
	if killed == 0 || killed == len(fs) {
		t.Fatalf("%d of %d calls on the killed process: want both processes used", killed, len(fs))
	}
}

// A worker that announces protocol 1 gets v1 frames, one call at a time,
// whatever Config.Slots asks.
func TestProtocol1GoWorker(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, Slots: 8, Env: []string{"TESTWORKER_PROTOCOL=1"}, TaskTimeout: 300 * time.Millisecond})
	p.mu.Lock()
	for pr := range p.procs {
		if pr.proto != 1 || pr.slots != 1 || pr.meta || pr.shm {
			t.Errorf("worker: protocol %d, %d slots, meta %v, shm %v", pr.proto, pr.slots, pr.meta, pr.shm)
		}
	}
	p.mu.Unlock()
	if got := p.Slots(); got != 1 {
		t.Fatalf("Slots() = %d", got)
	}
	big := bytesOf(3<<20, 'x')
	if out, err := p.Call(context.Background(), "echo", big); err != nil || string(out) != string(big) {
		t.Fatalf("big echo: %d bytes, %v", len(out), err)
	}
	if v, err := p.SubmitMeta(context.Background(), "info", nil, &Meta{TaskID: "t1"}); err != nil {
		t.Fatal(err)
	} else if b, err := v.Result(context.Background()); err != nil || strings.Contains(string(b), "t1") {
		t.Fatalf("info = %s, %v: META sent to a protocol 1 worker", b, err)
	}
	if _, err := callT(t, p, "sleep", "10s"); !errors.Is(err, ErrTaskTimeout) {
		t.Fatalf("timeout: %v", err)
	}
	var te *TaskError
	if _, err := callT(t, p, "skip", ""); !errors.As(err, &te) || te.Type != "SkipRetry" || te.SkipRetry {
		t.Fatalf("skip: %#v", err)
	}
	var ce *WorkerCrashedError
	if _, err := callT(t, p, "exit", "3"); !errors.As(err, &ce) {
		t.Fatalf("exit: %v", err)
	}
	mustCall(t, p, "echo", "back")
}

// The Python SDK is served whichever protocol it speaks (1 before its
// protocol 2 support lands, then 2 with the slots it announces).
func TestPythonWorkerProtocol(t *testing.T) {
	cfg := pythonConfig(t)
	cfg.Workers, cfg.Slots = 1, 4
	p, _ := newPool(t, cfg)
	p.mu.Lock()
	for pr := range p.procs {
		t.Logf("python worker: protocol %d, %d slots, meta %v, shm %v", pr.proto, pr.slots, pr.meta, pr.shm)
		if pr.proto == 1 && (pr.slots != 1 || pr.meta || pr.shm) {
			t.Errorf("protocol 1 worker with %d slots, meta %v, shm %v", pr.slots, pr.meta, pr.shm)
		}
	}
	p.mu.Unlock()
	big := bytesOf(3<<20, 'p')
	if got, err := p.Call(context.Background(), "size", big); err != nil || string(got) != strconv.Itoa(len(big)) {
		t.Fatalf("size = %q, %v", got, err)
	}
}

func TestMetaReachesHandler(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1})
	deadline := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	f, err := p.SubmitMeta(context.Background(), "info", []byte("x"), &Meta{
		TaskID: "id-1", Kind: "resize", Queue: "images", Attempt: 2, MaxRetries: 0, Deadline: deadline, Encoding: "json",
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.Result(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var info struct {
		Task, TaskID, Kind, Queue, Encoding string
		Meta                                bool
		Attempt, MaxRetries                 int
		Deadline                            time.Time
	}
	if err := json.Unmarshal(b, &info); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	if !info.Meta || info.Task != "info" || info.TaskID != "id-1" || info.Kind != "resize" || info.Queue != "images" ||
		info.Attempt != 2 || info.MaxRetries != 0 || !info.Deadline.Equal(deadline) || info.Encoding != "json" {
		t.Fatalf("info = %s", b)
	}
	// Without META the handler knows its call, not a task.
	b, _ = p.Call(context.Background(), "info", nil)
	if err := json.Unmarshal(b, &info); err != nil || info.Meta || info.TaskID != "" {
		t.Fatalf("info without META = %s", b)
	}
}

func TestRetryFieldsReachTaskError(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1})
	var te *TaskError
	if _, err := callT(t, p, "retry", ""); !errors.As(err, &te) || te.Type != "RateLimited" || te.RetryAfter != 1500*time.Millisecond {
		t.Fatalf("retry: %#v", err)
	}
	if _, err := callT(t, p, "skip", ""); !errors.As(err, &te) || !te.SkipRetry || te.Type != "SkipRetry" {
		t.Fatalf("skip: %#v", err)
	}
}

func pattern(b []byte) {
	const period = 4099 // prime: no alignment hides a misplaced block
	for i := range min(len(b), period) {
		b[i] = byte(i*7 + i>>8)
	}
	for n := period; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// A 64 MiB argument reaches the Go handler intact, in shared memory;
// results over the threshold come back intact, built on the heap, in a
// ResultBuffer, or in the argument itself.
func TestSharedMemoryPayloads(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, MaxPayload: 128 << 20})
	arg := make([]byte, 64<<20)
	pattern(arg)
	want := fmt.Sprintf("%x %d true", sha256.Sum256(arg), len(arg))
	if got, err := p.Call(context.Background(), "sha", arg); err != nil || string(got) != want {
		t.Fatalf("sha = %s, %v, want %s", got, err, want)
	}
	// Below the threshold: the pipe.
	small := []byte("small")
	if got, want := mustCall(t, p, "sha", string(small)), fmt.Sprintf("%x 5 false", sha256.Sum256(small)); got != want {
		t.Fatalf("sha(small) = %s, want %s", got, want)
	}
	for _, how := range []string{"", " buf"} {
		out, err := p.Call(context.Background(), "gen", []byte(strconv.Itoa(16<<20)+how))
		exp := make([]byte, 16<<20)
		pattern(exp)
		if err != nil || !bytes.Equal(out, exp) {
			t.Fatalf("gen%s: %d bytes, %v", how, len(out), err)
		}
	}
	if out, err := p.Call(context.Background(), "echo", arg[:16<<20]); err != nil || !bytes.Equal(out, arg[:16<<20]) {
		t.Fatalf("echo: %d bytes, %v", len(out), err)
	}
	// In place: the argument's segment is the result; the caller's slice
	// is not touched.
	low := []byte(strings.Repeat("abc", 1<<20))
	out, err := p.Call(context.Background(), "upper", low)
	if err != nil || string(out) != strings.Repeat("ABC", 1<<20) || low[0] != 'a' {
		t.Fatalf("upper: %.10q, %v; argument now %.10q", out, err, low)
	}
}

func TestBuffers(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 2, Slots: 2, MaxPayload: 128 << 20})
	buf, err := p.NewBuffer(16 << 20)
	if err != nil {
		t.Fatal(err)
	}
	if !buf.Shared() {
		t.Fatal("a 16 MiB buffer is not in shared memory")
	}
	pattern(buf.Bytes())
	exp := append([]byte(nil), buf.Bytes()...)
	res, err := p.CallBuffer(context.Background(), "echo", buf)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Shared() || !bytes.Equal(res.Bytes(), exp) {
		t.Fatalf("echo: shared %v, %d bytes", res.Shared(), res.Len())
	}
	// The result can be passed on as the next argument.
	res2, err := p.CallBuffer(context.Background(), "sha", res)
	if err != nil || string(res2.Bytes()) != fmt.Sprintf("%x %d true", sha256.Sum256(exp), len(exp)) {
		t.Fatalf("sha of the result: %q, %v", res2.Bytes(), err)
	}
	res2.Release()
	// A result in the worker's segment.
	arg, _ := p.NewBuffer(16)
	copy(arg.Bytes(), strconv.Itoa(8<<20)+" buf")
	arg2, _ := p.NewBuffer(len(strconv.Itoa(8<<20) + " buf"))
	copy(arg2.Bytes(), strconv.Itoa(8<<20)+" buf")
	arg.Release()
	gen, err := p.CallBuffer(context.Background(), "gen", arg2)
	if err != nil {
		t.Fatal(err)
	}
	want := make([]byte, 8<<20)
	pattern(want)
	if !gen.Shared() || !bytes.Equal(gen.Bytes(), want) {
		t.Fatalf("gen: shared %v, %d bytes", gen.Shared(), gen.Len())
	}
	gen.Release()
	gen.Release() // twice is fine
	// Small buffers live on the heap and work the same.
	sb, _ := p.NewBuffer(5)
	copy(sb.Bytes(), "hello")
	if r, err := p.CallBuffer(context.Background(), "echo", sb); err != nil || string(r.Bytes()) != "hello" || r.Shared() {
		t.Fatalf("small echo: %v", err)
	} else {
		r.Release()
	}
}

// shmUse counts this process's shared-memory descriptors and mappings.
func shmUse(t *testing.T) (fds, maps int) {
	t.Helper()
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.Contains(l, "memfd:conq-shm") {
			fds++
		}
	}
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		t.Skip("no /proc/self/maps")
	}
	maps = strings.Count(string(b), "memfd:conq-shm")
	return fds, maps
}

func mustUseShm(t *testing.T, maps0 int) {
	t.Helper()
	if _, maps := shmUse(t); maps <= maps0 {
		t.Fatal("no shared memory in use: the test tests nothing")
	}
}

func waitShmBack(t *testing.T, fds0, maps0 int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		fds, maps := shmUse(t)
		if fds == fds0 && maps == maps0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("shared memory left: %d descriptors and %d mappings, had %d and %d", fds, maps, fds0, maps0)
		}
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
	}
}

// No segment leaks: a worker SIGKILLed mid-call, a pool shut down
// mid-call, results never read.
func TestSharedMemoryLeaks(t *testing.T) {
	if _, err := os.Stat("/proc/self/maps"); err != nil {
		t.Skip("no /proc")
	}
	fds0, maps0 := shmUse(t)
	big := bytesOf(8<<20, 'L')
	t.Run("worker killed mid-call", func(t *testing.T) {
		p, err := New(context.Background(), Config{Command: []string{testWorker}, Workers: 1, Slots: 2})
		if err != nil {
			t.Fatal(err)
		}
		pid, _ := strconv.Atoi(mustCall(t, p, "pid", ""))
		f1, _ := p.Submit(context.Background(), "block", big)
		f2, _ := p.Submit(context.Background(), "gen", []byte(strconv.Itoa(4<<20)+" buf"))
		if _, err := f2.Result(context.Background()); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the call to run", func() bool { return f1.State() == future.Running })
		time.Sleep(50 * time.Millisecond)
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
		p, err := New(context.Background(), Config{Command: []string{testWorker}, Workers: 2, Slots: 2})
		if err != nil {
			t.Fatal(err)
		}
		var fs []*future.Future[[]byte]
		for range 4 {
			f, _ := p.Submit(context.Background(), "block", big)
			fs = append(fs, f)
		}
		buf, _ := p.NewBuffer(8 << 20)
		bf, _ := p.SubmitBuffer(context.Background(), "block", buf, nil)
		eventually(t, "the calls to run", func() bool { return fs[3].State() == future.Running })
		mustUseShm(t, maps0)
		p.Close()
		for _, f := range fs {
			if _, err := f.Result(context.Background()); !errors.Is(err, ErrPoolClosed) {
				t.Fatalf("err = %v", err)
			}
		}
		if _, err := bf.Result(context.Background()); !errors.Is(err, ErrPoolClosed) {
			t.Fatalf("buffer call: %v", err)
		}
		waitShmBack(t, fds0, maps0)
	})
	t.Run("results never read", func(t *testing.T) {
		p, err := New(context.Background(), Config{Command: []string{testWorker}, Workers: 1, Slots: 4})
		if err != nil {
			t.Fatal(err)
		}
		var fs []*future.Future[[]byte]
		var bfs []*future.Future[*Buffer]
		for range 3 {
			f, _ := p.Submit(context.Background(), "gen", []byte(strconv.Itoa(4<<20)+" buf"))
			fs = append(fs, f)
			f, _ = p.Submit(context.Background(), "echo", big)
			fs = append(fs, f)
			arg, _ := p.NewBuffer(16)
			n := copy(arg.Bytes(), strconv.Itoa(4<<20)+" buf")
			arg2, _ := p.NewBuffer(n)
			copy(arg2.Bytes(), arg.Bytes()[:n])
			arg.Release()
			bf, _ := p.SubmitBuffer(context.Background(), "gen", arg2, nil)
			bfs = append(bfs, bf)
			eb, _ := p.NewBuffer(8 << 20)
			bf, _ = p.SubmitBuffer(context.Background(), "echo", eb, nil)
			bfs = append(bfs, bf)
		}
		for _, f := range fs {
			<-f.Done()
		}
		for _, f := range bfs {
			<-f.Done()
		}
		mustUseShm(t, maps0)
		if err := p.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		clear(fs) // unreachable now: their Buffers are released by the collector
		clear(bfs)
		waitShmBack(t, fds0, maps0)
	})
}

// Recycling a many-slot worker waits for the calls it holds.
func TestManySlotsRecycleWaits(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, Slots: 4, MaxTasksPerWorker: 4})
	dir := t.TempDir()
	var fs []*future.Future[[]byte]
	for i := range 4 {
		f, _ := p.Submit(context.Background(), "hold", []byte(filepath.Join(dir, strconv.Itoa(i))))
		fs = append(fs, f)
	}
	var pid string
	for i, f := range fs {
		v, err := f.Result(context.Background())
		if err != nil || (pid != "" && string(v) != pid) {
			t.Fatalf("call %d: %q, %v (first pid %s)", i, v, err, pid)
		}
		pid = string(v)
	}
	if got := mustCall(t, p, "pid", ""); got == pid {
		t.Fatal("the worker was not recycled after 4 calls")
	}
}

// holdCalls submits n calls of the "hold" task (both SDKs' test workers
// have it: it writes NAME.PID into the directory it is given and waits)
// and returns them once every one has started, with the PID of the
// process running each.
func holdCalls(t *testing.T, p *Pool, n int) ([]*future.Future[[]byte], []int) {
	t.Helper()
	dir := t.TempDir()
	fs := make([]*future.Future[[]byte], n)
	for i := range fs {
		fs[i], _ = p.Submit(context.Background(), "hold", []byte(filepath.Join(dir, strconv.Itoa(i))))
	}
	owner := make([]int, len(fs))
	eventually(t, "every call to start", func() bool {
		for i := range fs {
			m, _ := filepath.Glob(filepath.Join(dir, strconv.Itoa(i)+".*"))
			if len(m) != 1 {
				return false
			}
			owner[i], _ = strconv.Atoi(strings.TrimPrefix(filepath.Ext(m[0]), "."))
		}
		return true
	})
	return fs, owner
}
