package queue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
)

type Add struct{ A, B int }

// Enqueue a task, run it on a worker and wait for its result, all against
// the in-process broker.
func Example() {
	ctx := context.Background()
	b := memory.New(memory.Config{})
	defer b.Close()

	w, err := queue.NewWorker(b, queue.WorkerConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	queue.HandleJSON(w, "add", func(ctx context.Context, a Add) (int, error) { return a.A + a.B, nil })
	if err := w.Start(context.Background()); err != nil {
		panic(err)
	}
	defer w.Shutdown(ctx)

	client, err := queue.NewClient(b, queue.ClientConfig{})
	if err != nil {
		panic(err)
	}
	// Retention keeps the result for Result to read.
	info, err := queue.EnqueueJSON(ctx, client, "add", Add{2, 3}, queue.Retention(time.Minute))
	if err != nil {
		panic(err)
	}
	sum, err := queue.ResultJSON[int](ctx, client, info.ID)
	fmt.Println(sum, err)
	// Output: 5 <nil>
}

// A handler that can never succeed returns SkipRetry: the task is dead at
// once and Result reports its error history.
func ExampleSkipRetry() {
	ctx := context.Background()
	b := memory.New(memory.Config{})
	defer b.Close()

	w, _ := queue.NewWorker(b, queue.WorkerConfig{Logger: slog.New(slog.DiscardHandler)})
	w.HandleFunc("charge", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) {
		return nil, fmt.Errorf("card %s declined: %w", t.Payload, queue.SkipRetry)
	})
	w.Start(context.Background())
	defer w.Shutdown(ctx)

	client, _ := queue.NewClient(b, queue.ClientConfig{})
	info, _ := client.Enqueue(ctx, queue.NewTask("charge", []byte("4242")), queue.TaskID("order-17"))
	_, err := client.Result(ctx, info.ID)
	var failed *queue.TaskFailedError
	if errors.As(err, &failed) {
		fmt.Println(failed.Attempts, "attempt:", failed.Errors[0].Message)
	}
	// Output: 1 attempt: card 4242 declined: skip retry
}

// The inspector shows queues and manages their tasks.
func ExampleInspector() {
	ctx := context.Background()
	b := memory.New(memory.Config{})
	defer b.Close()
	client, _ := queue.NewClient(b, queue.ClientConfig{})
	client.Enqueue(ctx, queue.NewTask("email.send", nil), queue.Queue("emails"))
	client.Enqueue(ctx, queue.NewTask("email.send", nil), queue.Queue("emails"), queue.ProcessIn(time.Hour))

	in := queue.NewInspector(b)
	in.PauseQueue(ctx, "emails")
	qs, _ := in.Queues(ctx)
	for _, q := range qs {
		fmt.Printf("%s paused=%v pending=%d scheduled=%d\n", q.Name, q.Paused, q.Counts[queue.StatePending], q.Counts[queue.StateScheduled])
	}
	// Output: emails paused=true pending=1 scheduled=1
}
