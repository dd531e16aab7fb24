package pool

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/conqhq/conq/future"
)

var (
	// ErrClosed is returned by Submit and TrySubmit once shutdown has begun.
	// Tasks cancelled by an expired Shutdown also match it. It is
	// future.ErrClosed, the value every conq layer returns.
	ErrClosed = future.ErrClosed
	// ErrQueueFull is returned by TrySubmit when the queue has no room. It
	// is future.ErrQueueFull.
	ErrQueueFull = future.ErrQueueFull
)

// PanicError is the error of a task that panicked.
type PanicError = future.PanicError

// errShutdownCancelled ends the futures of tasks still queued when
// Shutdown's ctx ends.
var errShutdownCancelled = fmt.Errorf("%w: %w", future.ErrCancelled, ErrClosed)

// DefaultQueuePerWorker sizes the queue when Config.QueueSize is 0.
const DefaultQueuePerWorker = 64

// Config configures a Pool. The zero Config is valid.
type Config struct {
	// Workers is the number of worker goroutines; 0 means GOMAXPROCS.
	Workers int
	// QueueSize is how many submitted tasks may wait for a worker before
	// Submit blocks; 0 means DefaultQueuePerWorker × Workers.
	QueueSize int
}

// withDefaults validates cfg and fills in the defaults.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Workers < 0 {
		return cfg, fmt.Errorf("pool: Config.Workers must be >= 0 (0 means GOMAXPROCS), got %d", cfg.Workers)
	}
	if cfg.QueueSize < 0 {
		return cfg, fmt.Errorf("pool: Config.QueueSize must be >= 0 (0 means %d per worker), got %d", DefaultQueuePerWorker, cfg.QueueSize)
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueuePerWorker * cfg.Workers
	}
	return cfg, nil
}

// Stats is a snapshot of a pool's counters.
type Stats struct {
	Workers   int
	Submitted uint64 // accepted by Submit or TrySubmit
	Queued    uint64 // waiting for a worker (cancelled ones until a worker drops them)
	Running   uint64 // being run now
	Completed uint64 // returned a nil error
	Failed    uint64 // returned an error or panicked
	Cancelled uint64 // never ran: cancelled while queued, Submit ctx ended, or shutdown
}

// runnable is what the queue holds: a *task[T] of any T.
type runnable interface {
	run(w *worker)
	drop(err error)
}

// Pool runs submitted functions on a fixed set of goroutines. Create it
// with New; its methods are safe for concurrent use.
type Pool struct {
	cfg   Config
	queue chan runnable

	// mu guards the send side of queue: Submit holds it for reading while
	// sending, Shutdown takes it for writing before closing queue.
	mu      sync.RWMutex
	closed  bool
	closing chan struct{} // closed when shutdown begins; wakes blocked Submits

	aborting atomic.Bool   // Shutdown's ctx ended: drop queued tasks
	cutShort atomic.Bool   // abort found tasks to cancel
	workers  []worker      // each publishes its running task for abort
	exited   chan struct{} // closed when every worker has returned

	shutdownOnce sync.Once
	abortOnce    sync.Once

	submitted atomic.Uint64
	_         [56]byte // keep the submit-side counter off the workers' line
	started   atomic.Uint64
	completed atomic.Uint64
	failed    atomic.Uint64
	cancelled atomic.Uint64
}

type worker struct {
	current atomic.Pointer[taskCtx]
	_       [56]byte // one cache line each
}

// New starts a pool configured by cfg.
func New(cfg Config) (*Pool, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Pool{
		cfg:     cfg,
		queue:   make(chan runnable, cfg.QueueSize),
		closing: make(chan struct{}),
		workers: make([]worker, cfg.Workers),
		exited:  make(chan struct{}),
	}
	var wg sync.WaitGroup
	wg.Add(cfg.Workers)
	for i := range p.workers {
		go func(w *worker) {
			defer wg.Done()
			p.work(w)
		}(&p.workers[i])
	}
	go func() {
		wg.Wait()
		close(p.exited)
	}()
	return p, nil
}

// MustNew is New for configurations known to be valid; it panics on error.
func MustNew(cfg Config) *Pool {
	p, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return p
}

func (p *Pool) work(w *worker) {
	for t := range p.queue {
		if p.aborting.Load() {
			p.cutShort.Store(true)
			t.drop(errShutdownCancelled)
			continue
		}
		t.run(w)
	}
}

// Workers returns the number of worker goroutines.
func (p *Pool) Workers() int { return p.cfg.Workers }

// Stats returns a snapshot of the pool's counters.
func (p *Pool) Stats() Stats {
	// Later stages first, so that the differences cannot go negative.
	completed := p.completed.Load()
	failed := p.failed.Load()
	started := p.started.Load()
	cancelled := p.cancelled.Load()
	submitted := p.submitted.Load()
	return Stats{
		Workers:   p.cfg.Workers,
		Submitted: submitted,
		Queued:    submitted - started - cancelled,
		Running:   started - completed - failed,
		Completed: completed,
		Failed:    failed,
		Cancelled: cancelled,
	}
}

// Submit queues fn to run on the pool and returns its future. It blocks
// while the queue is full, until there is room or ctx ends; it returns
// ErrClosed once shutdown has begun. See the package documentation for
// the ctx fn receives.
func Submit[T any](ctx context.Context, p *Pool, fn func(context.Context) (T, error)) (*future.Future[T], error) {
	return submit(ctx, p, fn, true)
}

// TrySubmit is Submit without blocking: it returns ErrQueueFull when the
// queue has no room.
func TrySubmit[T any](ctx context.Context, p *Pool, fn func(context.Context) (T, error)) (*future.Future[T], error) {
	return submit(ctx, p, fn, false)
}

func submit[T any](ctx context.Context, p *Pool, fn func(context.Context) (T, error), block bool) (*future.Future[T], error) {
	if fn == nil {
		panic("pool: Submit with nil function")
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t := &task[T]{fn: fn, pool: p}
	t.ctx.parent = ctx
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return nil, ErrClosed
	}
	// Count before sending: a worker may finish the task before we return.
	p.submitted.Add(1)
	select {
	case p.queue <- t:
		p.mu.RUnlock()
		return t.Future(), nil
	default:
	}
	var err error
	if !block {
		err = ErrQueueFull
	} else {
		select {
		case p.queue <- t:
			p.mu.RUnlock()
			return t.Future(), nil
		case <-ctx.Done():
			err = ctx.Err()
		case <-p.closing:
			err = ErrClosed
		}
	}
	p.submitted.Add(^uint64(0))
	p.mu.RUnlock()
	return nil, err
}

// Shutdown stops the pool accepting work and waits for queued and running
// tasks to finish. If ctx ends first, it cancels the queued tasks and the
// ctx of the running ones and returns ctx's error; see the package
// documentation. A task must not call it on its own pool: it would wait
// for itself.
func (p *Pool) Shutdown(ctx context.Context) error {
	p.shutdownOnce.Do(func() {
		close(p.closing) // wake blocked Submits so they release mu
		p.mu.Lock()
		p.closed = true
		close(p.queue)
		p.mu.Unlock()
	})
	select {
	case <-p.exited:
		return nil
	default:
	}
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
	}
	p.abortOnce.Do(p.abort)
	if !p.cutShort.Load() {
		// Nothing was running or queued, so nothing was cut short: the
		// workers are on their way out.
		<-p.exited
		if !p.cutShort.Load() {
			return nil
		}
	}
	return ctx.Err()
}

// abort cancels what is left after Shutdown's ctx has ended.
func (p *Pool) abort() {
	p.aborting.Store(true)
	for i := range p.workers {
		if c := p.workers[i].current.Load(); c != nil {
			p.cutShort.Store(true)
			c.cancel(context.Canceled)
		}
	}
	// Drain alongside the workers, which may all be busy.
	for t := range p.queue {
		p.cutShort.Store(true)
		t.drop(errShutdownCancelled)
	}
}

// Close shuts the pool down, waiting for every queued and running task.
func (p *Pool) Close() error { return p.Shutdown(context.Background()) }
