// Command worker is the Go worker of the process-pool benchmarks.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/conqhq/conq/procpool/worker"
)

func main() {
	worker.Handle("noop", func(context.Context, []byte) ([]byte, error) { return nil, nil })
	// echo answers with its argument: in shared memory, that is a handle on
	// the argument's own segment, no copy.
	worker.Handle("echo", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })
	// copy writes a new result of the argument's size: one copy, into a
	// segment of the worker's when the result is large.
	worker.Handle("copy", func(ctx context.Context, b []byte) ([]byte, error) {
		out := worker.ResultBuffer(ctx, len(b))
		copy(out, b)
		return out, nil
	})
	if err := worker.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
