package future_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conqhq/conq/future"
)

// An executor keeps the Promise and hands out its Future.
func ExamplePromise() {
	var p future.Promise[string] // the zero value is ready; embed it in a task struct
	f := p.Future()
	go func() {
		if p.Start(nil) { // false if the future was cancelled first
			p.Resolve("hello", nil)
		}
	}()
	v, err := f.Result(context.Background())
	fmt.Println(v, err, f.State())
	// Output: hello <nil> done
}

func ExampleFuture_Cancel() {
	p := future.NewPromise[int]()
	f := p.Future()
	fmt.Println(f.Cancel()) // not started: cancelled
	_, err := f.Result(context.Background())
	fmt.Println(f.State(), future.IsCancelled(err), errors.Is(err, context.Canceled))
	fmt.Println(p.Start(nil)) // the executor skips it
	// Output:
	// true
	// cancelled true true
	// false
}

func ExampleFuture_OnDone() {
	p := future.NewPromise[int]()
	f := p.Future()
	f.OnDone(func(v int, err error) { fmt.Println("first", v, err) })
	f.OnDone(func(v int, err error) { fmt.Println("second", v, err) })
	p.Resolve(7, nil)                                                // runs the callbacks, in order, here
	f.OnDone(func(v int, err error) { fmt.Println("late", v, err) }) // already done: runs at once
	// Output:
	// first 7 <nil>
	// second 7 <nil>
	// late 7 <nil>
}

func ExampleFuture_Result_timeout() {
	p := future.NewPromise[int]()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err := p.Future().Result(ctx) // gives up waiting; the work carries on
	fmt.Println(err, p.Future().State())
	// Output: context deadline exceeded pending
}

func ExampleWait() {
	var ps []*future.Promise[int]
	var fs []*future.Future[int]
	for range 3 {
		p := future.NewPromise[int]()
		ps, fs = append(ps, p), append(fs, p.Future())
	}
	ps[1].Resolve(0, errors.New("failed"))
	done, notDone := future.Wait(context.Background(), fs, future.FirstError)
	fmt.Println(len(done), "done,", len(notDone), "not done:", done[0].Err(context.Background()))
	// Output: 1 done, 2 not done: failed
}

func ExampleAsCompleted() {
	var fs []*future.Future[string]
	for _, d := range []time.Duration{150, 50, 100} {
		p := future.NewPromise[string]()
		fs = append(fs, p.Future())
		time.AfterFunc(d*time.Millisecond, func() { p.Resolve(fmt.Sprint(int(d), "ms"), nil) })
	}
	for f := range future.AsCompleted(context.Background(), fs) {
		v, _ := f.Result(context.Background())
		fmt.Println(v)
	}
	// Output:
	// 50ms
	// 100ms
	// 150ms
}
