package procpool

import (
	"context"
	"iter"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/internal/window"
	"github.com/conqhq/conq/pool"
)

// Map runs task on each argument and yields the results in input order, one
// (result, error) pair per argument, like pool.Map, with the same options
// (pool.Window, pool.ChunkSize, pool.StopOnError) and the same policy,
// written down in package pool: args is read lazily, at most Window chunks
// ahead (default 8 per slot: per call the
// workers take at once, see Slots), so it may be unbounded; a failed task
// yields its error and Map goes on unless StopOnError is set; ctx ending
// or the pool closing ends it; breaking out of the loop, or ctx ending,
// cancels the tasks in flight and waits for them.
func (p *Pool) Map(ctx context.Context, task string, args iter.Seq[[]byte], opts ...pool.MapOption) iter.Seq2[[]byte, error] {
	return window.Ordered(ctx, args, window.NewConfig(p.Slots(), opts), window.Submitter[[]byte, []byte]{
		One: func(ctx context.Context, a []byte) (*future.Future[[]byte], error) { return p.Submit(ctx, task, a) },
	})
}
