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

	mu     sync.Mutex
	proc   *process // the worker running it, set before Start
	reason error    // why the call is being stopped; first one wins

	// guarded by proc.wmu
	sending, sent, answered bool
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
	switch {
	case c.sent && !c.answered:
		pr.sendCancelLocked(c)
	case c.sending && !c.sent && !c.answered:
		// The worker is not even reading its arguments: fail the write;
		// run then kills the worker.
		_ = pr.reqW.SetWriteDeadline(time.Now())
	}
	pr.wmu.Unlock()
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
	c.Resolve(v, err)
}

func (pr *process) sendCancelLocked(c *call) {
	if pr.cancelTm != nil {
		return
	}
	// A worker that stopped reading with its pipe full would block this
	// write, and with it the kill below: bound it.
	_ = pr.reqW.SetWriteDeadline(time.Now().Add(pr.grace))
	err := pr.w.Write(wire.KindCancel, c.id, "", nil)
	_ = pr.reqW.SetWriteDeadline(time.Time{})
	if err != nil {
		go pr.kill()
		return
	}
	pr.cancelTm = time.AfterFunc(pr.grace, func() {
		pr.log.Warn("procpool: cancelled task did not stop in time; killing the worker", "task", c.task, "grace", pr.grace)
		pr.kill()
	})
}

// run runs c on pr and reports whether pr may take another task.
func (p *Pool) run(pr *process, c *call) (healthy bool) {
	c.mu.Lock()
	c.proc = pr
	c.mu.Unlock()
	if !c.Start(c) {
		return true // cancelled while queued
	}
	if c.ctx.Err() != nil {
		c.finish(nil, context.Cause(c.ctx))
		return true
	}
	pr.current.Store(c)
	defer pr.current.Store(nil)

	var timer *time.Timer
	if p.cfg.TaskTimeout > 0 {
		timer = time.AfterFunc(p.cfg.TaskTimeout, func() { c.interrupt(ErrTaskTimeout) })
	}
	// The call is written without holding wmu, so that interrupt can fail a
	// write blocked on a worker that does not read; nothing else writes
	// before sent is set.
	pr.wmu.Lock()
	c.sending = true
	pr.wmu.Unlock()
	werr := pr.w.Write(wire.KindCall, c.id, c.task, c.args)
	pr.wmu.Lock()
	c.sent = werr == nil
	if werr == nil && c.stopReason() != nil {
		pr.sendCancelLocked(c) // interrupted while we were writing
	}
	pr.wmu.Unlock()
	var f wire.Frame
	rerr := werr
	if rerr == nil {
		f, rerr = pr.r.Read()
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
			c.finish(nil, reason)
			return false
		}
		if !errors.Is(rerr, io.EOF) && !errors.Is(rerr, io.ErrUnexpectedEOF) &&
			!errors.Is(rerr, os.ErrDeadlineExceeded) && !errors.Is(rerr, os.ErrClosed) && !isPipeError(rerr) {
			pr.log.Warn("procpool: worker pipe failed", "err", rerr)
		}
		e := pr.crashed(c.task)
		pr.log.Warn("procpool: worker crashed", "task", c.task, "status", exitText(e.ExitCode, e.Signal))
		c.finish(nil, e)
		return false
	case f.ID != c.id || (f.Kind != wire.KindResult && f.Kind != wire.KindError):
		c.finish(nil, p.protocolError(pr, fmt.Sprintf("unexpected %s frame for id %d while waiting for the answer to call %d", f.Kind, f.ID, c.id)))
		return false
	case f.Kind == wire.KindResult:
		if len(f.Payload) > p.cfg.MaxPayload {
			c.finish(nil, p.protocolError(pr, fmt.Sprintf("result of %d bytes exceeds MaxPayload %d", len(f.Payload), p.cfg.MaxPayload)))
			return false
		}
		c.finish(f.Payload, nil) // it finished before it saw the cancel: keep the work
		return healthy
	}
	var ep wire.ErrorPayload
	if err := json.Unmarshal(f.Payload, &ep); err != nil || ep.Type == "" {
		c.finish(nil, p.protocolError(pr, fmt.Sprintf("error frame payload is not a JSON error object with a type: %q", truncate(f.Payload, 200))))
		return false
	}
	if reason != nil {
		c.finish(nil, reason)
	} else {
		c.finish(nil, &TaskError{Task: c.task, Type: ep.Type, Message: ep.Message, Traceback: ep.Traceback})
	}
	return healthy
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
