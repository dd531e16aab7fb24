package pool

import (
	"context"
	"fmt"
	"iter"

	"github.com/conqhq/conq/future"
)

// MapOption tunes Map and MapUnordered.
type MapOption func(*mapConfig)

type mapConfig struct {
	chunk  int
	window int
}

// ChunkSize makes each pool task handle n inputs in a row, which pays off
// when a single call is too small to be worth a task. The default is 1.
func ChunkSize(n int) MapOption {
	return func(c *mapConfig) { c.chunk = n }
}

// Window bounds how many tasks (chunks) a Map keeps in flight; the input
// is not read further ahead than that. The default is 8 per worker of the
// pool: enough that the consumer seldom waits on a single task.
func Window(n int) MapOption {
	return func(c *mapConfig) { c.window = n }
}

func newMapConfig(p *Pool, opts []MapOption) mapConfig {
	c := mapConfig{chunk: 1, window: 8 * p.Workers()}
	for _, o := range opts {
		o(&c)
	}
	if c.chunk < 1 {
		panic(fmt.Sprintf("pool: ChunkSize must be >= 1, got %d", c.chunk))
	}
	if c.window < 1 {
		panic(fmt.Sprintf("pool: Window must be >= 1, got %d", c.window))
	}
	return c
}

// result is one output of fn.
type result[Out any] struct {
	v   Out
	err error
}

// callSafe runs fn on one input, turning a panic into a *PanicError so one
// bad element does not lose the rest of its chunk.
func callSafe[In, Out any](ctx context.Context, fn func(context.Context, In) (Out, error), v In) (out Out, err error) {
	defer func() {
		if r := recover(); r != nil {
			var zero Out
			out, err = zero, future.NewPanicError(r)
		}
	}()
	return fn(ctx, v)
}

// flight is one task of a Map: a single call when the chunk size is 1
// (the common case, kept to one allocation), a chunk of calls otherwise.
type flight[Out any] struct {
	one  *future.Future[Out]
	many *future.Future[[]result[Out]]
}

func (f flight[Out]) cancel() {
	if f.one != nil {
		f.one.Cancel()
	} else {
		f.many.Cancel()
	}
}

func (f flight[Out]) done() <-chan struct{} {
	if f.one != nil {
		return f.one.Done()
	}
	return f.many.Done()
}

// results returns the outcomes of a finished flight, or the error that kept
// it from running (cancelled, pool closed).
func (f flight[Out]) results() (one result[Out], many []result[Out], err error) {
	if f.one != nil {
		v, e := f.one.Result(context.Background())
		if f.one.State() == future.Cancelled {
			return one, nil, e
		}
		return result[Out]{v, e}, nil, nil
	}
	many, err = f.many.Result(context.Background())
	return one, many, err
}

// yieldResults yields the outcomes of a finished flight; false means stop.
func yieldResults[Out any](f flight[Out], yield func(Out, error) bool) bool {
	one, many, err := f.results()
	if err != nil {
		var zero Out
		yield(zero, err)
		return false
	}
	if f.one != nil {
		return yield(one.v, one.err)
	}
	for _, r := range many {
		if !yield(r.v, r.err) {
			return false
		}
	}
	return true
}

// launch reads in, submits one flight per chunk through start, and calls
// wait whenever window flights are out; then it waits for all of them.
// Both callbacks return false to stop.
func launch[In, Out any](ctx context.Context, p *Pool, in iter.Seq[In], fn func(context.Context, In) (Out, error), cfg mapConfig,
	inflight func() int, start func(flight[Out]), wait func() bool, yield func(Out, error) bool) {
	submit := func(f flight[Out], err error) bool {
		if err != nil {
			var zero Out
			yield(zero, err)
			return false
		}
		start(f)
		return true
	}
	if cfg.chunk == 1 {
		for v := range in {
			if inflight() == cfg.window && !wait() {
				return
			}
			f, err := Submit(ctx, p, func(ctx context.Context) (Out, error) { return fn(ctx, v) })
			if !submit(flight[Out]{one: f}, err) {
				return
			}
		}
	} else {
		chunk := make([]In, 0, cfg.chunk)
		flush := func() bool {
			if inflight() == cfg.window && !wait() {
				return false
			}
			f, err := Submit(ctx, p, runChunk(chunk, fn))
			chunk = make([]In, 0, cfg.chunk)
			return submit(flight[Out]{many: f}, err)
		}
		for v := range in {
			if chunk = append(chunk, v); len(chunk) == cfg.chunk && !flush() {
				return
			}
		}
		if len(chunk) > 0 && !flush() {
			return
		}
	}
	for inflight() > 0 {
		if !wait() {
			return
		}
	}
}

// cancelAndWait cancels flights (a running task sees its ctx cancelled)
// and waits until they have all finished.
func cancelAndWait[Out any](fs []flight[Out]) {
	for _, f := range fs {
		f.cancel()
	}
	for _, f := range fs {
		<-f.done()
	}
}

// Map runs fn on every value of in, on p, and yields the results in input
// order, one (value, error) pair per input; an error of fn does not stop
// the others (break out of the loop to stop). in is read lazily, at most
// Window tasks ahead of the consumer. A panic in fn is yielded as a
// *PanicError.
//
// If ctx ends, Map yields a last pair with ctx's error and stops; if the
// pool shuts down it yields ErrClosed. Either way, and when the loop
// breaks, it cancels the tasks it has in flight and waits for them before
// returning.
func Map[In, Out any](ctx context.Context, p *Pool, in iter.Seq[In], fn func(context.Context, In) (Out, error), opts ...MapOption) iter.Seq2[Out, error] {
	cfg := newMapConfig(p, opts)
	return func(yield func(Out, error) bool) {
		var fifo []flight[Out]
		defer func() { cancelAndWait(fifo) }()
		// wait waits for the oldest flight and yields its results.
		wait := func() bool {
			f := fifo[0]
			select {
			case <-f.done():
			case <-ctx.Done():
				select {
				case <-f.done(): // both ready: take the result
				default:
					var zero Out
					yield(zero, ctx.Err())
					return false
				}
			}
			fifo[0] = flight[Out]{}
			fifo = fifo[1:]
			return yieldResults(f, yield)
		}
		launch(ctx, p, in, fn, cfg,
			func() int { return len(fifo) },
			func(f flight[Out]) { fifo = append(fifo, f) },
			wait, yield)
	}
}

// MapUnordered is Map yielding results as they complete rather than in
// input order; it keeps the workers busier when durations vary. Put
// whatever identifies an input into Out if you need it.
func MapUnordered[In, Out any](ctx context.Context, p *Pool, in iter.Seq[In], fn func(context.Context, In) (Out, error), opts ...MapOption) iter.Seq2[Out, error] {
	cfg := newMapConfig(p, opts)
	return func(yield func(Out, error) bool) {
		// Every flight sends its id here once done; with room for a whole
		// window, its callback never blocks.
		finished := make(chan int, cfg.window)
		inflight := make(map[int]flight[Out], cfg.window)
		defer func() {
			fs := make([]flight[Out], 0, len(inflight))
			for _, f := range inflight {
				fs = append(fs, f)
			}
			cancelAndWait(fs)
		}()
		wait := func() bool {
			select {
			case id := <-finished:
				f := inflight[id]
				delete(inflight, id)
				return yieldResults(f, yield)
			case <-ctx.Done():
				var zero Out
				yield(zero, ctx.Err())
				return false
			}
		}
		nextID := 0
		start := func(f flight[Out]) {
			id := nextID
			nextID++
			inflight[id] = f
			if f.one != nil {
				f.one.OnDone(func(Out, error) { finished <- id })
			} else {
				f.many.OnDone(func([]result[Out], error) { finished <- id })
			}
		}
		launch(ctx, p, in, fn, cfg, func() int { return len(inflight) }, start, wait, yield)
	}
}

// runChunk returns the task that maps one chunk.
func runChunk[In, Out any](chunk []In, fn func(context.Context, In) (Out, error)) func(context.Context) ([]result[Out], error) {
	return func(ctx context.Context) ([]result[Out], error) {
		rs := make([]result[Out], len(chunk))
		for i, v := range chunk {
			if i > 0 && ctx.Err() != nil {
				// Cancelled mid-chunk: skip the rest rather than call fn
				// with a dead ctx.
				for j := i; j < len(rs); j++ {
					rs[j].err = ctx.Err()
				}
				break
			}
			rs[i].v, rs[i].err = callSafe(ctx, fn, v)
		}
		return rs, nil
	}
}
