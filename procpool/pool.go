package procpool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"encoding/binary"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/internal/wire"
)

// Pool runs tasks in a fixed number of long-lived worker processes, one task
// at a time per process. Its methods are safe for concurrent use.
type Pool struct {
	cfg   Config
	jail  *jail // how the workers' descendants are found and killed
	shm   *shmPool
	queue chan *call
	ids   atomic.Uint64 // call ids
	wids  atomic.Int64  // worker ids
	// resent counts calls sent again after an ordered worker died before
	// starting them (tests read it).
	resent atomic.Int64

	life     context.Context // ends when the pool is aborted
	lifeStop context.CancelFunc

	mu          sync.Mutex
	closed      bool
	closing     chan struct{} // closed by Shutdown: no new tasks
	aborting    chan struct{} // closed when Shutdown's ctx ends: kill everything
	aborted     bool
	procs       map[*process]struct{}
	startFails  int   // consecutive failed starts
	startErr    error // set while the pool cannot start any worker
	submitters  sync.WaitGroup
	supervisors sync.WaitGroup
}

// New starts the workers and waits until each has completed its handshake.
// If any cannot start, the others are stopped and the *StartError returned.
func New(ctx context.Context, cfg Config) (*Pool, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	p := &Pool{
		cfg:      cfg,
		queue:    make(chan *call, cfg.QueueSize),
		closing:  make(chan struct{}),
		aborting: make(chan struct{}),
		procs:    make(map[*process]struct{}),
	}
	jail, err := newJail(cfg.Containment, cfg.Logger)
	if err != nil {
		return nil, err
	}
	p.jail = jail
	p.shm = newShmPool(cfg.ShmThreshold)
	p.life, p.lifeStop = context.WithCancel(context.Background())
	startCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	procs := make([]*process, cfg.Workers)
	errs := make([]error, cfg.Workers)
	var wg sync.WaitGroup
	for i := range procs {
		wg.Go(func() {
			procs[i], errs[i] = p.spawn(startCtx, p.nextWorkerID())
			if errs[i] != nil {
				cancel() // one failure fails New; do not wait for the rest
			}
		})
	}
	wg.Wait()
	if err := firstReal(errs, ctx); err != nil {
		for _, pr := range procs {
			if pr != nil {
				pr.stop(0)
			}
		}
		p.lifeStop()
		p.jail.close()
		p.shm.close()
		return nil, err
	}
	for _, pr := range procs {
		p.procs[pr] = struct{}{}
		p.supervisors.Go(func() { p.supervise(pr) })
	}
	return p, nil
}

// firstReal returns the error that made New fail, preferring a worker's own
// failure over the cancellations it caused in the others.
func firstReal(errs []error, ctx context.Context) error {
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		var se *StartError
		if errors.As(err, &se) && se.Err != nil && errors.Is(se.Err, context.Canceled) && ctx.Err() == nil {
			if first == nil {
				first = err
			}
			continue
		}
		return err
	}
	return first
}

func (p *Pool) nextWorkerID() int { return int(p.wids.Add(1)) }

// Workers returns the configured number of worker processes.
func (p *Pool) Workers() int { return p.cfg.Workers }

// Slots returns how many calls the pool's live workers take at once in
// all: the sum of the slots they announced (1 for protocol 1 workers), or
// Workers while none is live. Windows of calls in flight (Map, conq map)
// size themselves with it.
func (p *Pool) Slots() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for pr := range p.procs {
		n += pr.slots
	}
	return max(n, p.cfg.Workers)
}

// Ordered reports whether a live worker runs its calls one at a time in
// order with calls queued behind the running one (feature "ordered", with
// a Pipeline above 1): Slots then counts the calls queued too, and a
// caller that wants those workers busy keeps that many calls submitted.
func (p *Pool) Ordered() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for pr := range p.procs {
		if pr.ordered {
			return true
		}
	}
	return false
}

// Tasks returns the task names the live workers announced in their ready
// frames, sorted, or nil if any of them announced none (or none is live):
// then the pool cannot tell what it serves. queue/procexec publishes them
// as the queue worker's kinds.
func (p *Pool) Tasks() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for pr := range p.procs {
		if len(pr.names) == 0 {
			return nil
		}
		out = append(out, pr.names...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// Submit queues a task and returns its future. ctx governs the task: when it
// ends, a queued task is cancelled and a running one is asked to stop (its
// future then fails with ctx's error). Submit blocks while the queue is full.
//
// An argument of Config.ShmThreshold bytes or more is copied into a
// shared-memory segment for workers that map them (one copy instead of the
// pipe's two); NewBuffer and SubmitBuffer avoid that copy too.
func (p *Pool) Submit(ctx context.Context, task string, args []byte) (*future.Future[[]byte], error) {
	return p.submitBytes(ctx, task, args, nil, true)
}

// TrySubmit is Submit without blocking: it returns ErrQueueFull when the
// queue has no room.
func (p *Pool) TrySubmit(ctx context.Context, task string, args []byte) (*future.Future[[]byte], error) {
	return p.submitBytes(ctx, task, args, nil, false)
}

// Meta describes a call for workers that take it (protocol 2, feature
// "meta"; the Go SDK's worker.CallInfo): what a task queue knows about the
// task. queue/procexec fills it from the queue's task.
type Meta struct {
	TaskID     string
	Kind       string
	Queue      string
	Attempt    int       // 1-based; 0: not set
	MaxRetries int       // retries after the first attempt
	Deadline   time.Time // zero: none
	Encoding   string    // the payload's encoding: raw, json or args
}

// encode returns the META part of a call's payload.
func (m *Meta) encode() ([]byte, error) {
	w := wire.Meta{TaskID: m.TaskID, Kind: m.Kind, Queue: m.Queue, Attempt: m.Attempt, Encoding: m.Encoding}
	retries := m.MaxRetries
	w.MaxRetries = &retries
	if !m.Deadline.IsZero() {
		w.Deadline = m.Deadline.Format(time.RFC3339Nano)
	}
	// The length prefix first, the object after it, in one allocation.
	b := make([]byte, wire.MetaPrefixSize, 160)
	b = w.AppendJSON(b)
	binary.BigEndian.PutUint32(b, uint32(len(b)-wire.MetaPrefixSize))
	return b, nil
}

// SubmitMeta is Submit with a description of the call, sent to workers
// that take it; meta may be nil.
func (p *Pool) SubmitMeta(ctx context.Context, task string, args []byte, meta *Meta) (*future.Future[[]byte], error) {
	return p.submitBytes(ctx, task, args, meta, true)
}

func (p *Pool) submitBytes(ctx context.Context, task string, args []byte, meta *Meta, block bool) (*future.Future[[]byte], error) {
	if len(args) > p.cfg.MaxPayload {
		return nil, fmt.Errorf("%w: %d-byte argument exceeds MaxPayload %d", ErrPayloadTooLarge, len(args), p.cfg.MaxPayload)
	}
	c := &call{ctx: ctx, task: task, args: args}
	if err := p.prepare(c, meta); err != nil {
		return nil, err
	}
	if p.shm.wanted.Load() && p.shm.use(len(args)) {
		seg, err := p.shm.get(len(args))
		if err == nil {
			copy(seg.s.Mem, args)
			c.seg, c.segLen, c.args = seg, len(args), nil
		} else {
			p.cfg.Logger.Warn("procpool: no shared memory for a large argument; sending it through the pipe", "err", err)
		}
	}
	if err := p.submit(ctx, c, block); err != nil {
		return nil, err
	}
	return c.Future(), nil
}

func (p *Pool) prepare(c *call, meta *Meta) error {
	if c.task == "" || len(c.task) > wire.MaxNameLen {
		return fmt.Errorf("procpool: invalid task name %q", c.task)
	}
	if meta != nil {
		var err error
		if c.meta, err = meta.encode(); err != nil {
			return fmt.Errorf("procpool: encoding the META of %q: %w", c.task, err)
		}
	}
	return nil
}

// submit queues c, waiting for room if block; on failure c's segment is
// let go.
func (p *Pool) submit(ctx context.Context, c *call, block bool) error {
	fail := func(err error) error {
		c.finishUnqueued()
		return err
	}
	if err := ctx.Err(); err != nil {
		return fail(context.Cause(ctx))
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return fail(ErrPoolClosed)
	}
	if err := p.startErr; err != nil {
		p.mu.Unlock()
		return fail(err)
	}
	p.submitters.Add(1)
	p.mu.Unlock()
	defer p.submitters.Done()

	c.id = p.ids.Add(1)
	if ctx.Done() != nil {
		c.stopCtx = context.AfterFunc(ctx, c.ctxDone)
		c.queued = time.Now() // a ctx that can end may carry a precheck
	}
	select {
	case p.queue <- c:
		return nil
	default:
	}
	if !block {
		return fail(ErrQueueFull)
	}
	select {
	case p.queue <- c:
		return nil
	case <-p.closing:
		return fail(ErrPoolClosed)
	case <-ctx.Done():
		return fail(context.Cause(ctx))
	}
}

// NewBuffer returns size bytes to fill with an argument for SubmitBuffer:
// shared memory if size reaches Config.ShmThreshold and the platform has it,
// the heap otherwise. Release it if it is not submitted.
func (p *Pool) NewBuffer(size int) (*Buffer, error) {
	if size < 0 || size > p.cfg.MaxPayload {
		return nil, fmt.Errorf("%w: %d-byte buffer, MaxPayload is %d", ErrPayloadTooLarge, size, p.cfg.MaxPayload)
	}
	if !p.shm.use(size) {
		return newBuffer(make([]byte, size), nil), nil
	}
	seg, err := p.shm.get(size)
	if err != nil {
		return nil, fmt.Errorf("procpool: %w", err)
	}
	return newBuffer(seg.s.Mem[:size], &bufHold{seg: seg}), nil
}

// SubmitBuffer is Submit with the argument in a Buffer, which it takes
// over (do not use or release arg afterwards), and the result as a Buffer,
// which the caller must release. Between a worker that maps shared memory
// and a pool on Linux, neither is copied: the worker reads the argument in
// the pool's segment and writes its result in its own, or answers with its
// argument's segment.
func (p *Pool) SubmitBuffer(ctx context.Context, task string, arg *Buffer, meta *Meta) (*future.Future[*Buffer], error) {
	h, b := arg.take()
	c := &call{ctx: ctx, task: task, asBuf: true}
	switch {
	case h != nil && h.seg != nil:
		c.seg, c.segOff, c.segLen = h.seg, 0, len(b)
		if off, ok := withinSeg(h.seg, b); ok {
			c.segOff = off
		}
	case h != nil:
		// A worker's segment (a result passed on): the next worker gets a
		// copy in one of the pool's.
		c.args = append([]byte(nil), b...)
		h.release()
	default:
		c.args = b
	}
	if err := p.prepare(c, meta); err != nil {
		c.finishUnqueued()
		return nil, err
	}
	if err := p.submit(ctx, c, true); err != nil {
		return nil, err
	}
	out := new(future.Promise[*Buffer])
	out.Start(stopperFunc(func() { c.Future().Cancel() }))
	c.Future().OnDone(func(_ []byte, err error) {
		if !out.Resolve(c.buf, err) && c.buf != nil {
			c.buf.Release()
		}
	})
	return out.Future(), nil
}

// CallBuffer is SubmitBuffer followed by waiting for the result.
func (p *Pool) CallBuffer(ctx context.Context, task string, arg *Buffer) (*Buffer, error) {
	f, err := p.SubmitBuffer(ctx, task, arg, nil)
	if err != nil {
		return nil, err
	}
	return f.Result(ctx)
}

func (c *call) finishUnqueued() {
	if c.stopCtx != nil {
		c.stopCtx()
	}
	if c.seg != nil {
		c.seg.put()
		c.seg = nil
	}
}

// Call submits a task and waits for its result.
func (p *Pool) Call(ctx context.Context, task string, args []byte) ([]byte, error) {
	f, err := p.Submit(ctx, task, args)
	if err != nil {
		return nil, err
	}
	return f.Result(ctx)
}

// Shutdown stops accepting tasks, lets the queued and running ones finish,
// then stops the workers and waits for them to exit. If ctx ends first, the
// running tasks fail with ErrPoolClosed, the workers are killed, queued
// tasks fail with ErrPoolClosed and Shutdown returns ctx's error once every
// process has been reaped.
func (p *Pool) Shutdown(ctx context.Context) error {
	p.mu.Lock()
	if !p.closed {
		p.closed = true
		close(p.closing)
	}
	p.mu.Unlock()
	p.submitters.Wait() // every Submit has either queued its task or given up

	done := make(chan struct{})
	go func() { p.supervisors.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		p.abort()
		<-done
	}
	p.failQueued(ErrPoolClosed)
	p.lifeStop()
	p.closeJail()
	return err
}

// closeJail releases the pool's cgroup or subreaper and its spare
// shared-memory segments once every worker is reaped; later Shutdowns do
// nothing.
func (p *Pool) closeJail() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jail.close()
	p.shm.close()
}

// Close stops the pool at once: running and queued tasks fail with
// ErrPoolClosed and the workers are killed and reaped.
func (p *Pool) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = p.Shutdown(ctx)
	return nil
}

func (p *Pool) abort() {
	p.mu.Lock()
	if !p.aborted {
		p.aborted = true
		close(p.aborting)
	}
	procs := make([]*process, 0, len(p.procs))
	for pr := range p.procs {
		procs = append(procs, pr)
	}
	p.mu.Unlock()
	p.lifeStop() // interrupts starts in progress
	for _, pr := range procs {
		for _, c := range pr.held() {
			c.mu.Lock()
			if c.reason == nil {
				c.reason = ErrPoolClosed
			}
			c.mu.Unlock()
		}
		pr.kill()
	}
}

func (p *Pool) failQueued(err error) {
	for {
		select {
		case c := <-p.queue:
			if c.Start(nil) {
				c.finish(nil, err)
			}
		default:
			return
		}
	}
}

// supervise runs one worker slot: serve tasks with a process, replace it when
// it dies or is recycled, back off when it cannot be started.
func (p *Pool) supervise(pr *process) {
	backoff := p.cfg.RestartBackoff
	// carry: calls taken from the queue for a process that broke before it
	// was sent them, and calls an ordered worker died before starting; the
	// next process sends them first.
	var carry []*call
	failCarry := func(err error) {
		for _, c := range carry {
			if c.started || c.Start(nil) {
				c.finish(nil, err)
			}
		}
		carry = nil
	}
	defer func() { failCarry(ErrPoolClosed) }()
	for {
		if pr == nil {
			if p.drained() && len(carry) == 0 {
				return
			}
			select {
			case <-p.aborting:
				return
			default:
			}
			var err error
			pr, err = p.spawn(p.life, p.nextWorkerID())
			if err != nil {
				if p.life.Err() != nil {
					return // aborted
				}
				p.startFailed(err)
				if err := p.brokenErr(); err != nil {
					failCarry(err) // as backoff fails the queued ones
				}
				if !p.backoff(backoff) {
					return
				}
				backoff = min(2*backoff, p.cfg.MaxRestartBackoff)
				continue
			}
			if !p.track(pr) {
				pr.kill()
				pr.reap()
				return
			}
			backoff = p.cfg.RestartBackoff
		}
		var graceful bool
		if pr.slots > 1 {
			graceful, carry = p.serveMany(pr, carry)
		} else {
			healthy := true
			for healthy && len(carry) > 0 {
				c := carry[0]
				carry = carry[1:]
				if healthy = p.run(pr, c); healthy {
					pr.tasks++
				}
			}
			graceful = healthy && p.serve(pr)
		}
		if graceful {
			pr.stop(p.cfg.ShutdownGrace)
		} else {
			pr.kill()
			pr.reap()
		}
		if r := pr.takeResend(); len(r) > 0 {
			p.resent.Add(int64(len(r)))
			carry = append(r, carry...)
		}
		p.untrack(pr)
		pr = nil
	}
}

// drained reports whether a slot may exit: the pool is aborting, or closing
// with nothing left in the queue.
func (p *Pool) drained() bool {
	select {
	case <-p.aborting:
		return true
	case <-p.closing:
		return len(p.queue) == 0
	default:
		return false
	}
}

// serve feeds tasks to pr until it must go; it reports whether pr may be
// stopped gracefully (recycling, shutdown) rather than killed.
func (p *Pool) serve(pr *process) bool {
	for {
		var c *call
		select {
		case c = <-p.queue:
		case <-pr.exited:
			code, sig := pr.exitStatus()
			pr.log.Warn("procpool: idle worker exited", "status", exitText(code, sig), "stderr", pr.stderr.lines())
			return false
		case <-p.aborting:
			return false
		case <-p.closing:
			select {
			case c = <-p.queue: // keep serving until the queue is empty
			default:
				return true
			}
		}
		if !p.run(pr, c) {
			return false
		}
		pr.tasks++
		if max := p.cfg.MaxTasksPerWorker; max > 0 && pr.tasks >= max {
			pr.log.Debug("procpool: recycling worker", "tasks", pr.tasks)
			return true
		}
	}
}

func (p *Pool) track(pr *process) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.aborted {
		return false
	}
	p.procs[pr] = struct{}{}
	p.startFails = 0
	if p.startErr != nil {
		p.cfg.Logger.Info("procpool: workers start again")
		p.startErr = nil
	}
	return true
}

func (p *Pool) untrack(pr *process) {
	p.mu.Lock()
	delete(p.procs, pr)
	p.mu.Unlock()
}

func (p *Pool) startFailed(err error) {
	p.mu.Lock()
	p.startFails++
	broken := p.startFails >= p.cfg.MaxStartFailures && len(p.procs) == 0
	if broken {
		p.startErr = err
	}
	fails := p.startFails
	p.mu.Unlock()
	p.cfg.Logger.Error("procpool: worker failed to start", "err", err, "consecutive", fails, "failing_tasks", broken)
}

func (p *Pool) brokenErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.startErr
}

// backoff sleeps d before the next start attempt; while the pool is broken
// it fails queued tasks with the start error rather than letting them wait.
// It reports false if the slot should exit.
func (p *Pool) backoff(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		var queue chan *call
		err := p.brokenErr()
		if err != nil {
			queue = p.queue
		}
		select {
		case <-t.C:
			return true
		case <-p.aborting:
			return false
		case <-p.closing:
			if err != nil {
				p.failQueued(err)
			}
			return false
		case c := <-queue:
			if c.Start(nil) {
				c.finish(nil, err)
			}
		}
	}
}
