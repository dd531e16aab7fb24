package procpool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/internal/precheck"
	"github.com/conqhq/conq/internal/wire"
)

// call is one submitted task. Embedding the promise makes a submission one
// allocation (plus the AfterFunc of a cancellable ctx).
type call struct {
	future.Promise[[]byte]
	ctx     context.Context
	task    string
	args    []byte
	id      uint64
	stopCtx func() bool // unregisters the ctx watch; nil for contexts that never end
	queued  time.Time   // when it was queued, for precheckAfter

	meta   []byte   // the META part of the payload (length prefix and JSON), nil if none
	seg    *segment // the argument is in this segment (args is nil), held by the call
	segOff int
	segLen int
	buf    *Buffer // the result as a Buffer, for SubmitBuffer
	asBuf  bool

	mu     sync.Mutex
	proc   *process // the worker running it, set before Start
	reason error    // why the call is being stopped; first one wins

	// started: the future has been started (Start), once; a call sent
	// again after its worker died before starting it is not started twice.
	// Set by the goroutine sending it.
	started bool

	// guarded by proc.wmu
	sending, sent, answered bool
	cancelReq               bool        // many-slot workers: a stop was asked for
	cancelSent              bool        // many-slot workers: its cancel frame is written (or being written)
	cancelTm                *time.Timer // many-slot workers: kills the worker if the cancel is not answered in time
	taskTm                  *time.Timer // many-slot workers: TaskTimeout
}

// precheckAfter: a call that waited this long in the pool's queue runs
// the check its ctx carries (package precheck: a queue task's cancel
// request) before it starts.
const precheckAfter = 250 * time.Millisecond

func (c *call) precheck() {
	if !c.queued.IsZero() && time.Since(c.queued) >= precheckAfter {
		precheck.Run(c.ctx)
	}
}

// Stop implements future.Stopper: Future.Cancel on a running task.
func (c *call) Stop() { c.interrupt(future.ErrCancelled) }

// ctxDone runs when the caller's ctx ends: a queued call is cancelled, a
// running one is asked to stop.
func (c *call) ctxDone() {
	err := context.Cause(c.ctx)
	if !c.Cancel(err) {
		c.interrupt(err)
	}
}

// interrupt records why the call must stop and sends its worker a cancel
// frame; the worker is killed if it does not answer within CancelGrace.
func (c *call) interrupt(reason error) {
	c.mu.Lock()
	if c.reason != nil {
		c.mu.Unlock()
		return
	}
	c.reason = reason
	pr := c.proc
	c.mu.Unlock()
	if pr == nil {
		return
	}
	pr.wmu.Lock()
	defer pr.wmu.Unlock()
	c.mu.Lock()
	moved := c.proc != pr
	c.mu.Unlock()
	if moved {
		// pr died before starting c, which waits to be sent again (or is
		// being sent) elsewhere: that send sees the reason.
		return
	}
	if pr.slots > 1 {
		pr.cancelManyLocked(c)
		return
	}
	switch {
	case c.sent && !c.answered:
		pr.sendCancelLocked(c)
	case c.sending && !c.sent && !c.answered:
		// The worker is not even reading its arguments: fail the write;
		// run then kills the worker.
		_ = pr.reqW.SetWriteDeadline(time.Now())
	}
}

func (c *call) stopReason() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}

func (c *call) finish(v []byte, err error) {
	if c.stopCtx != nil {
		c.stopCtx()
	}
	c.args = nil
	if c.seg != nil {
		c.seg.put()
		c.seg = nil
	}
	if c.asBuf && err == nil && c.buf == nil {
		c.buf = newBuffer(v, nil)
		v = nil
	}
	if !c.Resolve(v, err) && c.buf != nil {
		c.buf.Release()
	}
}

// sendCancelLocked sends the cancel frame of a one-slot worker's call and
// arms the kill. Called with wmu held.
func (pr *process) sendCancelLocked(c *call) {
	if pr.cancelTm != nil {
		return
	}
	if err := pr.writeCancel(c.id); err != nil {
		go pr.kill()
		return
	}
	pr.cancelTm = time.AfterFunc(pr.grace, func() {
		pr.log.Warn("procpool: cancelled task did not stop in time; killing the worker", "task", c.task, "grace", pr.grace)
		pr.kill()
	})
}

// writeCancel writes a cancel frame. A worker that stopped reading with its
// pipe full would block the write, and with it the kill that follows a
// cancel: the write is bounded by CancelGrace.
func (pr *process) writeCancel(id uint64) error {
	pr.lockW()
	defer pr.unlockW()
	_ = pr.reqW.SetWriteDeadline(time.Now().Add(pr.grace))
	err := pr.w.Write(wire.KindCancel, id, "", nil)
	_ = pr.reqW.SetWriteDeadline(time.Time{})
	if err == nil && pr.sigc {
		// Feature "sigcancel": the frame is in the pipe; the signal makes
		// the worker's main thread, busy in the call, look at it. Sent
		// under wlock, after the whole frame, so the worker finds it.
		pr.interrupt()
	}
	return err
}

// interrupt sends SIGINT to the worker process (not its group: the
// worker's descendants are its own business). A worker that has exited
// ignores it.
func (pr *process) interrupt() {
	select {
	case <-pr.exited:
		return
	default:
	}
	_ = pr.cmd.Process.Signal(os.Interrupt)
}

// writeCall writes c's call frame: META if the worker takes it, the
// argument through shared memory if it is in a segment and the worker maps
// segments, else through the pipe.
func (pr *process) writeCall(c *call) error {
	pr.lockW()
	defer pr.unlockW()
	var flags uint8
	head := pr.head[:0]
	if c.meta != nil && pr.meta {
		flags |= wire.FlagMeta
		head = append(head, c.meta...)
	}
	body := c.args
	if c.seg != nil {
		if pr.shm {
			flags |= wire.FlagShm
			head = c.seg.s.Handle(c.seg.sp.pid, c.segOff, c.segLen).Append(head)
			c.seg.sentTo(pr)
			body = nil
		} else {
			body = c.seg.s.Mem[c.segOff : c.segOff+c.segLen]
		}
	}
	pr.head = head
	return pr.w.WriteFrame(wire.KindCall, flags, c.id, c.task, head, body)
}

// run runs c on a one-slot worker pr and reports whether pr may take
// another task. The goroutine that sends the call reads its answer: no
// handoff between goroutines sits on the path of a call.
func (p *Pool) run(pr *process, c *call) (healthy bool) {
	c.mu.Lock()
	c.proc = pr
	c.mu.Unlock()
	if !c.started {
		c.precheck()
		if !c.Start(c) {
			return true // cancelled while queued
		}
		c.started = true
	}
	if c.ctx.Err() != nil {
		c.finish(nil, context.Cause(c.ctx))
		return true
	}
	if reason := c.stopReason(); reason != nil {
		c.finish(nil, reason) // stopped while waiting to be sent again
		return true
	}
	pr.current.Store(c)
	defer pr.current.Store(nil)

	var timer *time.Timer
	if p.cfg.TaskTimeout > 0 {
		timer = time.AfterFunc(p.cfg.TaskTimeout, func() { c.interrupt(ErrTaskTimeout) })
	}
	// The call is written without holding wmu, so that interrupt can fail a
	// write blocked on a worker that does not read.
	pr.wmu.Lock()
	c.sending, c.sent, c.answered = true, false, false // a call sent again was answered by its dead worker
	pr.wmu.Unlock()
	werr := pr.writeCall(c)
	pr.wmu.Lock()
	c.sent = werr == nil
	if werr == nil && c.stopReason() != nil {
		pr.sendCancelLocked(c) // interrupted while we were writing
	}
	pr.wmu.Unlock()
	var f wire.Frame
	rerr := werr
	for rerr == nil {
		if f, rerr = pr.r.Read(); rerr == nil && f.Kind == wire.KindRelease {
			pr.peerRelease(f)
			continue
		}
		break
	}
	if timer != nil {
		timer.Stop()
	}
	pr.wmu.Lock()
	c.answered = true
	killing := pr.cancelTm != nil && !pr.cancelTm.Stop()
	pr.cancelTm = nil
	pr.wmu.Unlock()
	reason := c.stopReason()
	healthy = !killing && !pr.killed.Load()

	switch {
	case rerr != nil && (errors.Is(rerr, wire.ErrMalformed) || errors.Is(rerr, wire.ErrTooLarge)):
		c.finish(nil, p.protocolError(pr, rerr.Error()))
		return false
	case rerr != nil:
		// The worker died or was killed: end of file, a closed pipe, or the
		// read deadline kill sets.
		if reason != nil {
			pr.kill()
			if c.seg != nil {
				c.seg.taint()
			}
			c.finish(nil, reason)
			return false
		}
		logPipeError(pr, rerr)
		e := pr.crashed(c.task)
		pr.log.Warn("procpool: worker crashed", "task", c.task, "status", exitText(e.ExitCode, e.Signal))
		if c.seg != nil {
			c.seg.taint()
		}
		c.finish(nil, e)
		return false
	case f.ID != c.id || (f.Kind != wire.KindResult && f.Kind != wire.KindError):
		c.finish(nil, p.protocolError(pr, fmt.Sprintf("unexpected %s frame for id %d while waiting for the answer to call %d", f.Kind, f.ID, c.id)))
		return false
	}
	if p.answer(pr, c, f, reason) != nil {
		return false
	}
	return healthy
}

func logPipeError(pr *process, err error) {
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
		!errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, os.ErrClosed) && !isPipeError(err) {
		pr.log.Warn("procpool: worker pipe failed", "err", err)
	}
}

// answer finishes c with its result or error frame f. If the frame broke
// the protocol it returns the *ProtocolError c failed with (the worker is
// then being killed).
func (p *Pool) answer(pr *process, c *call, f wire.Frame, reason error) error {
	if f.Kind == wire.KindResult {
		v, err := p.result(pr, c, f)
		if err != nil {
			pe := p.protocolError(pr, err.Error())
			c.finish(nil, pe)
			return pe
		}
		c.finish(v, nil) // it finished before it saw the cancel: keep the work
		return nil
	}
	var ep wire.ErrorPayload
	if err := json.Unmarshal(f.Payload, &ep); err != nil || ep.Type == "" {
		pe := p.protocolError(pr, fmt.Sprintf("error frame payload is not a JSON error object with a type: %q", truncate(f.Payload, 200)))
		c.finish(nil, pe)
		return pe
	}
	if reason != nil {
		c.finish(nil, reason)
		return nil
	}
	te := &TaskError{Task: c.task, Type: ep.Type, Message: ep.Message, Traceback: ep.Traceback, SkipRetry: ep.SkipRetry}
	if ep.RetryAfter > 0 && ep.RetryAfter < 1e9 {
		te.RetryAfter = time.Duration(ep.RetryAfter * float64(time.Second))
	}
	c.finish(nil, te)
	return nil
}

// result returns the bytes of a result frame. For a Buffer call it may set
// c.buf instead (the result stays in shared memory).
func (p *Pool) result(pr *process, c *call, f wire.Frame) ([]byte, error) {
	if f.Flags&wire.FlagShm == 0 {
		if len(f.Payload) > p.cfg.MaxPayload {
			return nil, fmt.Errorf("result of %d bytes exceeds MaxPayload %d", len(f.Payload), p.cfg.MaxPayload)
		}
		return f.Payload, nil
	}
	h, err := wire.ParseHandle(f.Payload)
	if err != nil {
		return nil, err
	}
	if h.Length > uint64(p.cfg.MaxPayload) {
		return nil, fmt.Errorf("result of %d bytes exceeds MaxPayload %d", h.Length, p.cfg.MaxPayload)
	}
	switch int(h.PID) {
	case p.shm.pid:
		// The worker answered with (part of) its argument.
		seg := c.seg
		if seg == nil || h.ID != seg.s.ID || h.Size != uint64(len(seg.s.Mem)) {
			return nil, fmt.Errorf("result in segment %d of the pool, which is not the call's argument", h.ID)
		}
		b := seg.s.Mem[h.Offset : h.Offset+h.Length]
		if c.asBuf {
			c.seg = nil // the Buffer takes the call's hold
			c.buf = newBuffer(b, &bufHold{seg: seg})
			return nil, nil
		}
		// append, not make and copy, which would zero the bytes first.
		return append([]byte(nil), b...), nil
	case pr.pid:
		ps, err := pr.mapPeer(h)
		if err != nil {
			return nil, err
		}
		b := ps.m.Mem[h.Offset : h.Offset+h.Length]
		if c.asBuf {
			c.buf = newBuffer(b, &bufHold{pr: pr, peer: ps, peerID: h.ID})
			return nil, nil
		}
		out := append([]byte(nil), b...)
		pr.unrefPeer(h.ID, ps, true)
		return out, nil
	}
	return nil, fmt.Errorf("result in a segment of pid %d, neither the worker's nor the pool's", h.PID)
}

// peerRelease handles a release frame from the worker.
func (pr *process) peerRelease(f wire.Frame) {
	if f.Payload[0] == wire.ReleaseGone {
		pr.peerGone(f.ID)
	}
	// ReleaseDone from a worker is meaningless (it never holds the pool's
	// results) and ignored.
}

func (p *Pool) protocolError(pr *process, problem string) error {
	pr.log.Error("procpool: protocol error; killing the worker", "problem", problem)
	pr.kill()
	return &ProtocolError{WorkerID: pr.id, PID: pr.pid, Problem: problem}
}

func isPipeError(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe)
}

func truncate(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
