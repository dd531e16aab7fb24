package pool

import (
	"context"
	"iter"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/internal/window"
)

// MapOption tunes a Map: pool.Map and MapUnordered, and procpool.Map and
// procpool.MapJSON, which take the same options. See "Map and
// MapUnordered" in the package documentation for what they change.
type MapOption = window.Option

// ChunkSize makes each task handle n inputs in a row, which pays off when a
// single call is too small to be worth a task. The default is 1. (A process
// pool has no batched call: there a chunk's calls are submitted together
// and take one place in the window.)
func ChunkSize(n int) MapOption { return window.Chunk(n) }

// Window bounds how many tasks (chunks) a Map keeps in flight; the input is
// not read further ahead than that. The default is 8 per worker of the pool.
func Window(n int) MapOption { return window.Size(n) }

// StopOnError makes a Map stop after yielding the first error of fn,
// cancelling what it has in flight; by default (false) it goes on and
// yields every input's (value, error) pair.
func StopOnError(stop bool) MapOption { return window.StopOnError(stop) }

// Map runs fn on every value of in, on p, and yields the results in input
// order, one (value, error) pair per input; a panic in fn is yielded as a
// *PanicError. See the package documentation for the window, the chunks
// and when it stops.
func Map[In, Out any](ctx context.Context, p *Pool, in iter.Seq[In], fn func(context.Context, In) (Out, error), opts ...MapOption) iter.Seq2[Out, error] {
	return window.Ordered(ctx, in, window.NewConfig(p.Workers(), opts), submitter(p, fn))
}

// MapUnordered is Map yielding results as they complete rather than in
// input order; it keeps the workers busier when durations vary. Put
// whatever identifies an input into Out if you need it.
func MapUnordered[In, Out any](ctx context.Context, p *Pool, in iter.Seq[In], fn func(context.Context, In) (Out, error), opts ...MapOption) iter.Seq2[Out, error] {
	return window.Unordered(ctx, in, window.NewConfig(p.Workers(), opts), submitter(p, fn))
}

// submitter runs a single input as a task of its own and a chunk as one
// task calling fn on each input in turn.
func submitter[In, Out any](p *Pool, fn func(context.Context, In) (Out, error)) window.Submitter[In, Out] {
	return window.Submitter[In, Out]{
		One: func(ctx context.Context, v In) (*future.Future[Out], error) {
			return Submit(ctx, p, func(ctx context.Context) (Out, error) { return fn(ctx, v) })
		},
		Many: func(ctx context.Context, chunk []In) (*future.Future[[]window.Result[Out]], error) {
			return Submit(ctx, p, runChunk(chunk, fn))
		},
	}
}

// runChunk returns the task that maps one chunk.
func runChunk[In, Out any](chunk []In, fn func(context.Context, In) (Out, error)) func(context.Context) ([]window.Result[Out], error) {
	return func(ctx context.Context) ([]window.Result[Out], error) {
		rs := make([]window.Result[Out], len(chunk))
		for i, v := range chunk {
			if i > 0 && ctx.Err() != nil {
				// Cancelled mid-chunk: skip the rest rather than call fn
				// with a dead ctx.
				for j := i; j < len(rs); j++ {
					rs[j].Err = ctx.Err()
				}
				break
			}
			rs[i].V, rs[i].Err = callSafe(ctx, fn, v)
		}
		return rs, nil
	}
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
