package queue

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/internal/acker"
	"github.com/conqhq/conq/queue/internal/backoff"
	"github.com/conqhq/conq/queue/internal/heartbeat"
	"github.com/conqhq/conq/queue/internal/lease"
	"github.com/conqhq/conq/queue/internal/maint"
)

// WorkerConfig configures a Worker. The zero value is ready to use.
type WorkerConfig struct {
	// Queues to take tasks from, with weights: a queue of weight 3 is tried
	// first three times as often as one of weight 1. Default {"default": 1}.
	Queues map[string]int
	// StrictPriority takes tasks from the queue of highest weight while it
	// has any, instead of weighting.
	StrictPriority bool
	// Concurrency is the number of tasks run at once. Default 10.
	Concurrency int
	// Prefetch is how many tasks are fetched ahead of free handlers, to hide
	// the broker's latency. Default Concurrency; negative for none. Their
	// leases run while they wait, so keep it small for long tasks.
	Prefetch int
	// LeaseDuration is how long a fetched task is the worker's without
	// renewal. A worker that dies holds its tasks this long. Default 30s.
	LeaseDuration time.Duration
	// ExtendInterval is how often leases of running tasks are renewed, in
	// one batch. Default LeaseDuration/3.
	ExtendInterval time.Duration
	// ShutdownTimeout is the grace period Shutdown gives running tasks
	// before cancelling and requeueing them. Default 10s.
	ShutdownTimeout time.Duration
	// DefaultTimeout bounds an attempt whose task sets no Timeout; 0: none.
	DefaultTimeout time.Duration
	// RetryDelay is the wait before a failed task's next attempt. Default
	// DefaultRetryDelay.
	RetryDelay RetryDelayFunc
	// PollInterval is the longest wait for new tasks between fetches when
	// the broker cannot signal them. Default 1s.
	PollInterval time.Duration
	// AckBatchSize bounds one Complete/Fail/Requeue call. Default 256.
	AckBatchSize int
	// ForwardInterval, RecoverInterval and CleanupInterval pace the
	// maintenance components: moving due scheduled/retry tasks to pending
	// (default 1s, which bounds how late they start), recovering expired
	// leases (default LeaseDuration/3) and deleting expired results
	// (default 1m).
	ForwardInterval, RecoverInterval, CleanupInterval time.Duration
	// NoMaintenance turns the maintenance components off, when another
	// process runs them. Some process must, or delayed tasks never start.
	NoMaintenance bool
	// Limits caps, per task kind, how many tasks run at once and how many
	// start per second, across every worker of the broker (see Limit). All
	// workers handling a kind must be given the same limits.
	Limits map[string]Limit
	// LimitWait is how long a fetched task waits for its kind's limits
	// before it goes back to the queue (without counting an attempt), so
	// that runners are not all held by one limited kind. Default 1s.
	LimitWait time.Duration
	// WorkerID names the worker in leases. Default host:pid:random.
	WorkerID string
	// HeartbeatInterval is how often the worker publishes its record (ID,
	// host, queues, concurrency, running tasks) to a broker that keeps
	// them (broker.WorkerRegistry), for the dashboard and "conq inspect".
	// The record expires after three intervals and is removed on
	// Shutdown. Default 5s; negative for none.
	HeartbeatInterval time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// Clock tells the time of deadlines and retries; it should be the
	// broker's. Default: wall clock.
	Clock broker.Clock
}

func (c *WorkerConfig) setDefaults() error {
	if len(c.Queues) == 0 {
		c.Queues = map[string]int{DefaultQueue: 1}
	}
	for name, w := range c.Queues {
		if err := validQueueName(name); err != nil {
			return fmt.Errorf("WorkerConfig.Queues: %w", err)
		}
		if w <= 0 {
			return invalid("WorkerConfig.Queues[%q] = %d: weights must be positive", name, w)
		}
	}
	durations := map[string]time.Duration{
		"LeaseDuration": c.LeaseDuration, "ExtendInterval": c.ExtendInterval, "ShutdownTimeout": c.ShutdownTimeout,
		"DefaultTimeout": c.DefaultTimeout, "PollInterval": c.PollInterval, "ForwardInterval": c.ForwardInterval,
		"RecoverInterval": c.RecoverInterval, "CleanupInterval": c.CleanupInterval,
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = 5 * time.Second
	}
	for name, d := range durations {
		if d < 0 {
			return invalid("WorkerConfig.%s = %v: must not be negative", name, d)
		}
	}
	if err := c.checkLimits(); err != nil {
		return err
	}
	if c.Concurrency < 0 {
		return invalid("WorkerConfig.Concurrency = %d: must be positive", c.Concurrency)
	}
	set := func(p *time.Duration, d time.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	if c.Concurrency == 0 {
		c.Concurrency = 10
	}
	switch {
	case c.Prefetch == 0:
		c.Prefetch = c.Concurrency
	case c.Prefetch < 0:
		c.Prefetch = 0
	}
	set(&c.LeaseDuration, 30*time.Second)
	set(&c.ExtendInterval, c.LeaseDuration/3)
	if c.ExtendInterval >= c.LeaseDuration {
		return invalid("WorkerConfig.ExtendInterval %v must be shorter than LeaseDuration %v", c.ExtendInterval, c.LeaseDuration)
	}
	set(&c.ShutdownTimeout, 10*time.Second)
	set(&c.PollInterval, time.Second)
	set(&c.ForwardInterval, time.Second)
	set(&c.RecoverInterval, c.LeaseDuration/3)
	set(&c.CleanupInterval, time.Minute)
	if c.AckBatchSize <= 0 {
		c.AckBatchSize = 256
	}
	if c.RetryDelay == nil {
		c.RetryDelay = DefaultRetryDelay
	}
	if c.WorkerID == "" {
		host, _ := os.Hostname()
		c.WorkerID = fmt.Sprintf("%s:%d:%s", host, os.Getpid(), rand.Text()[:8])
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = broker.SystemClock{}
	}
	return nil
}

// errShutdown is the cancel cause of handlers still running when a
// shutdown's grace period ends.
var errShutdown = errors.New("queue: worker shutting down")

// abandonAfter is how long Shutdown waits for handlers after cancelling
// them before it requeues their tasks and returns without them.
const abandonAfter = time.Second

// runFlushTimeout is what Run allows for recording outcomes after the
// handlers are done.
const runFlushTimeout = 10 * time.Second

// fetchCallTimeout bounds one Fetch call.
const fetchCallTimeout = 10 * time.Second

// job is a fetched task on its way to a handler.
type job struct {
	t      *broker.Task
	ref    broker.LeaseRef
	ctx    context.Context
	cancel context.CancelCauseFunc
}

// Worker fetches tasks from a broker and runs their handlers. Register
// handlers, then Start (or Run); Shutdown stops it gracefully.
type Worker struct {
	b   broker.Broker
	cfg WorkerConfig
	mux *Mux
	log *slog.Logger

	queues  []string // by weight, highest first
	weights []int

	mu      sync.Mutex
	started bool
	stopped bool

	jobs        chan *job
	slots       chan struct{} // one per task fetched and not yet finished
	fetchCancel context.CancelFunc
	fetchDone   chan struct{}
	hardCtx     context.Context // parent of handler contexts
	hardCancel  context.CancelCauseFunc
	runners     sync.WaitGroup
	stopping    atomic.Bool // requeue fetched tasks instead of running them
	abandoned   atomic.Bool // outcomes of handlers still running are dropped

	limiter broker.Limiter // set when cfg.Limits is

	ext   *lease.Extender
	ack   *acker.Acker
	maint []*maint.Periodic
	hb    *heartbeat.Heartbeat

	startedAt time.Time
	runMu     sync.Mutex
	running   map[broker.LeaseRef]broker.RunningTask // attempts in their handler
}

// NewWorker returns a worker of b; it checks cfg and fills in defaults.
func NewWorker(b broker.Broker, cfg WorkerConfig) (*Worker, error) {
	if b == nil {
		return nil, invalid("NewWorker: nil broker")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	w := &Worker{b: b, cfg: cfg, mux: NewMux(), log: cfg.Logger.With("worker_id", cfg.WorkerID),
		running: make(map[broker.LeaseRef]broker.RunningTask)}
	if len(cfg.Limits) > 0 {
		lim, ok := b.(broker.Limiter)
		if !ok {
			return nil, errNoLimiter(b)
		}
		w.limiter = lim
	}
	for name := range cfg.Queues {
		w.queues = append(w.queues, name)
	}
	slices.SortFunc(w.queues, func(a, b string) int {
		return cmp.Or(cmp.Compare(cfg.Queues[b], cfg.Queues[a]), cmp.Compare(a, b))
	})
	for _, q := range w.queues {
		w.weights = append(w.weights, cfg.Queues[q])
	}
	return w, nil
}

// Handle registers h for tasks of kind.
func (w *Worker) Handle(kind string, h Handler) { w.mux.Handle(kind, h) }

// HandleFunc registers fn for tasks of kind.
func (w *Worker) HandleFunc(kind string, fn func(ctx context.Context, t *TaskInfo) ([]byte, error)) {
	w.mux.HandleFunc(kind, fn)
}

// HandleDefault registers h for every kind without a handler of its own
// (see Mux.HandleDefault).
func (w *Worker) HandleDefault(h Handler) { w.mux.HandleDefault(h) }

// Use adds middleware around every handler.
func (w *Worker) Use(mws ...Middleware) { w.mux.Use(mws...) }

// ID returns the worker's ID, as recorded in leases.
func (w *Worker) ID() string { return w.cfg.WorkerID }

// Start starts fetching and running tasks in the background.
func (w *Worker) Start() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started {
		return fmt.Errorf("queue: Start: worker already started: %w", ErrWorkerState)
	}
	if w.mux.empty() {
		return invalid("Start: no handlers registered")
	}
	w.started = true
	cfg := &w.cfg
	capacity := cfg.Concurrency + cfg.Prefetch
	w.jobs = make(chan *job, capacity)
	w.slots = make(chan struct{}, capacity)
	w.hardCtx, w.hardCancel = context.WithCancelCause(context.Background())

	w.ext = &lease.Extender{Broker: w.b, Lease: cfg.LeaseDuration, Interval: cfg.ExtendInterval, Logger: w.log}
	w.ack = &acker.Acker{Broker: w.b, BatchSize: cfg.AckBatchSize, Logger: w.log, Settled: w.settled}
	if !cfg.NoMaintenance {
		w.maint = []*maint.Periodic{
			maint.NewForwarder(w.b, cfg.ForwardInterval, w.log),
			maint.NewRecoverer(w.b, cfg.RecoverInterval, w.log),
			maint.NewJanitor(w.b, cfg.CleanupInterval, w.log),
		}
	}
	w.startedAt = cfg.Clock.Now()
	if reg, ok := w.b.(broker.WorkerRegistry); ok && cfg.HeartbeatInterval > 0 {
		ttl := 3 * cfg.HeartbeatInterval
		w.hb = heartbeat.New("heartbeat", cfg.HeartbeatInterval,
			func(ctx context.Context) error { return reg.Heartbeat(ctx, w.Info(), ttl) },
			func(ctx context.Context) error { return reg.RemoveWorker(ctx, cfg.WorkerID) },
			w.log)
	}
	w.ext.Start()
	w.ack.Start()
	if w.hb != nil {
		w.hb.Start()
	}
	for _, p := range w.maint {
		p.Start()
	}
	for range cfg.Concurrency {
		w.runners.Add(1)
		go w.run()
	}
	var fetchCtx context.Context
	fetchCtx, w.fetchCancel = context.WithCancel(context.Background())
	w.fetchDone = make(chan struct{})
	go w.fetch(fetchCtx)
	w.log.Info("queue: worker started", "queues", cfg.Queues, "concurrency", cfg.Concurrency)
	return nil
}

// Info describes the worker as its heartbeat publishes it: the tasks
// listed are those whose handler is running.
func (w *Worker) Info() broker.WorkerInfo {
	host, _ := os.Hostname()
	info := broker.WorkerInfo{
		ID: w.cfg.WorkerID, Host: host, PID: os.Getpid(), Queues: slices.Clone(w.queues),
		Concurrency: w.cfg.Concurrency, StartedAt: w.startedAt, HeartbeatAt: w.cfg.Clock.Now(),
	}
	w.runMu.Lock()
	info.Running = make([]broker.RunningTask, 0, len(w.running))
	for _, rt := range w.running {
		info.Running = append(info.Running, rt)
	}
	w.runMu.Unlock()
	slices.SortFunc(info.Running, func(a, b broker.RunningTask) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), cmp.Compare(a.ID, b.ID))
	})
	return info
}

// Run starts the worker, blocks until ctx ends, then shuts down gracefully
// (see Shutdown), allowing ShutdownTimeout plus 11s in all.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	// Bounded, so a broker that stays unreachable cannot hang the caller.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.ShutdownTimeout+abandonAfter+runFlushTimeout)
	defer cancel()
	return w.Shutdown(sctx)
}

// order returns the queues in the order to try them for one fetch.
func (w *Worker) order() []string {
	if w.cfg.StrictPriority || len(w.queues) == 1 {
		return w.queues
	}
	// Weighted shuffle (Efraimidis–Spirakis): key u^(1/weight), highest first.
	type kv struct {
		q string
		k float64
	}
	keys := make([]kv, len(w.queues))
	for i, q := range w.queues {
		keys[i] = kv{q, math.Pow(mrand.Float64(), 1/float64(w.weights[i]))}
	}
	slices.SortFunc(keys, func(a, b kv) int { return cmp.Compare(b.k, a.k) })
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.q
	}
	return out
}

// fetch leases tasks whenever a slot is free and hands them to runners.
func (w *Worker) fetch(ctx context.Context) {
	defer close(w.fetchDone)
	var bo backoff.Backoff
	for {
		// Block for one free slot, then take what else is free.
		select {
		case w.slots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		n := 1
	more:
		for n < cap(w.slots) {
			select {
			case w.slots <- struct{}{}:
				n++
			default:
				break more
			}
		}
		// Not cancelled by shutdown: a fetch cut off mid-call could lease
		// tasks this worker never hears of, costing each an attempt.
		callCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchCallTimeout)
		tasks, err := w.b.Fetch(callCtx, w.order(), n, w.cfg.LeaseDuration, w.cfg.WorkerID)
		cancel()
		for range n - len(tasks) {
			<-w.slots
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d := bo.Next()
			w.log.Error("queue: fetching tasks failed; retrying", "err", err, "retry_in", d)
			if !backoff.Sleep(ctx, d) {
				return
			}
			continue
		}
		bo.Reset()
		for _, t := range tasks {
			j := &job{t: t, ref: broker.LeaseRef{Queue: t.Queue, ID: t.ID, Token: t.Token}}
			j.ctx, j.cancel = context.WithCancelCause(w.hardCtx)
			w.ext.Add(j.ref, j.cancel)
			w.jobs <- j // never blocks: a slot is held for it
		}
		if len(tasks) == 0 {
			if err := w.b.WaitReady(ctx, w.queues, w.cfg.PollInterval); err != nil && ctx.Err() == nil {
				d := bo.Next()
				w.log.Error("queue: waiting for tasks failed; retrying", "err", err, "retry_in", d)
				if !backoff.Sleep(ctx, d) {
					return
				}
			}
		}
	}
}

func (w *Worker) run() {
	defer w.runners.Done()
	for j := range w.jobs {
		if w.stopping.Load() {
			w.requeue(j)
		} else {
			w.process(j)
		}
		<-w.slots
	}
}

func (w *Worker) requeue(j *job) {
	j.cancel(nil)
	if !w.ack.Push(acker.Item{Op: acker.OpRequeue, Ref: j.ref}) {
		w.ext.Remove(j.ref)
	}
}

// settled is called by the acker once the broker has recorded an outcome.
func (w *Worker) settled(it *acker.Item, err error) {
	w.ext.Remove(it.Ref)
	switch {
	case err == nil:
	case errors.Is(err, ErrLeaseLost):
		w.log.Warn("queue: task lease was lost before its outcome was recorded; another worker may run it again",
			"queue", it.Ref.Queue, "task_id", it.Ref.ID, "err", err)
	default:
		w.log.Error("queue: recording task outcome failed", "queue", it.Ref.Queue, "task_id", it.Ref.ID, "err", err)
	}
}

// process runs one attempt and records its outcome.
func (w *Worker) process(j *job) {
	t := j.t
	defer j.cancel(nil)
	if errors.Is(context.Cause(j.ctx), ErrLeaseLost) {
		w.log.Warn("queue: skipping a prefetched task whose lease was lost", "queue", t.Queue, "task_id", t.ID, "kind", t.Kind)
		return
	}
	if errors.Is(context.Cause(j.ctx), ErrTaskCancelled) {
		w.fail(j, AttemptError{Kind: broker.ErrorKindCancelled, Message: "cancelled before the attempt started"}, true, time.Time{})
		return
	}
	release, ok := w.admit(j)
	if !ok {
		w.requeue(j) // limited: back to the queue, no attempt counted
		return
	}
	defer release()
	now := w.cfg.Clock.Now()
	w.runMu.Lock()
	w.running[j.ref] = broker.RunningTask{ID: t.ID, Queue: t.Queue, Kind: t.Kind, StartedAt: now}
	w.runMu.Unlock()
	defer func() {
		w.runMu.Lock()
		delete(w.running, j.ref)
		w.runMu.Unlock()
	}()
	if !t.Deadline.IsZero() && !now.Before(t.Deadline) {
		w.fail(j, AttemptError{Kind: "deadline", Message: fmt.Sprintf("deadline %s passed before the attempt started", t.Deadline.Format(time.RFC3339Nano))}, true, time.Time{})
		return
	}
	ctx := context.WithValue(j.ctx, taskKey{}, t)
	timeout := t.Timeout
	if timeout == 0 {
		timeout = w.cfg.DefaultTimeout
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

	result, err := w.call(ctx, t)

	if w.abandoned.Load() {
		return // Shutdown has requeued it already
	}
	if cause := context.Cause(j.ctx); cause != nil && errors.Is(cause, ErrLeaseLost) {
		w.log.Warn("queue: dropping the outcome of a task whose lease was lost", "queue", t.Queue, "task_id", t.ID, "kind", t.Kind, "err", err)
		return
	}
	if errors.Is(context.Cause(j.ctx), ErrTaskCancelled) {
		// Dead whatever the handler returned: the task was cancelled.
		msg := "cancelled while running"
		if err != nil {
			msg += ": " + err.Error()
		}
		w.fail(j, AttemptError{Kind: broker.ErrorKindCancelled, Message: msg}, true, time.Time{})
		return
	}
	if err == nil {
		w.ack.Push(acker.Item{Op: acker.OpComplete, Ref: j.ref, Result: result})
		return
	}
	if errors.Is(context.Cause(j.ctx), errShutdown) {
		w.requeue(j) // interrupted by shutdown: not the task's fault
		return
	}
	w.failWith(j, ctx, err)
}

// call runs the handler, turning a panic into a *future.PanicError.
func (w *Worker) call(ctx context.Context, t *TaskInfo) (result []byte, err error) {
	defer func() {
		if v := recover(); v != nil {
			result, err = nil, future.NewPanicError(v)
		}
	}()
	return w.mux.ProcessTask(ctx, t)
}

func (w *Worker) failWith(j *job, ctx context.Context, err error) {
	t := j.t
	ae := AttemptError{Kind: "error", Message: err.Error()}
	var pe *future.PanicError
	var uk *UnknownKindError
	var he *HandlerError
	switch {
	case errors.As(err, &pe):
		ae.Kind, ae.Stack = "panic", string(pe.Stack)
	case errors.As(err, &he):
		ae.Kind, ae.Stack = cmp.Or(he.Kind, "error"), he.Stack
	case errors.As(err, &uk):
		ae.Kind = "unknown_kind"
	case errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded):
		ae.Kind = "timeout"
	}
	attempt := t.Attempts + 1
	dead := errors.Is(err, SkipRetry) || attempt > t.MaxRetries
	var retryAt time.Time
	if !dead {
		var ra *retryAfterError
		delay := time.Duration(0)
		if errors.As(err, &ra) {
			delay = ra.d
		} else {
			delay = w.cfg.RetryDelay(attempt, err, t)
		}
		retryAt = w.cfg.Clock.Now().Add(max(delay, 0))
		if !t.Deadline.IsZero() && !retryAt.Before(t.Deadline) {
			dead = true
			ae.Message += fmt.Sprintf(" (no retry: next attempt would start after the deadline %s)", t.Deadline.Format(time.RFC3339))
		}
	}
	w.fail(j, ae, dead, retryAt)
}

func (w *Worker) fail(j *job, ae AttemptError, dead bool, retryAt time.Time) {
	t := j.t
	ae.Attempt = t.Attempts + 1
	ae.At = w.cfg.Clock.Now()
	attrs := []any{"queue", t.Queue, "task_id", t.ID, "kind", t.Kind, "attempt", ae.Attempt, "error_kind", ae.Kind, "err", ae.Message}
	if dead {
		w.log.Error("queue: task failed; it is dead", attrs...)
	} else {
		w.log.Warn("queue: task failed; it will be retried", append(attrs, "retry_at", retryAt)...)
	}
	f := broker.Failure{Error: ae, Dead: dead, RetryAt: retryAt}
	if !w.ack.Push(acker.Item{Op: acker.OpFail, Ref: j.ref, Failure: f}) {
		w.ext.Remove(j.ref)
	}
}

// Shutdown stops the worker: it stops fetching, requeues fetched tasks not
// yet started, gives running tasks ShutdownTimeout (or until ctx ends) to
// finish, then cancels their ctx and requeues those that return an error,
// without counting an attempt. Handlers that ignore their ctx are waited
// for one more second; then their tasks are requeued and their outcomes
// dropped. Finally it records the outstanding outcomes and stops the
// background components. It returns ctx's error if ctx cut it short.
func (w *Worker) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	if !w.started || w.stopped {
		w.mu.Unlock()
		return fmt.Errorf("queue: Shutdown: worker not running: %w", ErrWorkerState)
	}
	w.stopped = true
	w.mu.Unlock()
	w.log.Info("queue: worker shutting down")

	w.stopping.Store(true)
	w.fetchCancel()
	<-w.fetchDone
	close(w.jobs)
	// Requeue what was fetched and not started; the runners do the same.
	for j := range w.jobs {
		w.requeue(j)
		<-w.slots
	}

	runnersDone := make(chan struct{})
	go func() { w.runners.Wait(); close(runnersDone) }()
	grace := time.NewTimer(w.cfg.ShutdownTimeout)
	defer grace.Stop()
	select {
	case <-runnersDone:
	case <-grace.C:
	case <-ctx.Done():
	}
	select {
	case <-runnersDone:
	default:
		w.log.Warn("queue: shutdown grace period over; cancelling running tasks")
		w.hardCancel(errShutdown)
		wait := time.NewTimer(abandonAfter)
		defer wait.Stop()
		select {
		case <-runnersDone:
		case <-wait.C:
			w.abandon()
		case <-ctx.Done():
			w.abandon()
		}
	}
	w.hardCancel(errShutdown)

	var errs []error
	if err := w.ack.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("queue: recording outcomes: %w", err))
	}
	if err := w.ext.Shutdown(ctx); err != nil {
		errs = append(errs, err)
	}
	for _, p := range w.maint {
		if err := p.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if w.hb != nil {
		if err := w.hb.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("queue: removing the worker's heartbeat: %w", err))
		}
	}
	w.log.Info("queue: worker stopped")
	return errors.Join(errs...)
}

// abandon requeues the tasks of handlers that ignored cancellation.
func (w *Worker) abandon() {
	w.abandoned.Store(true)
	held := w.ext.Held()
	w.log.Error("queue: handlers ignored cancellation; requeueing their tasks and leaving them behind", "tasks", len(held))
	for _, ref := range held {
		w.ack.Push(acker.Item{Op: acker.OpRequeue, Ref: ref})
	}
}
