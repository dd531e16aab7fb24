package procpool

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/internal/window"
	"github.com/conqhq/conq/pool"
)

// SubmitJSON submits a task whose argument and result travel as JSON (see
// worker.HandleJSON and @task(json=True) in the Python SDK). Cancelling the
// returned future cancels the task. Out cannot be inferred: write both,
// SubmitJSON[In, Out].
func SubmitJSON[In, Out any](ctx context.Context, p *Pool, task string, in In) (*future.Future[Out], error) {
	raw, err := submitEncoded(ctx, p, task, in)
	if err != nil {
		return nil, err
	}
	out := new(future.Promise[Out])
	out.Start(stopperFunc(func() { raw.Cancel() }))
	raw.OnDone(func(b []byte, err error) {
		var v Out
		if err == nil {
			err = decodeResult(task, b, &v)
		}
		out.Resolve(v, err)
	})
	return out.Future(), nil
}

// CallJSON is SubmitJSON followed by waiting for the result.
func CallJSON[In, Out any](ctx context.Context, p *Pool, task string, in In) (Out, error) {
	f, err := SubmitJSON[In, Out](ctx, p, task, in)
	if err != nil {
		var zero Out
		return zero, err
	}
	return f.Result(ctx)
}

// MapJSON is Map with JSON arguments and results. An argument that cannot
// be encoded is that input's error, in its place.
func MapJSON[In, Out any](ctx context.Context, p *Pool, task string, in iter.Seq[In], opts ...pool.MapOption) iter.Seq2[Out, error] {
	cfg := window.NewConfig(p.Slots(), opts)
	raw := window.Ordered(ctx, in, cfg, window.Submitter[In, []byte]{
		One: func(ctx context.Context, v In) (*future.Future[[]byte], error) { return submitEncoded(ctx, p, task, v) },
	})
	return func(yield func(Out, error) bool) {
		for b, err := range raw {
			var v Out
			undecodable := false
			if err == nil {
				err = decodeResult(task, b, &v)
				undecodable = err != nil
			}
			// The window has not seen a decoding error: stop on it here as
			// it would.
			if !yield(v, err) || (undecodable && cfg.StopOnError) {
				return
			}
		}
	}
}

func submitEncoded[In any](ctx context.Context, p *Pool, task string, in In) (*future.Future[[]byte], error) {
	args, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("procpool: encoding the argument of %q: %w", task, err)
	}
	return p.Submit(ctx, task, args)
}

func decodeResult(task string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("procpool: decoding the result of %q: %w", task, err)
	}
	return nil
}

type stopperFunc func()

func (f stopperFunc) Stop() { f() }
