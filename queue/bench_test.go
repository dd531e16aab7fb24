package queue_test

import (
	"context"
	"log/slog"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
)

// BenchmarkQueueMemory measures enqueue+process throughput of no-op tasks
// through the memory broker: a producer enqueues in batches while a worker
// runs them; the clock stops when the last one is recorded.
func BenchmarkQueueMemory(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run("enqueue_batch="+itoa(batch), func(b *testing.B) { benchQueue(b, batch) })
	}
}

func itoa(n int) string {
	if n == 1 {
		return "1"
	}
	return "100"
}

func benchQueue(b *testing.B, batch int) {
	ctx := context.Background()
	br := memory.New(memory.Config{})
	defer br.Close()
	client, _ := queue.NewClient(br, queue.ClientConfig{})
	w, err := queue.NewWorker(br, queue.WorkerConfig{
		Concurrency:  2 * runtime.GOMAXPROCS(0),
		Prefetch:     256,
		AckBatchSize: 512,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	var done atomic.Int64
	finished := make(chan struct{})
	target := int64(b.N)
	w.HandleFunc("noop", func(context.Context, *queue.TaskInfo) ([]byte, error) {
		if done.Add(1) == target {
			close(finished)
		}
		return nil, nil
	})
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	defer w.Shutdown(ctx)

	tasks := make([]*queue.Task, batch)
	for i := range tasks {
		tasks[i] = queue.NewTask("noop", nil)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		if n == 1 {
			_, err = client.Enqueue(ctx, tasks[0])
		} else {
			_, err = client.EnqueueMany(ctx, tasks[:n])
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	<-finished
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}
