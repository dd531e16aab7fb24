package queue

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/conqhq/conq/internal/startstop"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/internal/engine"
	"github.com/conqhq/conq/queue/internal/ident"
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
	// ShortConcurrency, if above Concurrency, is how many tasks are handed
	// to handlers at once while attempts are short (under 2 ms on average,
	// one ending within the last 2 ms, none running for 10 ms): for
	// handlers that pass tasks on to something that queues them, such as
	// queue/procexec's pool of worker processes that take short calls
	// queued behind the running one. While
	// attempts are not short, Concurrency holds, so long tasks are not
	// leased by one worker beyond what it runs. 0: Concurrency.
	ShortConcurrency int
	// Prefetch is how many tasks are fetched ahead of free handlers, to hide
	// the broker's latency; their leases run while they wait. Zero (the
	// default) adapts it: it starts at Concurrency and grows up to
	// MaxPrefetch while attempts are short next to a fetch (fast tasks
	// behind a slow or distant broker), and shrinks back when they are
	// not. A positive value fixes it; negative means none. At most 65536.
	Prefetch int
	// MaxPrefetch bounds an adaptive Prefetch. Default max(8 ×
	// Concurrency, 64); at most 65536. Ignored when Prefetch is set.
	MaxPrefetch int
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
	c.HeartbeatInterval = cmp.Or(c.HeartbeatInterval, 5*time.Second)
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
	if c.ShortConcurrency < 0 || c.ShortConcurrency > maxPrefetch {
		return invalid("WorkerConfig.ShortConcurrency = %d: want 0..%d", c.ShortConcurrency, maxPrefetch)
	}
	// Defaults: zero means "default" (cmp.Or), a negative count "none".
	c.Concurrency = cmp.Or(c.Concurrency, 10)
	c.ShortConcurrency = max(c.ShortConcurrency, c.Concurrency)
	if c.Prefetch > maxPrefetch || c.MaxPrefetch > maxPrefetch {
		return invalid("WorkerConfig.Prefetch %d, MaxPrefetch %d: at most %d", c.Prefetch, c.MaxPrefetch, maxPrefetch)
	}
	if c.MaxPrefetch < 0 {
		return invalid("WorkerConfig.MaxPrefetch = %d: must not be negative", c.MaxPrefetch)
	}
	switch {
	case c.Prefetch < 0: // none
		c.Prefetch, c.MaxPrefetch = 0, 0
	case c.Prefetch > 0: // fixed
		c.MaxPrefetch = c.Prefetch
	default: // adaptive
		c.Prefetch = min(c.Concurrency, maxPrefetch)
		c.MaxPrefetch = max(cmp.Or(c.MaxPrefetch, max(8*c.Concurrency, 64)), c.Prefetch)
		c.MaxPrefetch = min(c.MaxPrefetch, maxPrefetch)
	}
	c.LeaseDuration = cmp.Or(c.LeaseDuration, 30*time.Second)
	c.ExtendInterval = cmp.Or(c.ExtendInterval, c.LeaseDuration/3)
	if c.ExtendInterval >= c.LeaseDuration {
		return invalid("WorkerConfig.ExtendInterval %v must be shorter than LeaseDuration %v", c.ExtendInterval, c.LeaseDuration)
	}
	c.ShutdownTimeout = cmp.Or(c.ShutdownTimeout, 10*time.Second)
	c.PollInterval = cmp.Or(c.PollInterval, time.Second)
	c.ForwardInterval = cmp.Or(c.ForwardInterval, time.Second)
	c.RecoverInterval = cmp.Or(c.RecoverInterval, c.LeaseDuration/3)
	c.CleanupInterval = cmp.Or(c.CleanupInterval, time.Minute)
	c.AckBatchSize = cmp.Or(max(c.AckBatchSize, 0), 256)
	if c.RetryDelay == nil {
		c.RetryDelay = DefaultRetryDelay
	}
	c.WorkerID = cmp.Or(c.WorkerID, ident.New())
	c.Logger = cmp.Or(c.Logger, slog.Default())
	return nil
}

// maxPrefetch bounds Prefetch and MaxPrefetch: the worker allocates
// buffers of that size.
const maxPrefetch = 1 << 16

// runFlushTimeout is what Run allows for recording outcomes after the
// handlers are done.
const runFlushTimeout = 10 * time.Second

// Worker fetches tasks from a broker and runs their handlers. Register
// handlers, then Start (or Run); Shutdown stops it gracefully. The
// machinery (fetch loop, runners, lease renewal, batched outcomes,
// maintenance) is in queue/internal/engine; this type holds what is
// public: configuration, handlers and the start/stop contract.
type Worker struct {
	b    Broker
	cfg  WorkerConfig
	mux  *mux
	life startstop.Once
	eng  *engine.Engine
}

// NewWorker returns a worker of b; it checks cfg and fills in defaults.
func NewWorker(b Broker, cfg WorkerConfig) (*Worker, error) {
	if b == nil {
		return nil, invalid("NewWorker: nil broker")
	}
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if len(cfg.Limits) > 0 && !b.Capabilities().Has(broker.CapLimits) {
		return nil, errNoLimiter(b)
	}
	w := &Worker{b: b, cfg: cfg, mux: newMux()}
	ec := engine.Config{
		Broker: b, StrictPriority: cfg.StrictPriority, Concurrency: cfg.Concurrency, ShortConcurrency: cfg.ShortConcurrency, Prefetch: cfg.Prefetch, MaxPrefetch: cfg.MaxPrefetch,
		Lease: cfg.LeaseDuration, ExtendInterval: cfg.ExtendInterval, ShutdownTimeout: cfg.ShutdownTimeout,
		DefaultTimeout: cfg.DefaultTimeout, PollInterval: cfg.PollInterval, AckBatchSize: cfg.AckBatchSize,
		ForwardInterval: cfg.ForwardInterval, RecoverInterval: cfg.RecoverInterval, CleanupInterval: cfg.CleanupInterval,
		NoMaintenance: cfg.NoMaintenance, LimitWait: cfg.LimitWait, WorkerID: cfg.WorkerID,
		HeartbeatInterval: cfg.HeartbeatInterval, Logger: cfg.Logger.With("worker_id", cfg.WorkerID),
		Handler: w.handle, Failure: failureRule(cfg.RetryDelay), Kinds: w.mux.kinds,
	}
	for name := range cfg.Queues {
		ec.Queues = append(ec.Queues, name)
	}
	slices.SortFunc(ec.Queues, func(a, b string) int {
		return cmp.Or(cmp.Compare(cfg.Queues[b], cfg.Queues[a]), cmp.Compare(a, b))
	})
	for _, q := range ec.Queues {
		ec.Weights = append(ec.Weights, cfg.Queues[q])
	}
	if len(cfg.Limits) > 0 {
		ec.Limits = make(map[string]engine.Limit, len(cfg.Limits))
		for k, l := range cfg.Limits {
			ec.Limits[k] = engine.Limit(l)
		}
	}
	w.eng = engine.New(ec)
	return w, nil
}

// handle runs one attempt through the mux, with the task and its lease in
// the context. The handler's task has no lease fields (see FencingToken).
func (w *Worker) handle(ctx context.Context, t *TaskInfo, a engine.Attempt) ([]byte, error) {
	return w.mux.ProcessTask(&handlerCtx{Context: ctx, h: handlerTask{t: t, attempt: a, clock: w.b.Clock()}}, t)
}

// Handle registers h for tasks of kind. It panics on an empty kind, a nil
// handler or a second handler for one kind, like http.ServeMux: these are
// bugs.
func (w *Worker) Handle(kind string, h Handler) { w.mux.Handle(kind, h) }

// HandleFunc registers fn for tasks of kind.
func (w *Worker) HandleFunc(kind string, fn func(ctx context.Context, t *TaskInfo) ([]byte, error)) {
	w.mux.HandleFunc(kind, fn)
}

// HandleDefault registers h for tasks of every kind that has no handler of
// its own (e.g. a handler that runs each kind as a command). It panics on
// a nil handler or a second default handler.
func (w *Worker) HandleDefault(h Handler) { w.mux.HandleDefault(h) }

// Use adds middleware around every handler, registered before or after;
// the first added is the outermost.
func (w *Worker) Use(mws ...Middleware) { w.mux.Use(mws...) }

// ID returns the worker's ID, as recorded in leases.
func (w *Worker) ID() string { return w.cfg.WorkerID }

// Start starts fetching and running tasks in the background. Handler
// contexts carry ctx's values (trace IDs, loggers), but not its
// cancellation or deadline: cancelling ctx does not stop the worker or
// interrupt running handlers; Shutdown does, gracefully (Run ties the two
// together).
func (w *Worker) Start(ctx context.Context) error {
	if w.mux.empty() {
		return invalid("Start: no handlers registered")
	}
	if err := w.life.Start(); err != nil {
		return fmt.Errorf("queue: Start: worker already started: %w", ErrWorkerState)
	}
	if err := w.eng.Start(ctx); err != nil {
		return fmt.Errorf("queue: Start: %w", err)
	}
	w.cfg.Logger.Info("queue: worker started", "worker_id", w.cfg.WorkerID, "queues", w.cfg.Queues, "concurrency", w.cfg.Concurrency)
	return nil
}

// Info describes the worker as its heartbeat publishes it: the tasks
// listed are those whose handler is running.
func (w *Worker) Info() WorkerInfo { return w.eng.Info() }

// Run starts the worker with ctx (see Start), blocks until ctx ends, then
// shuts down gracefully (see Shutdown), allowing ShutdownTimeout plus 11s
// in all.
func (w *Worker) Run(ctx context.Context) error {
	if err := w.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	// Bounded, so a broker that stays unreachable cannot hang the caller.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.ShutdownTimeout+time.Second+runFlushTimeout)
	defer cancel()
	return w.Shutdown(sctx)
}

// Shutdown stops the worker: it stops fetching, requeues fetched tasks not
// yet started, gives running tasks ShutdownTimeout (or until ctx ends) to
// finish, then cancels their ctx and requeues those that return an error,
// without counting an attempt. Handlers that ignore their ctx are waited
// for one more second; then their tasks are requeued and their outcomes
// dropped. Finally it records the outstanding outcomes and stops the
// background components. It returns ctx's error if ctx cut it short.
func (w *Worker) Shutdown(ctx context.Context) error {
	if err := w.life.Stop(); err != nil {
		return fmt.Errorf("queue: Shutdown: worker not running: %w", ErrWorkerState)
	}
	return w.eng.Shutdown(ctx)
}
