package procpool

import (
	"context"
	"iter"

	"github.com/conqhq/conq/future"
)

// Map runs task on each argument and yields the results in input order, like
// an executor's map. It keeps up to twice as many tasks in flight as there
// are workers and pulls arguments lazily, so args may be unbounded. A failed
// task yields its error and Map goes on; the caller decides whether to stop.
// Breaking out of the loop, or ctx ending, cancels the tasks in flight.
func (p *Pool) Map(ctx context.Context, task string, args iter.Seq[[]byte]) iter.Seq2[[]byte, error] {
	return func(yield func([]byte, error) bool) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		next, stop := iter.Pull(args)
		defer stop()
		window := max(2*p.cfg.Workers, 2)
		pending := make([]*future.Future[[]byte], 0, window)
		more := true
		for {
			for more && len(pending) < window {
				a, ok := next()
				if !ok {
					more = false
					break
				}
				f, err := p.Submit(ctx, task, a)
				if err != nil {
					f = future.Resolved[[]byte](nil, err)
				}
				pending = append(pending, f)
			}
			if len(pending) == 0 {
				return
			}
			f := pending[0]
			pending = pending[1:]
			if !yield(f.Result(ctx)) {
				return
			}
		}
	}
}
