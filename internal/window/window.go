// Package window is the one futures window behind every Map of conq:
// pool.Map and pool.MapUnordered, procpool.Map and procpool.MapJSON. It
// reads an input lazily, submits it to an executor a chunk at a time,
// keeps a bounded number of chunks in flight and yields one (value, error)
// pair per input, in input order (Ordered) or as they finish (Unordered).
//
// The executors differ only in how a chunk is submitted (Submitter); the
// options and the policy are the same for all and are written down once, in
// the package documentation of pool ("Map and MapUnordered").
package window

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync/atomic"

	"github.com/conqhq/conq/future"
)

// DefaultPerWorker sizes the window when no Size option is given: that many
// chunks in flight per worker of the executor, enough that the consumer
// seldom waits on a single one.
const DefaultPerWorker = 8

// Config is what the options set.
type Config struct {
	Window      int  // chunks in flight, at least 1
	Chunk       int  // inputs per chunk, at least 1
	StopOnError bool // stop after the first error instead of going on
}

// Option sets a field of Config.
type Option func(*Config)

// Size sets Config.Window.
func Size(n int) Option { return func(c *Config) { c.Window = n } }

// Chunk sets Config.Chunk.
func Chunk(n int) Option { return func(c *Config) { c.Chunk = n } }

// StopOnError sets Config.StopOnError.
func StopOnError(stop bool) Option { return func(c *Config) { c.StopOnError = stop } }

// NewConfig applies opts to the defaults for an executor with that many
// workers. A window or chunk size below 1 is a programming error, not bad
// input, and panics, so that it shows where the Map is called.
func NewConfig(workers int, opts []Option) Config {
	c := Config{Window: DefaultPerWorker * max(workers, 1), Chunk: 1}
	for _, o := range opts {
		o(&c)
	}
	if c.Chunk < 1 {
		panic(fmt.Sprintf("conq: Map option ChunkSize(%d): the chunk size must be >= 1", c.Chunk))
	}
	if c.Window < 1 {
		panic(fmt.Sprintf("conq: Map option Window(%d): the window must be >= 1", c.Window))
	}
	return c
}

// Result is the outcome of one input of a chunk.
type Result[Out any] struct {
	V   Out
	Err error
}

// Submitter is how an executor runs inputs. One submits a single input. Many,
// if not nil, submits a whole chunk as one unit of work (the pool runs it
// as one task); if nil, the inputs of a chunk go through One and the chunk
// is the group of their futures.
//
// A submission error is the result of its inputs; it also ends the map if
// it matches future.ErrClosed or ctx has ended.
type Submitter[In, Out any] struct {
	One  func(context.Context, In) (*future.Future[Out], error)
	Many func(context.Context, []In) (*future.Future[[]Result[Out]], error)
}

// flight is one chunk in the window: a single future when the chunk size is
// 1 (the common case, which costs the map nothing beyond the submission),
// the future of a whole chunk otherwise.
type flight[Out any] struct {
	one  *future.Future[Out]
	many *future.Future[[]Result[Out]]
}

func (f flight[Out]) cancel() {
	if f.one != nil {
		f.one.Cancel()
	} else {
		f.many.Cancel()
	}
}

func (f flight[Out]) finished() bool {
	var s future.State
	if f.one != nil {
		s = f.one.State()
	} else {
		s = f.many.State()
	}
	return s == future.Done || s == future.Cancelled
}

func (f flight[Out]) done() <-chan struct{} {
	if f.one != nil {
		return f.one.Done()
	}
	return f.many.Done()
}

// flights is the window: Ordered's queue or Unordered's set.
type flights[Out any] interface {
	len() int
	add(flight[Out])
	// next waits for the flight to yield next; false if ctx ends first.
	next(ctx context.Context) (flight[Out], bool)
	// all returns the flights still out.
	all() []flight[Out]
}

// run is one iteration of a map.
type run[In, Out any] struct {
	ctx   context.Context
	cfg   Config
	s     Submitter[In, Out]
	yield func(Out, error) bool
	w     flights[Out]
}

// Ordered yields the results in input order.
func Ordered[In, Out any](ctx context.Context, in iter.Seq[In], cfg Config, s Submitter[In, Out]) iter.Seq2[Out, error] {
	return func(yield func(Out, error) bool) {
		r := run[In, Out]{ctx: ctx, cfg: cfg, s: s, yield: yield, w: &fifo[Out]{}}
		r.feed(in)
	}
}

// Unordered yields the results as their chunks finish.
func Unordered[In, Out any](ctx context.Context, in iter.Seq[In], cfg Config, s Submitter[In, Out]) iter.Seq2[Out, error] {
	return func(yield func(Out, error) bool) {
		w := &set[Out]{
			// With room for a whole window, a flight's callback never blocks.
			finished: make(chan int, cfg.Window),
			out:      make(map[int]flight[Out], cfg.Window),
		}
		r := run[In, Out]{ctx: ctx, cfg: cfg, s: s, yield: yield, w: w}
		r.feed(in)
	}
}

// feed reads in, submits a flight per chunk, yields the oldest (or first
// finished) flight whenever the window is full, then the rest. On the way
// out, for whatever reason, it cancels the flights still out and waits for
// them, so that no work of the map outlives its loop.
func (r *run[In, Out]) feed(in iter.Seq[In]) {
	defer func() {
		fs := r.w.all()
		for _, f := range fs {
			f.cancel()
		}
		for _, f := range fs {
			<-f.done()
		}
	}()
	more := true // false once a submission error ends the input
	if r.cfg.Chunk == 1 {
		for v := range in {
			if r.w.len() == r.cfg.Window && !r.yieldNext() {
				return
			}
			f, err := r.s.One(r.ctx, v)
			if err != nil {
				var zero Out
				f, more = future.Resolved(zero, err), !r.ends(err)
			}
			r.w.add(flight[Out]{one: f})
			if !more {
				break
			}
		}
	} else {
		stopped := false // the consumer or ctx stopped the map
		chunk := make([]In, 0, r.cfg.Chunk)
		flush := func() bool {
			if r.w.len() == r.cfg.Window && !r.yieldNext() {
				stopped = true
				return false
			}
			var f *future.Future[[]Result[Out]]
			f, more = r.submitChunk(chunk)
			r.w.add(flight[Out]{many: f})
			chunk = make([]In, 0, r.cfg.Chunk) // the submitted chunk belongs to its task
			return more
		}
		for v := range in {
			if chunk = append(chunk, v); len(chunk) == r.cfg.Chunk && !flush() {
				break
			}
		}
		if more && len(chunk) > 0 {
			flush()
		}
		if stopped {
			return
		}
	}
	for r.w.len() > 0 {
		if !r.yieldNext() {
			return
		}
	}
}

// ends reports whether err, from a submission or an input, ends the map.
func (r *run[In, Out]) ends(err error) bool {
	return r.cfg.StopOnError || errors.Is(err, future.ErrClosed) || r.ctx.Err() != nil
}

// submitChunk submits chunk and reports whether the map may read on.
func (r *run[In, Out]) submitChunk(chunk []In) (*future.Future[[]Result[Out]], bool) {
	if r.s.Many == nil {
		return r.gather(chunk)
	}
	f, err := r.s.Many(r.ctx, chunk)
	if err != nil {
		return failed[Out](len(chunk), err), !r.ends(err)
	}
	return f, true
}

// failed is the future of a chunk that could not be submitted.
func failed[Out any](n int, err error) *future.Future[[]Result[Out]] {
	rs := make([]Result[Out], n)
	for i := range rs {
		rs[i].Err = err
	}
	return future.Resolved(rs, nil)
}

// gather submits each input of chunk through One and returns the future of
// them all, and whether the map may read on; cancelling the future cancels
// each of them.
func (r *run[In, Out]) gather(chunk []In) (*future.Future[[]Result[Out]], bool) {
	p := future.NewPromise[[]Result[Out]]()
	rs := make([]Result[Out], len(chunk))
	parts := make(gathered[Out], len(chunk))
	var left atomic.Int64
	left.Store(int64(len(chunk)))
	finish := func() {
		if left.Add(-1) == 0 {
			p.Resolve(rs, nil)
		}
	}
	more := true
	for i, v := range chunk {
		f, err := r.s.One(r.ctx, v)
		if err != nil {
			rs[i].Err = err
			if more = !r.ends(err); !more {
				// Do not submit the rest: they would fail the same way.
				for j := i + 1; j < len(rs); j++ {
					rs[j].Err = err
				}
				left.Add(-int64(len(rs) - 1 - i))
				finish()
				break
			}
			finish()
			continue
		}
		parts[i] = f
		f.OnDone(func(v Out, err error) {
			rs[i] = Result[Out]{v, err}
			finish()
		})
	}
	// Start only now that parts is complete: cancelling the chunk from here
	// on cancels its parts and waits for them, rather than ending the
	// chunk's future while they run. If every part has already finished,
	// the future is done and Start does nothing.
	p.Start(parts)
	return p.Future(), more
}

// gathered stops the parts of a gathered chunk.
type gathered[Out any] []*future.Future[Out]

func (g gathered[Out]) Stop() {
	for _, f := range g {
		if f != nil {
			f.Cancel()
		}
	}
}

// yieldNext yields the results of the next flight; false means stop.
func (r *run[In, Out]) yieldNext() bool {
	f, ok := r.w.next(r.ctx)
	if !ok || r.ctx.Err() != nil {
		var zero Out
		r.yield(zero, r.ctx.Err())
		return false
	}
	if f.one != nil {
		v, err := f.one.Result(context.Background())
		if !r.yield(v, err) {
			return false
		}
		// A future cancelled before it ran (its ctx ended, or the
		// executor shut down) ends the map like a failed submission.
		return err == nil || (f.one.State() != future.Cancelled && !r.ends(err))
	}
	rs, err := f.many.Result(context.Background())
	if err != nil { // the chunk never ran
		var zero Out
		r.yield(zero, err)
		return false
	}
	for _, x := range rs {
		if !r.yield(x.V, x.Err) || (x.Err != nil && r.ends(x.Err)) {
			return false
		}
	}
	return true
}

// fifo is Ordered's window: the flights in input order.
type fifo[Out any] struct{ q []flight[Out] }

func (w *fifo[Out]) len() int           { return len(w.q) }
func (w *fifo[Out]) add(f flight[Out])  { w.q = append(w.q, f) }
func (w *fifo[Out]) all() []flight[Out] { return w.q }

func (w *fifo[Out]) next(ctx context.Context) (flight[Out], bool) {
	f := w.q[0]
	if !f.finished() {
		select {
		case <-f.done():
		case <-ctx.Done():
			return f, false // f stays in the window, to be cancelled
		}
	}
	w.q[0] = flight[Out]{}
	w.q = w.q[1:]
	return f, true
}

// set is Unordered's window: every flight sends its id to finished once
// done.
type set[Out any] struct {
	finished chan int
	out      map[int]flight[Out]
	nextID   int
}

func (w *set[Out]) len() int { return len(w.out) }

func (w *set[Out]) add(f flight[Out]) {
	id := w.nextID
	w.nextID++
	w.out[id] = f
	if f.one != nil {
		f.one.OnDone(func(Out, error) { w.finished <- id })
	} else {
		f.many.OnDone(func([]Result[Out], error) { w.finished <- id })
	}
}

func (w *set[Out]) all() []flight[Out] {
	fs := make([]flight[Out], 0, len(w.out))
	for _, f := range w.out {
		fs = append(fs, f)
	}
	return fs
}

func (w *set[Out]) next(ctx context.Context) (flight[Out], bool) {
	select {
	case id := <-w.finished:
		f := w.out[id]
		delete(w.out, id)
		return f, true
	case <-ctx.Done():
		return flight[Out]{}, false
	}
}
