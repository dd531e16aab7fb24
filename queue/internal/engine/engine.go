// Package engine is the worker's machinery behind queue.Worker: the fetch
// loop, the runners that execute attempts, limits, and the background
// components (lease extender, acker, heartbeat, maintenance). The public
// queue package checks the configuration, routes tasks to handlers and
// decides how a failed attempt is recorded (Config.Failure); everything
// here is mechanism.
//
// # Policy, written down
//
//   - A fetch is never cut off by shutdown: a call cancelled mid-way could
//     lease tasks this worker never hears of, costing each an attempt.
//   - Prefetched tasks not yet started when the worker stops go back to
//     their queue without counting an attempt; so does an attempt
//     interrupted by shutdown, or one waiting too long for its kind's
//     limits.
//   - A handler's context carries the values of the ctx given to Start,
//     never its cancellation: it ends on the attempt's timeout or deadline,
//     a lost lease (cause broker.ErrLeaseLost), a cancel request (cause
//     broker.ErrTaskCancelled) or the end of a shutdown's grace period
//     (cause ErrShutdown).
//   - The outcome of an attempt whose lease was lost is dropped: the task
//     belongs to someone else now.
//   - A prefetched task that waited 250 ms or more is checked for a cancel
//     request before it starts (one lease renewal shared by every runner,
//     at most one per 250 ms); cancelled, it ends dead without running.
//     Cancels of tasks that waited less are seen at the next renewal.
//   - Prefetch adapts between Config.Prefetch and Config.MaxPrefetch: the
//     fetch loop keeps about 4 × Concurrency × (fetch time / attempt time)
//     tasks ahead of the runners (running averages of both), so short
//     tasks behind a slow broker do not leave runners idle, and long tasks
//     do not sit fetched with their leases running. Only attempts of kinds
//     without limits count: a limited kind's tasks wait for admission, and
//     fetching more of them ahead only makes them wait longer.
//   - Config.ShortConcurrency, when set above Concurrency, holds instead of
//     it while attempts take under 2 ms on average, one ended within the
//     last 2 ms and none has run for 10 ms (the slots and runners above
//     Concurrency are held back otherwise, like the prefetch's): short
//     tasks handed to something that queues them keep it fed, long ones
//     are not leased beyond what runs.
package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"cmp"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/internal/precheck"
	"github.com/conqhq/conq/internal/startstop"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/internal/acker"
	"github.com/conqhq/conq/queue/internal/backoff"
	"github.com/conqhq/conq/queue/internal/heartbeat"
	"github.com/conqhq/conq/queue/internal/lease"
	"github.com/conqhq/conq/queue/internal/maint"
)

// Config is a checked, defaulted worker configuration (queue.WorkerConfig
// fills it).
type Config struct {
	Broker         broker.Broker
	Queues         []string // by weight, highest first
	Weights        []int
	StrictPriority bool
	Concurrency    int
	// ShortConcurrency (>= Concurrency) holds instead while attempts are
	// short (see shortAttempt).
	ShortConcurrency int
	Prefetch         int // the least fetched ahead of free runners
	MaxPrefetch      int // the most; <= Prefetch: fixed at Prefetch

	Lease, ExtendInterval, ShutdownTimeout, DefaultTimeout, PollInterval time.Duration
	AckBatchSize                                                         int

	ForwardInterval, RecoverInterval, CleanupInterval time.Duration
	NoMaintenance                                     bool

	Limits    map[string]Limit
	LimitWait time.Duration

	WorkerID          string
	HeartbeatInterval time.Duration   // <= 0: none
	Kinds             func() []string // the kinds served, for Info; nil: unknown
	Logger            *slog.Logger

	// Handler runs one attempt. t has no lease fields (the lease is given
	// in Attempt); the handler must not change it.
	Handler func(ctx context.Context, t *broker.Task, a Attempt) ([]byte, error)
	// Failure decides how a failed attempt is recorded: its error, whether
	// the task is dead, and when it is retried otherwise. ctx is the
	// attempt's (to tell a timeout from the handler's own deadline error).
	Failure func(ctx context.Context, t *broker.Task, err error, now time.Time) (ae broker.AttemptError, dead bool, retryAt time.Time)
}

// Limit is queue.Limit, checked and with its Burst defaulted.
type Limit struct {
	Concurrency int
	Rate        float64
	Burst       int
}

// Attempt is what a handler may know of its lease.
type Attempt struct {
	Token     uint64 // the fencing token
	WorkerID  string
	StartedAt time.Time
}

// checkCancels looks for cancel requests of the tasks leased more than
// cancelCheckAfter ago (lease.Extender.CheckSince), before a task that
// waited starts: in the worker's prefetch (runOne), or in something it was
// handed to that queues it (procpool, for a worker process: the check a
// handler's attempt context carries, package precheck).
func (e *Engine) checkCancels() {
	if err := e.ext.CheckSince(e.hardCtx, time.Now().Add(-cancelCheckAfter)); err != nil {
		e.log.Debug("queue: checking waiting tasks for cancels failed; starting anyway", "err", err)
	}
}

// ErrShutdown is the cancel cause of handlers still running when a
// shutdown's grace period ends.
var ErrShutdown = errors.New("queue: worker shutting down")

// abandonAfter is how long Shutdown waits for handlers after cancelling
// them before it requeues their tasks and returns without them.
const abandonAfter = time.Second

// fetchCallTimeout bounds one Fetch call.
const fetchCallTimeout = 10 * time.Second

// job is a fetched task on its way to a handler.
type job struct {
	t       *broker.Task
	ref     broker.LeaseRef
	ctx     context.Context
	cancel  context.CancelCauseFunc
	fetched time.Time // when it was leased (wall clock, for cancelCheckAfter)
}

// cancelCheckAfter: a prefetched task that waited this long in the worker
// is checked for a cancel request before it starts (one shared lease
// renewal, lease.Extender.CheckSince), so a task cancelled while it sat in
// the prefetch buffer does not run. Shorter waits are not checked: that
// would cost a broker call per task.
const cancelCheckAfter = 250 * time.Millisecond

// Engine runs a worker.
type Engine struct {
	cfg   Config
	b     broker.Broker
	clock broker.Clock
	log   *slog.Logger

	fetcher    startstop.Base
	jobs       chan *job
	slots      chan struct{} // one per task fetched and not yet finished
	hardCtx    context.Context
	hardCancel context.CancelCauseFunc
	runners    sync.WaitGroup
	stopping   atomic.Bool // requeue fetched tasks instead of running them
	abandoned  atomic.Bool // outcomes of handlers still running are dropped

	ext   *lease.Extender
	ack   *acker.Acker
	maint []*maint.Periodic
	hb    *heartbeat.Heartbeat

	// Adaptive prefetch (see the package policy). reserve is how many
	// slots the fetch loop holds itself so that they hold no task: the
	// prefetch in effect is MaxPrefetch - reserve. fetchNS and attemptNS
	// are running averages (float64 bits, nanoseconds) of a Fetch that
	// returned tasks and of an attempt of an unlimited kind.
	reserve    int
	gate       gate                  // runners allowed a job: the concurrency in effect
	precheckFn func(context.Context) // checkCancels as precheck takes it, made once
	fetchNS    atomic.Uint64
	attemptNS  atomic.Uint64
	lastDone   atomic.Int64 // when an attempt of an unlimited kind last ended (Unix ns)

	startedAt time.Time
	runMu     sync.Mutex
	running   map[broker.LeaseRef]broker.RunningTask // attempts in their handler
}

// New returns an engine for cfg.
func New(cfg Config) *Engine {
	e := &Engine{cfg: cfg, b: cfg.Broker, clock: cfg.Broker.Clock(), log: cfg.Logger,
		running: make(map[broker.LeaseRef]broker.RunningTask)}
	e.precheckFn = func(context.Context) { e.checkCancels() }
	return e
}

// Start starts every component. ctx's values reach the handlers and the
// broker calls; its cancellation does not (Shutdown stops the engine).
func (e *Engine) Start(ctx context.Context) error {
	cfg := &e.cfg
	cfg.MaxPrefetch = max(cfg.MaxPrefetch, cfg.Prefetch)
	cfg.ShortConcurrency = max(cfg.ShortConcurrency, cfg.Concurrency)
	capacity := cfg.ShortConcurrency + cfg.MaxPrefetch
	e.jobs = make(chan *job, capacity)
	e.slots = make(chan struct{}, capacity)
	// Start at the least prefetch and at Concurrency: the slots above them
	// are held back.
	e.reserve = cfg.ShortConcurrency - cfg.Concurrency + cfg.MaxPrefetch - cfg.Prefetch
	for range e.reserve {
		e.slots <- struct{}{}
	}
	e.hardCtx, e.hardCancel = context.WithCancelCause(context.WithoutCancel(ctx))

	e.ext = &lease.Extender{Broker: e.b, Lease: cfg.Lease, Interval: cfg.ExtendInterval, Logger: e.log}
	e.ack = &acker.Acker{Broker: e.b, BatchSize: cfg.AckBatchSize, Logger: e.log, Settled: e.settled}
	if !cfg.NoMaintenance {
		e.maint = []*maint.Periodic{
			maint.NewForwarder(e.b, cfg.ForwardInterval, e.log),
			maint.NewRecoverer(e.b, cfg.RecoverInterval, e.log),
			maint.NewJanitor(e.b, cfg.CleanupInterval, e.log),
		}
	}
	e.startedAt = e.clock.Now()
	if cfg.HeartbeatInterval > 0 && e.b.Capabilities().Has(broker.CapWorkers) {
		ttl := 3 * cfg.HeartbeatInterval
		e.hb = heartbeat.New("heartbeat", cfg.HeartbeatInterval,
			func(ctx context.Context) error { return e.b.Heartbeat(ctx, e.Info(), ttl) },
			func(ctx context.Context) error { return e.b.RemoveWorker(ctx, cfg.WorkerID) },
			e.log)
	}
	errs := []error{e.ext.Start(ctx), e.ack.Start(ctx)}
	if e.hb != nil {
		errs = append(errs, e.hb.Start(ctx))
	}
	for _, p := range e.maint {
		errs = append(errs, p.Start(ctx))
	}
	e.gate.on = cfg.ShortConcurrency > cfg.Concurrency
	e.gate.limit = cfg.Concurrency
	e.gate.cond.L = &e.gate.mu
	for range cfg.ShortConcurrency {
		e.runners.Add(1)
		go e.run()
	}
	errs = append(errs, e.fetcher.Start(ctx, e.fetch))
	return errors.Join(errs...)
}

// Info describes the worker as its heartbeat publishes it: the tasks
// listed are those whose handler is running.
func (e *Engine) Info() broker.WorkerInfo {
	host, _ := os.Hostname()
	info := broker.WorkerInfo{
		ID: e.cfg.WorkerID, Host: host, PID: os.Getpid(), Queues: slices.Clone(e.cfg.Queues),
		Concurrency: e.cfg.Concurrency, StartedAt: e.startedAt, HeartbeatAt: e.clock.Now(),
	}
	if e.cfg.Kinds != nil {
		info.Kinds = e.cfg.Kinds()
	}
	e.runMu.Lock()
	info.Running = make([]broker.RunningTask, 0, len(e.running))
	for _, rt := range e.running {
		info.Running = append(info.Running, rt)
	}
	e.runMu.Unlock()
	slices.SortFunc(info.Running, func(a, b broker.RunningTask) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	return info
}

// fetch leases tasks whenever a slot is free and hands them to runners.
func (e *Engine) fetch(ctx context.Context) {
	var bo backoff.Backoff
	for {
		e.adjustPrefetch()
		// Block for one free slot, then take what else is free.
		select {
		case e.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < cap(e.slots) {
			select {
			case e.slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		// Not cancelled by shutdown (see the package policy).
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchCallTimeout)
		began := time.Now()
		tasks, err := e.b.Fetch(callCtx, broker.FetchParams{Queues: e.order(), Max: n, Lease: e.cfg.Lease, WorkerID: e.cfg.WorkerID})
		if err == nil && len(tasks) > 0 {
			observe(&e.fetchNS, time.Since(began))
		}
		cancel()
		for range n - len(tasks) {
			<-e.slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := bo.Next()
			e.log.Error("queue: fetching tasks failed; retrying", "err", err, "retry_in", d)
			if !backoff.Sleep(ctx, d) {
				return
			}
			continue
		}
		bo.Reset()
		for _, t := range tasks {
			j := &job{t: t, ref: t.Ref(), fetched: time.Now()}
			// Handlers see no lease internals: the lease is in j.ref.
			t.Token, t.LeaseUntil, t.WorkerID = 0, time.Time{}, ""
			j.ctx, j.cancel = context.WithCancelCause(e.hardCtx)
			j.ctx = precheck.With(j.ctx, e.precheckFn)
			e.ext.Add(j.ref, j.cancel)
			e.jobs <- j // never blocks: a slot is held for it
		}
		if len(tasks) == 0 {
			if err := e.b.WaitReady(ctx, broker.WaitParams{Queues: e.cfg.Queues, Max: e.cfg.PollInterval}); err != nil && ctx.Err() == nil {
				d := bo.Next()
				e.log.Error("queue: waiting for tasks failed; retrying", "err", err, "retry_in", d)
				if !backoff.Sleep(ctx, d) {
					return
				}
			}
		}
	}
}

// adjustPrefetch moves the prefetch in effect towards prefetchTarget by
// taking slots from the reserve or giving them back. Only the fetch loop
// calls it. Shrinking waits for free slots: tasks already fetched stay.
func (e *Engine) adjustPrefetch() {
	c := e.concurrency()
	e.gate.setLimit(c)
	want := e.cfg.ShortConcurrency - c + e.cfg.MaxPrefetch - e.prefetchTarget() // the reserve wanted
	for e.reserve > want {
		<-e.slots // never blocks: the reserve's own slots are in there
		e.reserve--
	}
	for e.reserve < want {
		select {
		case e.slots <- struct{}{}:
			e.reserve++
		default:
			return
		}
	}
}

// gate lets at most limit runners hold a job, if on (set before the
// runners start).
type gate struct {
	on    bool
	mu    sync.Mutex
	cond  sync.Cond
	limit int
	used  int
}

func (g *gate) acquire() {
	if !g.on {
		return
	}
	g.mu.Lock()
	for g.used >= g.limit {
		g.cond.Wait()
	}
	g.used++
	g.mu.Unlock()
}

func (g *gate) release() {
	if !g.on {
		return
	}
	g.mu.Lock()
	g.used--
	g.cond.Signal()
	g.mu.Unlock()
}

func (g *gate) setLimit(n int) {
	if !g.on {
		return
	}
	g.mu.Lock()
	if n > g.limit {
		g.cond.Broadcast()
	}
	g.limit = n
	g.mu.Unlock()
}

// Attempts shorter than shortAttempt on average, one ending within the
// last shortAttempt and none running for longRunning, let ShortConcurrency
// hold. Handlers that queue tasks (the reason for ShortConcurrency) make an
// attempt's time include its wait, and a loaded host stretches it: both
// bounds leave room for that.
const (
	shortAttempt = 2 * time.Millisecond
	longRunning  = 10 * time.Millisecond
)

// concurrency is the concurrency in effect: ShortConcurrency while
// attempts are short, else Concurrency.
func (e *Engine) concurrency() int {
	c := e.cfg.Concurrency
	if e.cfg.ShortConcurrency == c {
		return c
	}
	if avg := math.Float64frombits(e.attemptNS.Load()); avg <= 0 || avg >= float64(shortAttempt) {
		return c
	}
	if time.Since(time.Unix(0, e.lastDone.Load())) > shortAttempt {
		return c // no attempt ended lately: what runs now may be long, and new tasks wait for it
	}
	since := e.clock.Now().Add(-longRunning)
	e.runMu.Lock()
	defer e.runMu.Unlock()
	for _, rt := range e.running {
		if rt.StartedAt.Before(since) {
			return c // a long one is running: what comes next may be as long
		}
	}
	return e.cfg.ShortConcurrency
}

// prefetchTarget is the prefetch the averages call for: enough tasks to
// keep every runner busy through four fetches.
func (e *Engine) prefetchTarget() int {
	lo, hi := e.cfg.Prefetch, e.cfg.MaxPrefetch
	if lo >= hi {
		return lo
	}
	fetch := math.Float64frombits(e.fetchNS.Load())
	attempt := math.Float64frombits(e.attemptNS.Load())
	if fetch <= 0 || attempt <= 0 {
		return lo
	}
	want := math.Ceil(4 * float64(e.cfg.Concurrency) * fetch / attempt)
	if want >= float64(hi) {
		return hi
	}
	return max(lo, int(want))
}

// observe folds d into the running average at avg (weight 1/16).
func observe(avg *atomic.Uint64, d time.Duration) {
	for {
		old := avg.Load()
		v := math.Float64frombits(old)
		if v == 0 {
			v = float64(d)
		} else {
			v += (float64(d) - v) / 16
		}
		if avg.CompareAndSwap(old, math.Float64bits(v)) {
			return
		}
	}
}

func (e *Engine) run() {
	defer e.runners.Done()
	for j := range e.jobs {
		// Only the concurrency in effect may run jobs: a runner above it
		// (ShortConcurrency) waits here with its job, which counts as
		// fetched ahead (its cancel is checked before it starts).
		e.gate.acquire()
		e.runOne(j)
		e.gate.release()
	}
}

func (e *Engine) runOne(j *job) {
	if e.stopping.Load() {
		e.requeue(j)
		<-e.slots
		return
	}
	if time.Since(j.fetched) >= cancelCheckAfter {
		e.checkCancels()
	}
	e.process(j)
	<-e.slots
}

func (e *Engine) requeue(j *job) {
	j.cancel(nil)
	e.ext.Settling(j.ref)
	if !e.ack.Push(acker.Item{Op: acker.OpRequeue, Ref: j.ref}) {
		e.ext.Remove(j.ref)
	}
}

// settled is called by the acker once the broker has recorded an outcome.
func (e *Engine) settled(it *acker.Item, err error) {
	e.ext.Remove(it.Ref)
	switch {
	case err == nil:
	case errors.Is(err, broker.ErrLeaseLost):
		e.log.Warn("queue: task lease was lost before its outcome was recorded; another worker may run it again",
			"queue", it.Ref.Queue, "task_id", it.Ref.ID, "err", err)
	default:
		e.log.Error("queue: recording task outcome failed", "queue", it.Ref.Queue, "task_id", it.Ref.ID, "err", err)
	}
}

// process runs one attempt and records its outcome.
func (e *Engine) process(j *job) {
	t := j.t
	defer j.cancel(nil)
	if errors.Is(context.Cause(j.ctx), broker.ErrLeaseLost) {
		e.log.Warn("queue: skipping a prefetched task whose lease was lost", "queue", t.Queue, "task_id", t.ID, "kind", t.Kind)
		return
	}
	if errors.Is(context.Cause(j.ctx), broker.ErrTaskCancelled) {
		e.fail(j, broker.AttemptError{Kind: broker.ErrorKindCancelled, Message: "cancelled before the attempt started"}, true, time.Time{})
		return
	}
	release, ok := e.admit(j)
	if !ok {
		e.requeue(j) // limited: back to the queue, no attempt counted
		return
	}
	defer release()
	now := e.clock.Now()
	e.runMu.Lock()
	e.running[j.ref] = broker.RunningTask{ID: t.ID, Queue: t.Queue, Kind: t.Kind, StartedAt: now}
	e.runMu.Unlock()
	defer func() {
		e.runMu.Lock()
		delete(e.running, j.ref)
		e.runMu.Unlock()
	}()
	if !t.Deadline.IsZero() && !now.Before(t.Deadline) {
		e.fail(j, broker.AttemptError{Kind: "deadline", Message: fmt.Sprintf("deadline %s passed before the attempt started", t.Deadline.Format(time.RFC3339Nano))}, true, time.Time{})
		return
	}
	ctx := j.ctx
	timeout := t.Timeout
	if timeout == 0 {
		timeout = e.cfg.DefaultTimeout
	}
	if !t.Deadline.IsZero() {
		if left := t.Deadline.Sub(now); timeout == 0 || left < timeout {
			timeout = left
		}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	began := time.Now()
	result, err := e.call(ctx, t, Attempt{Token: j.ref.Token, WorkerID: e.cfg.WorkerID, StartedAt: now})
	if _, limited := e.cfg.Limits[t.Kind]; !limited {
		end := time.Now()
		observe(&e.attemptNS, end.Sub(began))
		e.lastDone.Store(end.UnixNano())
	}

	if e.abandoned.Load() {
		return // Shutdown has requeued it already
	}
	if cause := context.Cause(j.ctx); cause != nil && errors.Is(cause, broker.ErrLeaseLost) {
		e.log.Warn("queue: dropping the outcome of a task whose lease was lost", "queue", t.Queue, "task_id", t.ID, "kind", t.Kind, "err", err)
		return
	}
	if errors.Is(context.Cause(j.ctx), broker.ErrTaskCancelled) {
		// Dead whatever the handler returned: the task was cancelled.
		msg := "cancelled while running"
		if err != nil {
			msg += ": " + err.Error()
		}
		e.fail(j, broker.AttemptError{Kind: broker.ErrorKindCancelled, Message: msg}, true, time.Time{})
		return
	}
	if err == nil {
		e.ext.Settling(j.ref)
		e.ack.Push(acker.Item{Op: acker.OpComplete, Ref: j.ref, Result: result})
		return
	}
	if errors.Is(context.Cause(j.ctx), ErrShutdown) {
		e.requeue(j) // interrupted by shutdown: not the task's fault
		return
	}
	ae, dead, retryAt := e.cfg.Failure(ctx, t, err, e.clock.Now())
	e.fail(j, ae, dead, retryAt)
}

// call runs the handler, turning a panic into a *future.PanicError.
func (e *Engine) call(ctx context.Context, t *broker.Task, a Attempt) (result []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			result, err = nil, future.NewPanicError(v)
		}
	}()
	return e.cfg.Handler(ctx, t, a)
}

func (e *Engine) fail(j *job, ae broker.AttemptError, dead bool, retryAt time.Time) {
	t := j.t
	ae.Attempt = t.Attempts + 1
	ae.At = e.clock.Now()
	attrs := []any{"queue", t.Queue, "task_id", t.ID, "kind", t.Kind, "attempt", ae.Attempt, "error_kind", ae.Kind, "err", ae.Message}
	if dead {
		e.log.Error("queue: task failed; it is dead", attrs...)
	} else {
		e.log.Warn("queue: task failed; it will be retried", append(attrs, "retry_at", retryAt)...)
	}
	f := broker.Failure{Error: ae, Dead: dead, RetryAt: retryAt}
	e.ext.Settling(j.ref)
	if !e.ack.Push(acker.Item{Op: acker.OpFail, Ref: j.ref, Failure: f}) {
		e.ext.Remove(j.ref)
	}
}

// Shutdown stops the engine as queue.Worker.Shutdown documents.
func (e *Engine) Shutdown(ctx context.Context) error {
	e.log.Info("queue: worker shutting down")
	e.stopping.Store(true)
	_ = e.fetcher.Stop(context.WithoutCancel(ctx)) // a fetch in flight is waited for
	close(e.jobs)
	// Requeue what was fetched and not started; the runners do the same.
	for j := range e.jobs {
		e.requeue(j)
		<-e.slots
	}

	runnersDone := make(chan struct{})
	go func() { e.runners.Wait(); close(runnersDone) }()
	grace := time.NewTimer(e.cfg.ShutdownTimeout)
	defer grace.Stop()
	select {
	case <-runnersDone:
	case <-grace.C:
	case <-ctx.Done():
	}
	select {
	case <-runnersDone:
	default:
		e.log.Warn("queue: shutdown grace period over; cancelling running tasks")
		e.hardCancel(ErrShutdown)
		wait := time.NewTimer(abandonAfter)
		defer wait.Stop()
		select {
		case <-runnersDone:
		case <-wait.C:
			e.abandon()
		case <-ctx.Done():
			e.abandon()
		}
	}
	e.hardCancel(ErrShutdown)

	var errs []error
	if err := e.ack.Stop(ctx); err != nil {
		errs = append(errs, fmt.Errorf("queue: recording outcomes: %w", err))
	}
	if err := e.ext.Stop(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, p := range e.maint {
		if err := p.Stop(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if e.hb != nil {
		if err := e.hb.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("queue: removing the worker's heartbeat: %w", err))
		}
	}
	e.log.Info("queue: worker stopped")
	return errors.Join(errs...)
}

// abandon requeues the tasks of handlers that ignored cancellation.
func (e *Engine) abandon() {
	e.abandoned.Store(true)
	held := e.ext.Held()
	e.log.Error("queue: handlers ignored cancellation; requeueing their tasks and leaving them behind", "tasks", len(held))
	for _, ref := range held {
		e.ack.Push(acker.Item{Op: acker.OpRequeue, Ref: ref})
	}
}
