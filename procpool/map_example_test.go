package procpool_test

import (
	"context"
	"fmt"
	"slices"

	"github.com/conqhq/conq/pool"
	"github.com/conqhq/conq/procpool"
)

// procpool.Map takes pool.Map's options: here at most 4 calls in flight,
// and a stop at the first failure.
func ExamplePool_Map() {
	ctx := context.Background()
	p := procpool.MustNew(ctx, procpool.Config{Command: workerCommand(), Workers: 2})
	defer p.Shutdown(ctx)

	args := slices.Values([][]byte{[]byte("a"), []byte("b"), []byte("c")})
	for out, err := range p.Map(ctx, "echo", args, pool.Window(4)) {
		fmt.Println(string(out), err)
	}
	for _, err := range p.Map(ctx, "fail", args, pool.StopOnError(true)) {
		fmt.Println(err)
	}
	// Output:
	// a <nil>
	// b <nil>
	// c <nil>
	// procpool: task "fail" failed: ValueError: a
}
