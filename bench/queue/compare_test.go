package queue

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// How to run (the numbers in docs/benchmarks.md):
//
//	source scripts/redis.sh; redis_start
//	cd bench && go test -run '^$' -bench 'Redis' -benchtime 1x ./queue/
//
// Each iteration handles CONQ_BENCH_TASKS no-op tasks (default 100000).
// asynq uses its own database (asynqDB), flushed before and after; conq
// uses a fresh key prefix in database 0.

const asynqDB = 15

func numTasks() int {
	if n, err := strconv.Atoi(os.Getenv("CONQ_BENCH_TASKS")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

func rawClient(tb testing.TB, db int) *goredis.Client {
	opts, err := redisbroker.ParseURL(testenv.RedisURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	opts.DB = db
	c := goredis.NewClient(opts)
	tb.Cleanup(func() { c.Close() })
	return c
}

func usedMemory(tb testing.TB, c *goredis.Client) int64 {
	info, err := c.Info(context.Background(), "memory").Result()
	if err != nil {
		tb.Fatal(err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	tb.Fatal("no used_memory in INFO")
	return 0
}

func randHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ---- conq

type conqEnv struct {
	b      *redisbroker.Broker
	client *queue.Client
	raw    *goredis.Client
}

func newConq(tb testing.TB) *conqEnv {
	tb.Helper()
	raw := rawClient(tb, 0)
	prefix := "conqbench-" + randHex()
	// The same pool size as asynq's below, for the 64-goroutine runs.
	u := testenv.RedisURL(tb)
	if strings.Contains(u, "?") {
		u += "&pool_size=64"
	} else {
		u += "?pool_size=64"
	}
	b, err := redisbroker.Open(context.Background(), u, redisbroker.Config{Prefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		b.Close()
		testenv.DeleteKeys(raw, prefix+":*")
	})
	client, err := queue.NewClient(b, queue.ClientConfig{})
	if err != nil {
		tb.Fatal(err)
	}
	return &conqEnv{b: b, client: client, raw: raw}
}

// conqEnqueue enqueues n no-op tasks with EnqueueMany in batches of batch.
func (e *conqEnv) enqueue(tb testing.TB, n, batch int) {
	ctx := context.Background()
	tasks := make([]*queue.Task, batch)
	for i := range tasks {
		tasks[i] = queue.NewTask("noop", nil)
	}
	for i := 0; i < n; i += batch {
		if _, err := e.client.EnqueueMany(ctx, tasks[:min(batch, n-i)]); err != nil {
			tb.Fatal(err)
		}
	}
}

// conqWorker runs a worker until n tasks ran; handler is called per task.
func (e *conqEnv) work(tb testing.TB, n int, concurrency int, handler func(t *queue.TaskInfo)) time.Duration {
	w, err := queue.NewWorker(e.b, queue.WorkerConfig{
		Concurrency:  concurrency,
		Prefetch:     512,
		AckBatchSize: 512,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	var done atomic.Int64
	finished := make(chan struct{})
	w.HandleFunc("noop", func(_ context.Context, t *queue.TaskInfo) ([]byte, error) {
		if handler != nil {
			handler(t)
		}
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil, nil
	})
	start := time.Now()
	if err := w.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-finished:
	case <-time.After(10 * time.Minute):
		tb.Fatalf("conq processed %d of %d tasks in 10m", done.Load(), n)
	}
	d := time.Since(start)
	if err := w.Shutdown(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return d
}

// ---- asynq

type asynqEnv struct {
	opt    asynq.RedisClientOpt
	client *asynq.Client
	raw    *goredis.Client
}

func newAsynq(tb testing.TB) *asynqEnv {
	tb.Helper()
	raw := rawClient(tb, asynqDB)
	raw.FlushDB(context.Background())
	o := raw.Options()
	opt := asynq.RedisClientOpt{Addr: o.Addr, Username: o.Username, Password: o.Password, DB: asynqDB, TLSConfig: o.TLSConfig, PoolSize: 64}
	client := asynq.NewClient(opt)
	tb.Cleanup(func() {
		client.Close()
		raw.FlushDB(context.Background())
	})
	return &asynqEnv{opt: opt, client: client, raw: raw}
}

// enqueue enqueues n no-op tasks from 64 goroutines: asynq has no batch
// enqueue, so parallel single enqueues are its fastest path.
func (e *asynqEnv) enqueue(tb testing.TB, n int, payload func() []byte) {
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				var p []byte
				if payload != nil {
					p = payload()
				}
				if _, err := e.client.EnqueueContext(ctx, asynq.NewTask("noop", p), asynq.MaxRetry(5)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
}

// work runs an asynq server until n tasks ran. checkInterval is asynq's
// TaskCheckInterval, how long it sleeps when it finds its queues empty (0:
// asynq's default, 1s).
func (e *asynqEnv) work(tb testing.TB, n, concurrency int, checkInterval time.Duration, handler func(t *asynq.Task)) time.Duration {
	srv := asynq.NewServer(e.opt, asynq.Config{
		Concurrency:       concurrency,
		TaskCheckInterval: checkInterval,
		LogLevel:          asynq.FatalLevel,
		Logger:            nopLogger{},
	})
	var done atomic.Int64
	finished := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(_ context.Context, t *asynq.Task) error {
		if handler != nil {
			handler(t)
		}
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	})
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		tb.Fatal(err)
	}
	select {
	case <-finished:
	case <-time.After(10 * time.Minute):
		tb.Fatalf("asynq processed %d of %d tasks in 10m", done.Load(), n)
	}
	d := time.Since(start)
	srv.Shutdown()
	return d
}

type nopLogger struct{}

func (nopLogger) Debug(...any) {}
func (nopLogger) Info(...any)  {}
func (nopLogger) Warn(...any)  {}
func (nopLogger) Error(...any) {}
func (nopLogger) Fatal(...any) {}

// ---- benchmarks

const concurrency = 64

// BenchmarkRedisEnqueue: time to enqueue N tasks, and Redis memory per
// pending task afterwards.
func BenchmarkRedisEnqueue(b *testing.B) {
	n := numTasks()
	b.Run("conq-batch1000", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			e := newConq(b)
			before := usedMemory(b, e.raw)
			b.StartTimer()
			start := time.Now()
			e.enqueue(b, n, 1000)
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "tasks/s")
			b.ReportMetric(float64(usedMemory(b, e.raw)-before)/float64(n), "redis-B/task")
		}
	})
	b.Run("conq-single-64goroutines", func(b *testing.B) {
		for b.Loop() {
			e := newConq(b)
			start := time.Now()
			var next atomic.Int64
			var wg sync.WaitGroup
			for range 64 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for next.Add(1) <= int64(n) {
						if _, err := e.client.Enqueue(context.Background(), queue.NewTask("noop", nil)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "tasks/s")
		}
	})
	b.Run("asynq-single-64goroutines", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			e := newAsynq(b)
			before := usedMemory(b, e.raw)
			b.StartTimer()
			start := time.Now()
			e.enqueue(b, n, nil)
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "tasks/s")
			b.ReportMetric(float64(usedMemory(b, e.raw)-before)/float64(n), "redis-B/task")
		}
	})
}

// BenchmarkRedisProcess: N tasks are enqueued first, then one worker
// process (concurrency 64) runs them; the clock covers the processing.
func BenchmarkRedisProcess(b *testing.B) {
	n := numTasks()
	b.Run("conq", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			e := newConq(b)
			e.enqueue(b, n, 1000)
			b.StartTimer()
			d := e.work(b, n, concurrency, nil)
			b.ReportMetric(float64(n)/d.Seconds(), "tasks/s")
		}
	})
	b.Run("asynq", func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			e := newAsynq(b)
			e.enqueue(b, n, nil)
			b.StartTimer()
			d := e.work(b, n, concurrency, 0, nil)
			b.ReportMetric(float64(n)/d.Seconds(), "tasks/s")
		}
	})
}

// BenchmarkRedisLatency: tasks enqueued one at a time at a fixed rate
// (CONQ_BENCH_RATE, default 1000/s) for CONQ_BENCH_SECONDS (default 5) to
// an idle worker; reports enqueue-to-start percentiles.
func BenchmarkRedisLatency(b *testing.B) {
	rate := envInt("CONQ_BENCH_RATE", 1000)
	secs := envInt("CONQ_BENCH_SECONDS", 5)
	n := rate * secs
	b.Run("conq", func(b *testing.B) {
		for b.Loop() {
			e := newConq(b)
			lat := newLatencies(n)
			go pace(b, rate, n, func() error {
				_, err := e.client.Enqueue(context.Background(), queue.NewTask("noop", nil))
				return err
			})
			e.work(b, n, concurrency, func(t *queue.TaskInfo) { lat.add(time.Since(t.EnqueuedAt)) })
			lat.report(b)
		}
	})
	for _, check := range []time.Duration{0, time.Millisecond} {
		name := "asynq"
		if check > 0 {
			name += "-check" + check.String()
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				e := newAsynq(b)
				lat := newLatencies(n)
				go pace(b, rate, n, func() error {
					p := binary.LittleEndian.AppendUint64(nil, uint64(time.Now().UnixNano()))
					_, err := e.client.Enqueue(asynq.NewTask("noop", p))
					return err
				})
				e.work(b, n, concurrency, check, func(t *asynq.Task) {
					at := int64(binary.LittleEndian.Uint64(t.Payload()))
					lat.add(time.Since(time.Unix(0, at)))
				})
				lat.report(b)
			}
		})
	}
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// pace calls enqueue n times at rate per second.
func pace(tb testing.TB, rate, n int, enqueue func() error) {
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		if err := enqueue(); err != nil {
			tb.Error(err)
			return
		}
	}
}

type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func newLatencies(n int) *latencies { return &latencies{d: make([]time.Duration, 0, n)} }

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) report(b *testing.B) {
	l.mu.Lock()
	defer l.mu.Unlock()
	slices.Sort(l.d)
	q := func(p float64) float64 {
		return float64(l.d[min(len(l.d)-1, int(p*float64(len(l.d))))].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(q(0.999), "p99.9-ms")
	b.Logf("%d samples: p50 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms", len(l.d), q(0.5), q(0.99), q(0.999), q(1))
}

// TestSmoke runs both queues on a few tasks, so `make test` checks the
// harness works without running the full benchmark.
func TestSmoke(t *testing.T) {
	const n = 500
	c := newConq(t)
	c.enqueue(t, n, 100)
	c.work(t, n, 8, nil)
	a := newAsynq(t)
	a.enqueue(t, n, nil)
	a.work(t, n, 8, 0, nil)
}
