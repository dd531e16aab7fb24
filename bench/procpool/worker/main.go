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
	worker.Handle("echo", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })
	if err := worker.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
