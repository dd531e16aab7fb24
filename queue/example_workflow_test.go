package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
)

// flowWorker starts a memory broker, a worker that serves add(a, b) and
// tsum(list) on it, and a client; stop shuts them down.
func flowWorker() (b *memory.Broker, client *queue.Client, stop func()) {
	b = memory.New(memory.Config{})
	w, err := queue.NewWorker(b, queue.WorkerConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	// A step made by NewCallTask is a call: the step's input (the result
	// of what precedes it) is prepended to its positional arguments.
	w.HandleFunc("add", func(_ context.Context, t *queue.TaskInfo) ([]byte, error) {
		var a, b int
		if err := queue.ScanArgs(t, &a, &b); err != nil {
			return nil, err
		}
		return json.Marshal(a + b)
	})
	// A chord's body gets the list of its members' results: tsum() is
	// called as tsum([...]), a call of one argument, which HandleJSON
	// binds.
	queue.HandleJSON(w, "tsum", func(_ context.Context, xs []int) (int, error) {
		s := 0
		for _, x := range xs {
			s += x
		}
		return s, nil
	})
	if err := w.Start(context.Background()); err != nil {
		panic(err)
	}
	if client, err = queue.NewClient(b, queue.ClientConfig{}); err != nil {
		panic(err)
	}
	return b, client, func() { w.Shutdown(context.Background()); b.Close() }
}

// add returns the step add(args...).
func add(args ...any) queue.Flow {
	t, err := queue.NewCallTask("add", args, nil)
	if err != nil {
		panic(err)
	}
	return queue.Step(t)
}

// Three adds in parallel, then tsum once, with their results in member
// order: Celery's chord(group(add.s(1, 1), ...), tsum.s()).
func ExampleChord() {
	ctx := context.Background()
	_, client, stop := flowWorker()
	defer stop()

	tsum, _ := queue.NewCallTask("tsum", nil, nil)
	h, err := client.EnqueueFlow(ctx, queue.Chord([]queue.Flow{add(1, 1), add(2, 2), add(3, 3)}, queue.Step(tsum)))
	if err != nil {
		panic(err)
	}
	res, err := h.Result(ctx)
	fmt.Println(string(res), err)
	// Output: 12 <nil>
}

// add(2, 2), then add(4, 4) with the 4 the first step returned; then each
// step as the inspector shows it.
func ExampleChain() {
	ctx := context.Background()
	b, client, stop := flowWorker()
	defer stop()

	h, err := client.EnqueueFlow(ctx, queue.Chain(add(2, 2), add(4)))
	if err != nil {
		panic(err)
	}
	res, err := h.Result(ctx)
	fmt.Println(string(res), err)

	wf, _ := queue.NewInspector(b).Workflow(ctx, h.ID)
	for i, st := range wf.Steps {
		fmt.Println(i, st.Task.Kind, st.State, st.Attempts, string(st.Result))
	}
	// Output:
	// 8 <nil>
	// 0 add completed 1 4
	// 1 add completed 1 8
}
