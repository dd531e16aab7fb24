package queue

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/internal/testenv/redisproc"
	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// How to run (the figures in docs/benchmarks.md and docs/scaling.md):
//
//	cd bench && go test -run '^$' -bench RedisScale -benchtime 1x ./queue/
//
// BenchmarkRedisScale: one queue, no-op tasks, on servers this benchmark
// starts (redisproc, append-only with fsync every second, no replicas so
// the CPU comparison is fair): one master, then a 3-master cluster with
// the queue unsharded (one slot, so one node: asynq's and BullMQ's limit)
// and in 3 shards (one per master). Each iteration enqueues
// CONQ_BENCH_TASKS (default 100,000) tasks in batches of 1000, then one
// worker (concurrency 64, prefetch 512, acks in batches of 512) runs them.
// Besides tasks/s it reports the CPU each Redis node and this process used
// while the worker ran (and Redis's while enqueueing), per task: on this 2-core machine Redis and the
// client compete for the same cores, so wall-clock throughput cannot show
// the cluster's capacity, but the Redis CPU per task per shard can (see
// the capacity model in docs/scaling.md).
func BenchmarkRedisScale(b *testing.B) {
	n := numTasks()
	fsync := redisproc.Options{AppendFsync: "everysec"}
	b.Run("1master", func(b *testing.B) {
		srv := redisproc.Standalone(b, fsync)
		scaleRun(b, n, "redis://"+srv.Addr(), []*redisproc.Server{srv}, 1)
	})
	var cl *redisproc.Cluster
	parent := b
	cluster := func() *redisproc.Cluster {
		if cl == nil {
			// One cluster for both runs (each has its own prefix), stopped
			// when the parent benchmark ends.
			cl = redisproc.StartCluster(parent, redisproc.ClusterOptions{Options: fsync, Masters: 3, Replicas: -1})
		}
		return cl
	}
	b.Run("cluster3-unsharded", func(b *testing.B) {
		c := cluster()
		scaleRun(b, n, c.URL(), c.Nodes, 1)
	})
	b.Run("cluster3-shards3", func(b *testing.B) {
		c := cluster()
		scaleRun(b, n, c.URL(), c.Nodes, 3)
	})
}

// scaleRun runs the iterations of one configuration.
func scaleRun(b *testing.B, n int, url string, nodes []*redisproc.Server, shards int) {
	for b.Loop() {
		b.StopTimer()
		prefix := "conqbench-" + randHex()
		ctx := context.Background()
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		br, err := redisbroker.Open(ctx, url+sep+"pool_size=64", redisbroker.Config{Prefix: prefix})
		if err != nil {
			b.Fatal(err)
		}
		var raw goredis.UniversalClient = br.Client()
		if shards > 1 {
			if err := br.SetShards(ctx, broker.ShardParams{Queue: queue.DefaultQueue, Shards: shards}); err != nil {
				b.Fatal(err)
			}
		}
		client, err := queue.NewClient(br, queue.ClientConfig{})
		if err != nil {
			b.Fatal(err)
		}
		env := &conqEnv{b: br, client: client}
		ecpu0 := nodeCPU(b, nodes)
		start := time.Now()
		env.enqueue(b, n, 1000)
		enq := time.Since(start)
		ecpu1 := nodeCPU(b, nodes)
		var enqCPU time.Duration
		for i := range nodes {
			enqCPU += ecpu1[i] - ecpu0[i]
		}
		b.ReportMetric(float64(enqCPU.Microseconds())/float64(n), "redis-enqueue-µs/task")

		cpu0 := nodeCPU(b, nodes)
		self0, _ := redisproc.ProcessCPU(os.Getpid())
		b.StartTimer()
		d := scaleWork(b, br, n)
		b.StopTimer()
		cpu1 := nodeCPU(b, nodes)
		self1, _ := redisproc.ProcessCPU(os.Getpid())

		b.ReportMetric(float64(n)/d.Seconds(), "tasks/s")
		b.ReportMetric(float64(n)/enq.Seconds(), "enqueue-tasks/s")
		var total time.Duration
		busiest := time.Duration(0)
		for i := range nodes {
			used := cpu1[i] - cpu0[i]
			total += used
			busiest = max(busiest, used)
			if used > 0 {
				b.ReportMetric(100*used.Seconds()/d.Seconds(), fmt.Sprintf("node%d-cpu%%", i+1))
			}
		}
		b.ReportMetric(float64(total.Microseconds())/float64(n), "redis-µs/task")
		b.ReportMetric(100*busiest.Seconds()/d.Seconds(), "busiest-node-cpu%")
		b.ReportMetric(float64((self1-self0).Microseconds())/float64(n), "client-µs/task")
		testenv.DeleteKeys(raw, prefix+":*")
		br.Close()
		b.StartTimer()
	}
}

// nodeCPU reads every node's CPU time so far.
func nodeCPU(b *testing.B, nodes []*redisproc.Server) []time.Duration {
	out := make([]time.Duration, len(nodes))
	for i, s := range nodes {
		d, err := s.CPU()
		if err != nil {
			b.Fatal(err)
		}
		out[i] = d
	}
	return out
}

// scaleWork is conqEnv.work on br: one worker until n tasks ran.
func scaleWork(b *testing.B, br broker.Broker, n int) time.Duration {
	w, err := queue.NewWorker(br, queue.WorkerConfig{
		Concurrency: concurrency, Prefetch: 512, AckBatchSize: 512,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		b.Fatal(err)
	}
	var done atomic.Int64
	finished := make(chan struct{})
	w.HandleFunc("noop", func(context.Context, *queue.TaskInfo) ([]byte, error) {
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil, nil
	})
	start := time.Now()
	if err := w.Start(context.Background()); err != nil {
		b.Fatal(err)
	}
	select {
	case <-finished:
	case <-time.After(10 * time.Minute):
		b.Fatalf("processed %d of %d tasks in 10m", done.Load(), n)
	}
	d := time.Since(start)
	if err := w.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	return d
}
