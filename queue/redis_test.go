package queue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

// TestRedisEndToEnd runs client, worker and inspector against the Redis
// broker, on one Redis and on a cluster with the queue in 3 shards; the
// semantics are covered in depth with the memory broker, and the broker
// itself by the conformance suite.
func TestRedisEndToEnd(t *testing.T) {
	eachRedis(t, func(t *testing.T, r redisTarget) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		b := r.brokers(t, 1)[0]
		client, _ := queue.NewClient(b, queue.ClientConfig{Options: []queue.Option{queue.Retention(time.Minute)}})
		w, err := queue.NewWorker(b, queue.WorkerConfig{Concurrency: 8, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		queue.HandleJSON(w, "square", func(ctx context.Context, n int) (int, error) {
			if n%10 == 3 {
				return 0, fmt.Errorf("%d is unlucky: %w", n, queue.SkipRetry)
			}
			return n * n, nil
		})
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer w.Shutdown(ctx)

		const n = 300
		tasks := make([]*queue.Task, n)
		for i := range tasks {
			tasks[i], _ = queue.NewJSONTask("square", i)
		}
		infos, err := client.EnqueueMany(ctx, tasks)
		if err != nil {
			t.Fatal(err)
		}
		for i, info := range infos {
			got, err := queue.ResultJSON[int](ctx, client, info.ID)
			var failed *queue.TaskFailedError
			switch {
			case i%10 == 3:
				if !errors.As(err, &failed) || failed.Attempts != 1 {
					t.Fatalf("task %d: %v, want a TaskFailedError after 1 attempt", i, err)
				}
			case err != nil || got != i*i:
				t.Fatalf("task %d: %d, %v", i, got, err)
			}
		}
		if _, err := client.Enqueue(ctx, queue.NewTask("square", []byte("1")), queue.TaskID(infos[0].ID)); !errors.Is(err, queue.ErrTaskIDConflict) {
			t.Fatalf("re-enqueue of a kept task ID = %v", err)
		}
		in := queue.NewInspector(b)
		q, err := in.Queue(ctx, queue.DefaultQueue)
		if err != nil || q.Counts[queue.StateCompleted] != n-n/10 || q.Counts[queue.StateDead] != n/10 {
			t.Fatalf("queue info %+v, %v", q, err)
		}
	})
}
