package procpool

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
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

// serveMany feeds calls to a many-slot worker until it must go. It sends
// carry first (calls taken for, or sent to, a process that broke before
// they started). It reports whether pr may be stopped gracefully, and
// returns the calls it took but could not send because pr broke first (the
// next process sends them).
func (p *Pool) serveMany(pr *process, carry []*call) (graceful bool, _ []*call) {
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
	// take waits for n free slots (false if pr or the pool ends first).
	take := func(n int) bool {
		for range n {
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
	// drain waits for the calls in flight to be answered.
	drain := func() bool { return take(pr.slots) }
	window := time.NewTimer(time.Hour) // queueWindow's end
	window.Stop()
	defer window.Stop()
	// idle waits, holding one slot, until pr holds no call: an ordered
	// worker's next call must not wait behind a long one.
	idle := func() bool {
		if !take(pr.slots - 1) {
			return false
		}
		for i := 1; i < pr.slots; i++ {
			free <- struct{}{}
		}
		return true
	}
	for {
		if max := p.cfg.MaxTasksPerWorker; max > 0 && pr.tasks >= max {
			pr.log.Debug("procpool: recycling worker", "tasks", pr.tasks)
			return drain(), carry
		}
		select {
		case <-free:
		case <-readerDone:
			return false, carry
		case <-p.aborting:
			return false, carry
		}
		var c *call
		if len(carry) > 0 {
			c, carry = carry[0], carry[1:]
		} else {
		take:
			for {
				// An ordered worker busy with a call that is not short
				// takes nothing from the queue until it is idle, and one
				// busy with a short call only until that call stops
				// looking short: another process may be free for the
				// next call.
				var expire <-chan time.Time
				if pr.ordered {
					d, ok := pr.queueWindow()
					if !ok {
						if !idle() {
							return false, nil
						}
						continue
					}
					if d > 0 {
						window.Reset(d)
						expire = window.C
					}
				}
				select {
				case c = <-p.queue:
					break take
				case <-expire:
					continue // look again
				case <-readerDone:
					return false, nil
				case <-p.aborting:
					return false, nil
				case <-p.closing:
					select {
					case c = <-p.queue: // keep serving until the queue is empty
						break take
					default:
						free <- struct{}{}
						return drain(), nil
					}
				}
			}
			window.Stop()
		}
		if pr.ordered && !pr.mayQueue(c) && !idle() {
			return false, append([]*call{c}, carry...)
		}
		switch p.sendMany(pr, c) {
		case sendSkipped:
			free <- struct{}{}
			continue
		case sendBroken:
			return false, append([]*call{c}, carry...)
		case sendFailed:
			return false, carry
		}
		pr.tasks++
	}
}

// queueWindow reports whether ordered worker pr may be sent a call now:
// it holds none, or its calls are short (on average, and the running one
// so far); and, if it holds calls, for how long that stays true at most
// (the running call stops looking short); 0: it holds none.
func (pr *process) queueWindow() (time.Duration, bool) {
	pr.wmu.Lock()
	defer pr.wmu.Unlock()
	if len(pr.order) == 0 {
		return 0, true
	}
	left := PipelineMaxCall - time.Since(pr.headAt)
	if pr.avgCall < 0 || pr.avgCall >= PipelineMaxCall || left <= 0 {
		return 0, false
	}
	return left, true
}

// mayQueue reports whether c may be sent to ordered worker pr now: as
// queueWindow says, and when pr holds calls, not a call whose argument is
// in shared memory (a call waiting in the pipe must be one a crash can
// send again).
func (pr *process) mayQueue(c *call) bool {
	d, ok := pr.queueWindow()
	return ok && (d == 0 || c.seg == nil)
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
	// A call sent again carries the flags of the worker that died.
	c.sending, c.sent, c.answered = false, false, false
	c.cancelReq, c.cancelSent, c.cancelTm, c.taskTm = false, false, nil, nil
	c.mu.Lock()
	c.proc = pr
	c.mu.Unlock()
	pr.wmu.Unlock()
	unregister := func() {
		pr.wmu.Lock()
		delete(pr.inflight, c.id)
		pr.wmu.Unlock()
	}
	if !c.started {
		c.precheck()
		if !c.Start(c) {
			unregister() // cancelled while queued
			return sendSkipped
		}
		c.started = true
	}
	if c.ctx.Err() != nil {
		unregister()
		c.finish(nil, context.Cause(c.ctx))
		return sendSkipped
	}
	if reason := c.stopReason(); reason != nil {
		unregister() // stopped while waiting to be sent again
		c.finish(nil, reason)
		return sendSkipped
	}
	pr.wmu.Lock()
	c.sending = true
	head := true
	if pr.ordered {
		// Its run time and timeout start when the calls before it are
		// answered (readMany).
		pr.order = append(pr.order, c)
		if head = len(pr.order) == 1; head {
			pr.headAt = time.Now()
		}
	}
	if p.cfg.TaskTimeout > 0 && head {
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
// A call queued behind others on an ordered worker gets its cancel frame at
// once (the worker skips it when it comes to it), but the kill waits until
// it has started: the worker cannot answer it sooner.
func (pr *process) cancelManyLocked(c *call) {
	if c.answered {
		return
	}
	if !c.cancelReq {
		c.cancelReq = true
		if !pr.ordered || (len(pr.order) > 0 && pr.order[0] == c) {
			pr.armCancelLocked(c)
		}
	}
	if !c.sent || c.cancelSent {
		return // sendMany sends the cancel once the call is written
	}
	c.cancelSent = true
	// Not here: the writer may be busy with a large argument.
	go func() {
		if err := pr.writeCancel(c.id); err != nil {
			pr.kill()
		}
	}()
}

func (pr *process) armCancelLocked(c *call) {
	c.cancelTm = time.AfterFunc(pr.grace, func() {
		pr.log.Warn("procpool: cancelled task did not stop in time; killing the worker and the calls it holds", "task", c.task, "grace", pr.grace)
		pr.kill()
	})
}

// dequeueLocked takes answered c off ordered worker pr's order. If c was
// running, its run time joins the average and the next call starts: its
// timeout, and the kill of a cancel asked for while it waited, are armed.
func (pr *process) dequeueLocked(c *call, timeout time.Duration) {
	i := slices.Index(pr.order, c)
	if i < 0 {
		return
	}
	pr.order = slices.Delete(pr.order, i, i+1)
	if i != 0 {
		return // answered out of order (it broke no rule of the pool's)
	}
	now := time.Now()
	if d := now.Sub(pr.headAt); pr.avgCall < 0 {
		pr.avgCall = d
	} else {
		pr.avgCall += (d - pr.avgCall) / 8
	}
	if len(pr.order) == 0 {
		return
	}
	h := pr.order[0]
	pr.headAt = now
	if timeout > 0 && h.taskTm == nil {
		h.taskTm = time.AfterFunc(timeout, func() { h.interrupt(ErrTaskTimeout) })
	}
	if h.cancelReq && h.cancelTm == nil {
		pr.armCancelLocked(h)
	}
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
			if pr.ordered {
				pr.dequeueLocked(c, p.cfg.TaskTimeout)
			}
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
// error every call fails with it, otherwise as crashed, except on an
// ordered worker, whose calls behind the running one never started: they
// wait in pr.resend for the next process (unless they carry a shared-memory
// argument, which the worker could have mapped).
func (p *Pool) failHeld(pr *process, err error) {
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
	aborted := false
	select {
	case <-p.aborting:
		aborted = true // the pool killed it: Close, or Shutdown's deadline
	default:
	}
	pr.wmu.Lock()
	pr.broken = true
	resend := map[*call]bool{}
	if pr.ordered && err == nil && !aborted {
		for i, c := range pr.order {
			if i > 0 && c.seg == nil && c.stopReason() == nil {
				resend[c] = true
			}
		}
	}
	pr.order = nil
	calls := make([]*call, 0, len(pr.inflight))
	for id, c := range pr.inflight {
		delete(pr.inflight, id)
		c.answered = true
		stopTimer(c.taskTm)
		stopTimer(c.cancelTm)
		if resend[c] {
			// From now on interrupt leaves c to the process that sends it
			// again.
			c.mu.Lock()
			c.proc = nil
			c.mu.Unlock()
			pr.resend = append(pr.resend, c)
			continue
		}
		calls = append(calls, c)
	}
	slices.SortFunc(pr.resend, func(a, b *call) int { return cmp.Compare(a.id, b.id) }) // in the order they came
	pr.wmu.Unlock()
	if len(calls) == 0 && len(resend) == 0 {
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
		pr.log.Warn("procpool: worker crashed", "calls", len(calls), "not_started", len(resend), "status", exitText(crash.ExitCode, crash.Signal))
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

// takeResend returns the calls pr's death left unstarted, once its reader
// has ended.
func (pr *process) takeResend() []*call {
	pr.wmu.Lock()
	defer pr.wmu.Unlock()
	r := pr.resend
	pr.resend = nil
	return r
}

// withinSeg returns where b starts in seg, if it lies in it.
func withinSeg(seg *segment, b []byte) (int, bool) { return shm.Within(seg.s.Mem, b) }
