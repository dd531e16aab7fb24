package worker_test

import (
	"context"
	"errors"
	"log"
	"strings"

	"github.com/conqhq/conq/procpool/worker"
)

// A worker program: register tasks, then serve the pool that started it.
func Example() {
	worker.Handle("upper", func(_ context.Context, args []byte) ([]byte, error) {
		return []byte(strings.ToUpper(string(args))), nil
	})
	worker.HandleJSON("sum", func(ctx context.Context, xs []float64) (float64, error) {
		var total float64
		for _, x := range xs {
			if err := ctx.Err(); err != nil {
				return 0, err // cancelled by the pool
			}
			total += x
		}
		return total, nil
	})
	if err := worker.Run(); err != nil && !errors.Is(err, worker.ErrNotWorker) {
		log.Fatal(err)
	}
}

// Choosing the error type the caller sees (procpool.TaskError.Type).
func ExampleError() {
	worker.Handle("parse", func(_ context.Context, args []byte) ([]byte, error) {
		if len(args) == 0 {
			return nil, &worker.Error{Type: "EmptyInput", Message: "nothing to parse"}
		}
		return args, nil
	})
}
