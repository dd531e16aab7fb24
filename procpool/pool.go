package procpool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/internal/wire"
)

// Pool runs tasks in a fixed number of long-lived worker processes, one task
// at a time per process. Its methods are safe for concurrent use.
type Pool struct {
	cfg   Config
	jail  *jail // how the workers' descendants are found and killed
	queue chan *call
	ids   atomic.Uint64 // call ids
	wids  atomic.Int64  // worker ids

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

// Submit queues a task and returns its future. ctx governs the task: when it
// ends, a queued task is cancelled and a running one is asked to stop (its
// future then fails with ctx's error). Submit blocks while the queue is full.
func (p *Pool) Submit(ctx context.Context, task string, args []byte) (*future.Future[[]byte], error) {
	if task == "" || len(task) > wire.MaxNameLen {
		return nil, fmt.Errorf("procpool: invalid task name %q", task)
	}
	if len(args) > p.cfg.MaxPayload {
		return nil, fmt.Errorf("%w: %d-byte argument exceeds MaxPayload %d", ErrPayloadTooLarge, len(args), p.cfg.MaxPayload)
	}
	if err := ctx.Err(); err != nil {
		return nil, context.Cause(ctx)
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	if err := p.startErr; err != nil {
		p.mu.Unlock()
		return nil, err
	}
	p.submitters.Add(1)
	p.mu.Unlock()
	defer p.submitters.Done()

	c := &call{ctx: ctx, task: task, args: args, id: p.ids.Add(1)}
	if ctx.Done() != nil {
		c.stopCtx = context.AfterFunc(ctx, c.ctxDone)
	}
	select {
	case p.queue <- c:
		return c.Future(), nil
	case <-p.closing:
		c.finishUnqueued()
		return nil, ErrPoolClosed
	case <-ctx.Done():
		c.finishUnqueued()
		return nil, context.Cause(ctx)
	}
}

func (c *call) finishUnqueued() {
	if c.stopCtx != nil {
		c.stopCtx()
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

// closeJail releases the pool's cgroup or subreaper once every worker is
// reaped; later Shutdowns do nothing.
func (p *Pool) closeJail() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.jail.close()
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
		if c := pr.current.Load(); c != nil {
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
	for {
		if pr == nil {
			if p.drained() {
				return
			}
			var err error
			pr, err = p.spawn(p.life, p.nextWorkerID())
			if err != nil {
				if p.life.Err() != nil {
					return // aborted
				}
				p.startFailed(err)
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
		if p.serve(pr) {
			pr.stop(p.cfg.ShutdownGrace)
		} else {
			pr.kill()
			pr.reap()
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
