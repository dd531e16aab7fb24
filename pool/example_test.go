package pool_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/pool"
)

func ExampleSubmit() {
	p := pool.MustNew(pool.Config{Workers: 2})
	defer p.Close()
	ctx := context.Background()

	f, err := pool.Submit(ctx, p, func(ctx context.Context) (string, error) {
		return strings.ToUpper("hello"), nil
	})
	if err != nil {
		panic(err)
	}
	v, err := f.Result(ctx)
	fmt.Println(v, err)
	// Output: HELLO <nil>
}

func ExampleMap() {
	p := pool.MustNew(pool.Config{Workers: 4})
	defer p.Close()
	square := func(_ context.Context, n int) (int, error) { return n * n, nil }

	for v, err := range pool.Map(context.Background(), p, slices.Values([]int{1, 2, 3, 4, 5}), square) {
		if err != nil {
			panic(err)
		}
		fmt.Print(v, " ")
	}
	fmt.Println()
	// Output: 1 4 9 16 25
}

func ExampleMap_chunked() {
	p := pool.MustNew(pool.Config{Workers: 4})
	defer p.Close()
	double := func(_ context.Context, n int) (int, error) { return 2 * n, nil }

	// Tiny calls: hand each task 100 of them.
	sum := 0
	for v, err := range pool.Map(context.Background(), p, slices.Values(make([]int, 1000)), func(ctx context.Context, _ int) (int, error) {
		return double(ctx, 1)
	}, pool.ChunkSize(100)) {
		if err != nil {
			panic(err)
		}
		sum += v
	}
	fmt.Println(sum)
	// Output: 2000
}

// By default every input gets its (value, error) pair; StopOnError makes
// the first error the last pair and cancels the rest.
func ExampleStopOnError() {
	p := pool.MustNew(pool.Config{Workers: 2})
	defer p.Close()
	parse := func(_ context.Context, s string) (int, error) { return strconv.Atoi(s) }
	in := slices.Values([]string{"1", "2", "x", "4"})

	for v, err := range pool.Map(context.Background(), p, in, parse) {
		fmt.Println(v, err)
	}
	fmt.Println("--")
	for v, err := range pool.Map(context.Background(), p, in, parse, pool.StopOnError(true)) {
		fmt.Println(v, err)
	}
	// Output:
	// 1 <nil>
	// 2 <nil>
	// 0 strconv.Atoi: parsing "x": invalid syntax
	// 4 <nil>
	// --
	// 1 <nil>
	// 2 <nil>
	// 0 strconv.Atoi: parsing "x": invalid syntax
}

func ExampleMapUnordered() {
	p := pool.MustNew(pool.Config{Workers: 3})
	defer p.Close()
	sleepy := func(_ context.Context, ms int) (int, error) {
		time.Sleep(time.Duration(ms) * 50 * time.Millisecond)
		return ms, nil
	}
	for v, err := range pool.MapUnordered(context.Background(), p, slices.Values([]int{3, 1, 2}), sleepy) {
		fmt.Print(v, err, " ")
	}
	fmt.Println()
	// Output: 1 <nil> 2 <nil> 3 <nil>
}

func Example_wait() {
	p := pool.MustNew(pool.Config{Workers: 2})
	defer p.Close()
	ctx := context.Background()

	var fs []*future.Future[int]
	for i := 1; i <= 3; i++ {
		f, _ := pool.Submit(ctx, p, func(ctx context.Context) (int, error) {
			if i == 2 {
				return 0, fmt.Errorf("task %d failed", i)
			}
			return i * 10, nil
		})
		fs = append(fs, f)
	}
	done, notDone := future.Wait(ctx, fs, future.AllCompleted)
	fmt.Println(len(done), "done,", len(notDone), "not done")
	for _, f := range done {
		fmt.Println(f.Result(ctx))
	}
	// Output:
	// 3 done, 0 not done
	// 10 <nil>
	// 0 task 2 failed
	// 30 <nil>
}

func Example_asCompleted() {
	p := pool.MustNew(pool.Config{Workers: 3})
	defer p.Close()
	ctx := context.Background()

	var fs []*future.Future[string]
	for _, d := range []time.Duration{150, 50, 100} {
		f, _ := pool.Submit(ctx, p, func(ctx context.Context) (string, error) {
			time.Sleep(d * time.Millisecond)
			return fmt.Sprintf("slept %dms", d), nil
		})
		fs = append(fs, f)
	}
	for f := range future.AsCompleted(ctx, fs) {
		fmt.Println(f.Result(ctx))
	}
	// Output:
	// slept 50ms <nil>
	// slept 100ms <nil>
	// slept 150ms <nil>
}

func ExamplePool_Shutdown() {
	p := pool.MustNew(pool.Config{Workers: 1})
	ctx := context.Background()
	f, _ := pool.Submit(ctx, p, func(ctx context.Context) (string, error) {
		<-ctx.Done() // a long task that honours its ctx
		return "stopped early", ctx.Err()
	})
	deadline, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	fmt.Println(p.Shutdown(deadline))
	fmt.Println(f.Result(ctx))
	_, err := pool.Submit(ctx, p, func(ctx context.Context) (string, error) { return "", nil })
	fmt.Println(err)
	_ = p.Close()
	// Output:
	// context deadline exceeded
	// stopped early context canceled
	// conq: closed
}
