package queue_test

import (
	"context"
	"log/slog"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/memory"
)

// BenchmarkQueueMemory measures enqueue+process throughput of no-op tasks
// through the memory broker: a producer enqueues in batches while a worker
// runs them; the clock stops when the last one is recorded.
func BenchmarkQueueMemory(b *testing.B) {
	for _, batch := range []int{1, 100} {
		b.Run("enqueue_batch="+strconv.Itoa(batch), func(b *testing.B) {
			br := memory.New(memory.Config{})
			defer br.Close()
			benchBroker(b, br, batch, 256, false)
		})
	}
}

// benchBroker enqueues b.N no-op tasks in batches and times until a worker
// has run them all; with preload the tasks are enqueued before the clock
// starts, so only processing is measured.
func benchBroker(b *testing.B, br broker.Broker, batch, prefetch int, preload bool) {
	ctx := context.Background()
	client, _ := queue.NewClient(br, queue.ClientConfig{})
	w, err := queue.NewWorker(br, queue.WorkerConfig{
		Concurrency:  2 * runtime.GOMAXPROCS(0),
		Prefetch:     prefetch,
		AckBatchSize: 1000,
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
	tasks := make([]*queue.Task, batch)
	for i := range tasks {
		tasks[i] = queue.NewTask("noop", nil)
	}
	enqueue := func() {
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
	}
	if preload {
		enqueue()
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := w.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	defer w.Shutdown(ctx)
	if !preload {
		enqueue()
	}
	<-finished
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "tasks/s")
}
