package procpool

import (
	"context"
	"encoding/json"
	"fmt"
	"iter"

	"github.com/conqhq/conq/future"
)

// SubmitJSON submits a task whose argument and result travel as JSON (see
// worker.HandleJSON and @task(json=True) in the Python SDK). Cancelling the
// returned future cancels the task.
func SubmitJSON[Out, In any](ctx context.Context, p *Pool, task string, in In) (*future.Future[Out], error) {
	args, err := json.Marshal(in)
	if err != nil {
		return nil, fmt.Errorf("procpool: encoding the argument of %q: %w", task, err)
	}
	raw, err := p.Submit(ctx, task, args)
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
func CallJSON[Out, In any](ctx context.Context, p *Pool, task string, in In) (Out, error) {
	f, err := SubmitJSON[Out](ctx, p, task, in)
	if err != nil {
		var zero Out
		return zero, err
	}
	return f.Result(ctx)
}

// MapJSON is Map with JSON arguments and results.
func MapJSON[Out, In any](ctx context.Context, p *Pool, task string, in iter.Seq[In]) iter.Seq2[Out, error] {
	return func(yield func(Out, error) bool) {
		var encErr error
		args := func(yieldArg func([]byte) bool) {
			for v := range in {
				b, err := json.Marshal(v)
				if err != nil {
					encErr = fmt.Errorf("procpool: encoding an argument of %q: %w", task, err)
					return
				}
				if !yieldArg(b) {
					return
				}
			}
		}
		for b, err := range p.Map(ctx, task, args) {
			var v Out
			if err == nil {
				err = decodeResult(task, b, &v)
			}
			if !yield(v, err) {
				return
			}
		}
		if encErr != nil {
			var zero Out
			yield(zero, encErr)
		}
	}
}

func decodeResult(task string, b []byte, v any) error {
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("procpool: decoding the result of %q: %w", task, err)
	}
	return nil
}

type stopperFunc func()

func (f stopperFunc) Stop() { f() }
