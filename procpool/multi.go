package procpool

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conqhq/conq/internal/wire"
	"github.com/conqhq/conq/internal/wire/shm"
)

// Workers that announce more than one slot (protocol 2) take several calls
// at once. The supervisor goroutine sends calls while the worker has free
// slots; a reader goroutine matches answers to calls by id. A call's
// cancellation and timeout concern it alone; a worker that dies fails the
// calls it held, each with a *WorkerCrashedError, and nothing else.

// held returns the calls a worker holds: sent, or being sent, and not
// answered.
func (pr *process) held() []*call {
	if c := pr.current.Load(); c != nil {
		return []*call{c}
	}
	pr.wmu.Lock()
	defer pr.wmu.Unlock()
	calls := make([]*call, 0, len(pr.inflight))
	for _, c := range pr.inflight {
		calls = append(calls, c)
	}
	return calls
}

// serveMany feeds calls to a many-slot worker until it must go. It reports
// whether pr may be stopped gracefully, and returns a call it took from the
// queue but could not send because pr broke first (the next process sends
// it).
func (p *Pool) serveMany(pr *process, carry *call) (graceful bool, _ *call) {
	free := make(chan struct{}, pr.slots)
	for range pr.slots {
		free <- struct{}{}
	}
	pr.wmu.Lock()
	pr.inflight = make(map[uint64]*call, pr.slots)
	pr.wmu.Unlock()
	readerDone := make(chan struct{})
	pr.readerDone = readerDone // reap waits for it
	go func() {
		defer close(readerDone)
		p.readMany(pr, free)
	}()
	defer func() {
		if !graceful {
			pr.kill() // the reader ends with the stream
		}
	}()
	// drain waits for the calls in flight to be answered.
	drain := func() bool {
		for range pr.slots {
			select {
			case <-free:
			case <-readerDone:
				return false
			case <-p.aborting:
				return false
			}
		}
		return true
	}
	for {
		if max := p.cfg.MaxTasksPerWorker; max > 0 && pr.tasks >= max {
			pr.log.Debug("procpool: recycling worker", "tasks", pr.tasks)
			return drain(), nil
		}
		select {
		case <-free:
		case <-readerDone:
			return false, carry
		case <-p.aborting:
			return false, carry
		}
		c := carry
		carry = nil
		if c == nil {
			select {
			case c = <-p.queue:
			case <-readerDone:
				return false, nil
			case <-p.aborting:
				return false, nil
			case <-p.closing:
				select {
				case c = <-p.queue: // keep serving until the queue is empty
				default:
					free <- struct{}{}
					return drain(), nil
				}
			}
		}
		switch p.sendMany(pr, c) {
		case sendSkipped:
			free <- struct{}{}
			continue
		case sendBroken:
			return false, c
		case sendFailed:
			return false, nil
		}
		pr.tasks++
	}
}

type sendOutcome int

const (
	sendOK      sendOutcome = iota
	sendSkipped             // cancelled while queued; the slot is free
	sendBroken              // pr broke before c was registered: c is untouched
	sendFailed              // the write failed: pr is dead, the reader fails c
)

// sendMany registers c with pr and writes it.
func (p *Pool) sendMany(pr *process, c *call) sendOutcome {
	pr.wmu.Lock()
	if pr.broken {
		pr.wmu.Unlock()
		return sendBroken
	}
	pr.inflight[c.id] = c
	pr.wmu.Unlock()
	c.mu.Lock()
	c.proc = pr
	c.mu.Unlock()
	unregister := func() {
		pr.wmu.Lock()
		delete(pr.inflight, c.id)
		pr.wmu.Unlock()
	}
	if !c.Start(c) {
		unregister() // cancelled while queued
		return sendSkipped
	}
	if c.ctx.Err() != nil {
		unregister()
		c.finish(nil, context.Cause(c.ctx))
		return sendSkipped
	}
	pr.wmu.Lock()
	c.sending = true
	if p.cfg.TaskTimeout > 0 {
		c.taskTm = time.AfterFunc(p.cfg.TaskTimeout, func() { c.interrupt(ErrTaskTimeout) })
	}
	pr.wmu.Unlock()
	err := pr.writeCall(c)
	pr.wmu.Lock()
	c.sent = err == nil
	if err == nil && !c.answered && c.stopReason() != nil {
		pr.cancelManyLocked(c) // interrupted while we were writing
	}
	pr.wmu.Unlock()
	if err != nil {
		pr.log.Debug("procpool: writing a call failed", "err", err)
		return sendFailed
	}
	return sendOK
}

// cancelManyLocked asks the worker to stop c and arms the kill that follows
// if it has not answered within CancelGrace. Called with wmu held.
func (pr *process) cancelManyLocked(c *call) {
	if c.answered || c.cancelTm != nil {
		return
	}
	c.cancelTm = time.AfterFunc(pr.grace, func() {
		pr.log.Warn("procpool: cancelled task did not stop in time; killing the worker and the calls it holds", "task", c.task, "grace", pr.grace)
		pr.kill()
	})
	if !c.sent {
		return // sendMany sends the cancel once the call is written
	}
	// Not here: the writer may be busy with a large argument.
	go func() {
		if err := pr.writeCancel(c.id); err != nil {
			pr.kill()
		}
	}()
}

// readMany reads a many-slot worker's answers until its stream ends, and
// then fails the calls it still held.
func (p *Pool) readMany(pr *process, free chan<- struct{}) {
	for {
		f, err := pr.r.Read()
		if err != nil {
			p.failHeld(pr, err)
			return
		}
		switch f.Kind {
		case wire.KindRelease:
			pr.peerRelease(f)
			continue
		case wire.KindResult, wire.KindError:
		default:
			p.failHeld(pr, p.protocolError(pr, fmt.Sprintf("unexpected %s frame", f.Kind)))
			return
		}
		pr.wmu.Lock()
		c := pr.inflight[f.ID]
		// sending, not sent: the answer may come before sendMany has seen
		// its write return.
		ok := c != nil && c.sending
		if ok {
			delete(pr.inflight, f.ID)
			c.answered = true
			stopTimer(c.taskTm)
			stopTimer(c.cancelTm)
		}
		pr.wmu.Unlock()
		if !ok {
			p.failHeld(pr, p.protocolError(pr, fmt.Sprintf("%s frame for id %d, which is not a call in flight", f.Kind, f.ID)))
			return
		}
		if err := p.answer(pr, c, f, c.stopReason()); err != nil {
			p.failHeld(pr, err)
			return
		}
		free <- struct{}{}
	}
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// failHeld fails every call pr holds once its stream has ended. err is the
// read error, or the *ProtocolError that ends the worker: with a protocol
// error every call fails with it, otherwise as crashed.
func (p *Pool) failHeld(pr *process, err error) {
	pr.wmu.Lock()
	pr.broken = true
	calls := make([]*call, 0, len(pr.inflight))
	for id, c := range pr.inflight {
		calls = append(calls, c)
		delete(pr.inflight, id)
		c.answered = true
		stopTimer(c.taskTm)
		stopTimer(c.cancelTm)
	}
	pr.wmu.Unlock()
	var pe *ProtocolError
	switch {
	case errors.As(err, &pe):
	case err != nil && (errors.Is(err, wire.ErrMalformed) || errors.Is(err, wire.ErrTooLarge)):
		err = p.protocolError(pr, err.Error())
	default:
		if err != nil {
			logPipeError(pr, err)
		}
		err = nil
	}
	if len(calls) == 0 {
		if err == nil && !pr.killed.Load() && !pr.stopping.Load() {
			pr.crashed("") // wait for the exit status
			code, sig := pr.exitStatus()
			pr.log.Warn("procpool: idle worker exited", "status", exitText(code, sig), "stderr", pr.stderr.lines())
		}
		return
	}
	pr.kill()
	var crash *WorkerCrashedError
	if err == nil {
		crash = pr.crashed("")
		pr.log.Warn("procpool: worker crashed", "calls", len(calls), "status", exitText(crash.ExitCode, crash.Signal))
	}
	aborted := false
	select {
	case <-p.aborting:
		aborted = true // the pool killed it: Close, or Shutdown's deadline
	default:
	}
	for _, c := range calls {
		if c.seg != nil {
			c.seg.taint()
		}
		reason := c.stopReason()
		if reason == nil && aborted {
			reason = ErrPoolClosed
		}
		switch {
		case reason != nil:
			c.finish(nil, reason)
		case err != nil:
			c.finish(nil, err)
		default:
			e := *crash
			e.Task = c.task
			c.finish(nil, &e)
		}
	}
}

// withinSeg returns where b starts in seg, if it lies in it.
func withinSeg(seg *segment, b []byte) (int, bool) { return shm.Within(seg.s.Mem, b) }
