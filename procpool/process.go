package procpool

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/conqhq/conq/internal/wire"
)

// stderrTailLines is how many of a worker's last stderr lines are kept for
// crash reports.
const stderrTailLines = 20

// outputLineMax splits longer output lines so one runaway line cannot hold
// unbounded memory.
const outputLineMax = 16 << 10

// process is one running worker: its pipes, its exit and its output.
type process struct {
	id    int
	pid   int
	cmd   *exec.Cmd
	log   *slog.Logger
	grace time.Duration // CancelGrace

	reqW  *os.File  // pool → worker frames (the worker's fd 3)
	respR *exitPipe // worker → pool frames (the worker's fd 4)
	r     *wire.Reader
	tree  *tree // the worker and its descendants

	// What the worker announced in its ready frame.
	proto int  // 1 or 2
	slots int  // calls it takes at once
	meta  bool // it takes META
	shm   bool // it maps shared-memory arguments
	sigc  bool // it wants a SIGINT after each cancel frame (feature "sigcancel")
	// ordered: it runs one call at a time in arrival order (feature
	// "ordered"); slots is then the pool's Pipeline, at most what it
	// announced.
	ordered bool
	names   []string // the task names it serves (ready frame "tasks"); nil if it did not say

	wmu      sync.Mutex  // guards the calls' sent/answered flags, cancelTm and inflight
	cancelTm *time.Timer // one-slot workers: kills the worker if a cancelled call does not answer in time
	inflight map[uint64]*call
	broken   bool // many-slot workers: the response stream has ended; no new calls

	readerDone chan struct{} // many-slot workers: closed when the reader has ended

	// Ordered workers, under wmu: the calls held in the order they were
	// sent (the first has started, the others wait in the worker's pipe),
	// when the first started, and the running average of a call's run
	// time (negative until one is known).
	order   []*call
	headAt  time.Time
	avgCall time.Duration
	resend  []*call // calls that never started on a worker that died: the next process sends them

	wlock  sync.Mutex // the right to write frames on reqW
	w      *wire.Writer
	head   []byte // scratch for META parts and handles; under wlock
	relMu  sync.Mutex
	rel    []release    // release frames waiting for wlock
	relN   atomic.Int32 // len(rel), read without relMu on the hot path
	sp     *shmPool
	peerMu sync.Mutex
	peers  map[uint64]*peerSeg // the worker's segments mapped here

	current atomic.Pointer[call]
	tasks   int

	exited  chan struct{} // closed once the worker is reaped and its tree killed
	cleared chan struct{} // closed once its tree is gone (cgroup removed)
	outputs sync.WaitGroup
	stderr  tail

	killOnce sync.Once
	killed   atomic.Bool
	stopping atomic.Bool // stop: the end of the stream is expected
}

// spawn starts a worker and waits for its ready frame.
func (p *Pool) spawn(ctx context.Context, id int) (*process, error) {
	cfg := p.cfg
	var files []*os.File
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err == nil {
			files = append(files, r, w)
		}
		return r, w, err
	}
	reqR, reqW, err1 := pipe()
	respR, respW, err2 := pipe()
	outR, outW, err3 := pipe()
	errR, errW, err4 := pipe()
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		closeAll()
		return nil, &StartError{Command: cfg.Command, Reason: "creating pipes", Err: err}
	}
	if cfg.MaxPayload > 64<<10 {
		growPipe(reqW, 1<<20)
		growPipe(respR, 1<<20)
	}

	tr, err := p.jail.newTree(id)
	if err != nil {
		closeAll()
		return nil, &StartError{Command: cfg.Command, Reason: "preparing the worker's process tree", Err: err}
	}
	cmd := exec.Command(cfg.Command[0], cfg.Command[1:]...)
	cmd.Dir = cfg.Dir
	cmd.Env = append(append(append(os.Environ(), cfg.Env...),
		wire.EnvFDs+"=3,4",
		wire.EnvID+"="+strconv.Itoa(id),
		wire.EnvMaxFrame+"="+strconv.Itoa(cfg.maxFrame()),
		wire.EnvProtocol+"="+strconv.Itoa(wire.Version),
	), tr.env()...)
	if p.shm.threshold > 0 {
		cmd.Env = append(cmd.Env, wire.EnvShmThreshold+"="+strconv.Itoa(p.shm.threshold))
	}
	if cfg.Slots > 0 {
		cmd.Env = append(cmd.Env, wire.EnvSlots+"="+strconv.Itoa(cfg.Slots))
	}
	cmd.Stdout, cmd.Stderr = outW, errW
	cmd.ExtraFiles = []*os.File{reqR, respW}
	if err := tr.start(func(attr *syscall.SysProcAttr) (int, error) {
		cmd.SysProcAttr = attr
		if err := startCmd(cmd); err != nil {
			cmd.Process = nil
			return 0, err
		}
		return cmd.Process.Pid, nil
	}); err != nil {
		closeAll()
		return nil, &StartError{Command: cfg.Command, Reason: "exec failed", Err: err}
	}
	// The child holds its own copies now; ours would hide its end of file.
	reqR.Close()
	respW.Close()
	outW.Close()
	errW.Close()

	resp, out, errp := newExitPipe(respR), newExitPipe(outR), newExitPipe(errR)
	pr := &process{
		id: id, pid: cmd.Process.Pid, cmd: cmd, grace: cfg.CancelGrace, tree: tr,
		log:  cfg.Logger.With("worker", id, "pid", cmd.Process.Pid),
		reqW: reqW, respR: resp, sp: p.shm,
		r: wire.NewReader(resp, cfg.maxFrame()), w: wire.NewWriter(reqW),
		avgCall: -1,
		exited:  make(chan struct{}),
		cleared: make(chan struct{}),
	}
	pr.outputs.Add(2)
	go pr.forward(out, "stdout", slog.LevelInfo, nil)
	go pr.forward(errp, "stderr", slog.LevelWarn, &pr.stderr)
	go func() {
		// The exit is seen from the process itself, not from end of file
		// on its pipes, which a descendant may hold open: tree.wait kills
		// the descendants first, then reaps the worker.
		tr.wait(cmd.Wait)
		resp.finish()
		out.finish()
		errp.finish()
		close(pr.exited)
		tr.release()
		close(pr.cleared)
	}()

	if err := pr.handshake(ctx, cfg.StartTimeout); err != nil {
		pr.kill()
		pr.reap()
		se := &StartError{Command: cfg.Command, Reason: err.Error(), Stderr: pr.stderr.lines()}
		se.ExitCode, se.Signal = pr.exitStatus()
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			se.Err = ctx.Err()
		}
		return nil, se
	}
	if pr.ordered {
		pr.slots = min(pr.slots, cfg.Pipeline)
		pr.ordered = pr.slots > 1 // one slot: the one-call path, nothing queued
	}
	pr.log.Debug("procpool: worker ready", "protocol", pr.proto, "slots", pr.slots, "meta", pr.meta, "shm", pr.shm, "sigcancel", pr.sigc, "ordered", pr.ordered)
	if pr.shm {
		p.shm.wanted.Store(true)
	}
	return pr, nil
}

func (pr *process) handshake(ctx context.Context, timeout time.Duration) error {
	_ = pr.respR.f.SetReadDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { _ = pr.respR.f.SetReadDeadline(time.Now()) })
	f, err := pr.r.Read()
	stop()
	if ctx.Err() != nil {
		return fmt.Errorf("start interrupted: %w", ctx.Err())
	}
	if err == nil {
		// Not after an error: the exit may have set the deadline that
		// makes reads drain instead of wait.
		_ = pr.respR.f.SetReadDeadline(time.Time{})
	}
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return fmt.Errorf("no ready frame within %v", timeout)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		select {
		case <-pr.exited:
			code, sig := pr.exitStatus()
			return fmt.Errorf("exited before its ready frame (%s)", exitText(code, sig))
		case <-time.After(time.Second):
			return errors.New("closed its response descriptor before its ready frame (not a conq worker?)")
		}
	case err != nil:
		return fmt.Errorf("bad ready frame: %v", err)
	case f.Kind != wire.KindReady:
		return fmt.Errorf("first frame is %s, want ready", f.Kind)
	}
	var r wire.Ready
	if err := json.Unmarshal(f.Payload, &r); err != nil {
		return fmt.Errorf("bad ready payload: %v", err)
	}
	pr.names = r.Tasks
	switch r.Protocol {
	case wire.VersionV1:
		pr.proto, pr.slots = 1, 1
		pr.r.SetVersion(wire.VersionV1)
	case wire.Version:
		if r.Slots < 0 || r.Slots > maxSlots {
			return fmt.Errorf("ready frame announces %d slots, want 1..%d", r.Slots, maxSlots)
		}
		pr.proto, pr.slots = 2, max(r.Slots, 1)
		for _, feat := range r.Features {
			switch feat {
			case wire.FeatureMeta:
				pr.meta = true
			case wire.FeatureShm:
				pr.shm = pr.sp.threshold > 0
			case wire.FeatureSigCancel:
				pr.sigc = true
			case wire.FeatureOrdered:
				pr.ordered = true
			}
		}
	default:
		return fmt.Errorf("worker speaks protocol %d, pool speaks 1 and %d", r.Protocol, wire.Version)
	}
	return nil
}

// maxSlots bounds the calls in flight a worker may announce.
const maxSlots = 1 << 16

// release is a release frame waiting to be written.
type release struct {
	op byte
	id uint64
}

// lockW takes the right to write frames. Release frames queued meanwhile
// are written by whoever holds it, before it lets go (unlockW), so that
// queueing one never waits behind a large write.
func (pr *process) lockW() { pr.wlock.Lock() }

func (pr *process) unlockW() {
	for {
		if pr.relN.Load() > 0 {
			pr.flushReleasesLocked()
		}
		pr.wlock.Unlock()
		if pr.relN.Load() == 0 || !pr.wlock.TryLock() {
			return
		}
	}
}

// queueRelease sends a release frame as soon as the writer is free.
func (pr *process) queueRelease(op byte, id uint64) {
	select {
	case <-pr.exited:
		return
	default:
	}
	pr.relMu.Lock()
	pr.rel = append(pr.rel, release{op, id})
	pr.relN.Store(int32(len(pr.rel)))
	pr.relMu.Unlock()
	if pr.wlock.TryLock() {
		pr.unlockW()
	}
}

func (pr *process) flushReleasesLocked() {
	pr.relMu.Lock()
	rel := pr.rel
	pr.rel = nil
	pr.relN.Store(0)
	pr.relMu.Unlock()
	for _, r := range rel {
		var op [1]byte
		op[0] = r.op
		if err := pr.w.Write(wire.KindRelease, r.id, "", op[:]); err != nil {
			return // the worker is gone; its mappings with it
		}
	}
}

// forward logs a worker's output stream line by line.
func (pr *process) forward(f *exitPipe, stream string, level slog.Level, t *tail) {
	defer pr.outputs.Done()
	defer f.Close()
	br := bufio.NewReaderSize(f, outputLineMax)
	ctx := context.Background()
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			s := string(trimEOL(line))
			if t != nil {
				t.add(s)
			}
			pr.log.Log(ctx, level, "procpool: worker "+stream, "line", s)
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// kill kills the worker and its descendants and unblocks any reader of its
// responses. It is safe to call more than once and after exit.
func (pr *process) kill() {
	pr.killOnce.Do(func() {
		pr.killed.Store(true)
		pr.tree.kill()
		_ = pr.cmd.Process.Kill() // a pidfd signal: never another process
		_ = pr.respR.f.SetReadDeadline(time.Now())
	})
}

// stop asks an idle worker to exit by closing its request stream, and kills
// it if it has not exited within grace.
func (pr *process) stop(grace time.Duration) {
	pr.stopping.Store(true)
	pr.reqW.Close()
	t := time.NewTimer(grace)
	select {
	case <-pr.exited:
		t.Stop()
	case <-t.C:
		pr.log.Warn("procpool: worker ignored the end of its request stream; killing it", "grace", grace)
		pr.kill()
	}
	pr.reap()
}

// reap waits for the process and its output forwarders and releases the
// pipes. The process must be exiting (killed or told to).
func (pr *process) reap() {
	<-pr.exited
	pr.outputs.Wait()
	<-pr.cleared
	if pr.readerDone != nil {
		<-pr.readerDone
	}
	pr.reqW.Close()
	pr.respR.Close()
	pr.dropPeers()
	pr.sp.forget(pr)
}

// exitStatus is the exit code, or -1 and the signal; (0, 0) before exit.
func (pr *process) exitStatus() (int, syscall.Signal) {
	select {
	case <-pr.exited:
	default:
		return 0, 0
	}
	st := pr.cmd.ProcessState
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return -1, ws.Signal()
	}
	return st.ExitCode(), 0
}

// crashed builds the error of a task whose worker died under it.
func (pr *process) crashed(task string) *WorkerCrashedError {
	// Usually it is dead already; one that only closed its response pipe
	// gets a moment to exit on its own, so the report shows its status.
	select {
	case <-pr.exited:
	case <-time.After(500 * time.Millisecond):
		pr.kill()
		<-pr.exited
	}
	// Let the stderr forwarder reach the end so the tail has the last words.
	done := make(chan struct{})
	go func() { pr.outputs.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	e := &WorkerCrashedError{Task: task, WorkerID: pr.id, PID: pr.pid, Stderr: pr.stderr.lines()}
	e.ExitCode, e.Signal = pr.exitStatus()
	return e
}

// tail keeps the last lines of a stream.
type tail struct {
	mu   sync.Mutex
	ring [stderrTailLines]string
	n    int
}

func (t *tail) add(s string) {
	t.mu.Lock()
	t.ring[t.n%len(t.ring)] = s
	t.n++
	t.mu.Unlock()
}

func (t *tail) lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	start := 0
	if t.n > len(t.ring) {
		start = t.n - len(t.ring)
	}
	out := make([]string, 0, t.n-start)
	for i := start; i < t.n; i++ {
		out = append(out, t.ring[i%len(t.ring)])
	}
	return out
}
