package queue_test

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// BenchmarkQueueRedis is BenchmarkQueueMemory against the Redis broker at
// CONQ_TEST_REDIS_URL (make test starts a private one); skipped without it.
func BenchmarkQueueRedis(b *testing.B) {
	url := os.Getenv("CONQ_TEST_REDIS_URL")
	if url == "" {
		b.Skip("CONQ_TEST_REDIS_URL is not set")
	}
	ctx := context.Background()
	br, err := redisbroker.Open(ctx, url, redisbroker.Config{Prefix: "conqbench-" + rand.Text()[:8]})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	b.Run("enqueue+process", func(b *testing.B) { benchBroker(b, br, 100, 1000, false) })
	b.Run("process", func(b *testing.B) { benchBroker(b, br, 1000, 1000, true) })
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
	if err := w.Start(); err != nil {
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
