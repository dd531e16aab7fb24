package procpool_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/conqhq/conq/procpool"
)

// workerCommand is the Go worker the examples run (built by TestMain from
// internal/testworker, which uses the procpool/worker SDK); in a program it
// would be your worker binary or, say, []string{"python3", "worker.py"}.
var workerCommand = func() []string { return []string{procpool.WorkerPathForExamples()} }

func ExamplePool_Submit() {
	ctx := context.Background()
	p, err := procpool.New(ctx, procpool.Config{Command: workerCommand(), Workers: 2})
	if err != nil {
		panic(err)
	}
	defer p.Shutdown(ctx)

	f, err := p.Submit(ctx, "echo", []byte("hello from a worker"))
	if err != nil {
		panic(err)
	}
	out, err := f.Result(ctx)
	fmt.Println(string(out), err)
	// Output: hello from a worker <nil>
}

func ExampleMapJSON() {
	ctx := context.Background()
	p, err := procpool.New(ctx, procpool.Config{Command: workerCommand(), Workers: 2})
	if err != nil {
		panic(err)
	}
	defer p.Shutdown(ctx)

	for n, err := range procpool.MapJSON[int, int](ctx, p, "double", slices.Values([]int{1, 2, 3})) {
		fmt.Println(n, err)
	}
	// Output:
	// 2 <nil>
	// 4 <nil>
	// 6 <nil>
}

func ExampleWorkerCrashedError() {
	ctx := context.Background()
	p, err := procpool.New(ctx, procpool.Config{
		Command: workerCommand(), Workers: 1,
		Logger: slog.New(slog.DiscardHandler), // the dying worker's stderr is logged
	})
	if err != nil {
		panic(err)
	}
	defer p.Shutdown(ctx)

	_, err = p.Call(ctx, "exit", []byte("3")) // the worker calls os.Exit(3)
	var crash *procpool.WorkerCrashedError
	if errors.As(err, &crash) {
		fmt.Println("exit code:", crash.ExitCode, "last stderr line:", crash.Stderr[len(crash.Stderr)-1])
	}
	// The pool replaced the worker.
	out, err := p.Call(ctx, "echo", []byte("still serving"))
	fmt.Println(string(out), err)
	// Output:
	// exit code: 3 last stderr line: testworker: exiting with 3
	// still serving <nil>
}
