package queue

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
	"github.com/conqhq/conq/tests/netlab"
)

// How to run (root, for the network namespace; the figures in
// docs/benchmarks.md):
//
//	source scripts/redis.sh; redis_start
//	cd bench && go test -run '^$' -bench RemoteWorker -benchtime 1x ./queue/
//
// BenchmarkRemoteWorker: one worker on another "host" (a network
// namespace, tests/netlab) reaches the test Redis only through a Toxiproxy
// that adds 1 ms, then 5 ms, to every round trip; conq's worker and
// asynq's, each with concurrency 64, in the same run. CONQ_BENCH_REMOTE_TASKS
// (default 20,000) tasks for conq and CONQ_BENCH_REMOTE_ASYNQ_TASKS
// (default 2,000) for asynq are enqueued first from this host, then the
// remote worker runs them: tasks/s is per worker. asynq's processor
// dequeues one task per round trip, one after the other, whatever its
// concurrency (so about 1/RTT tasks/s: 2,000 tasks already take 15 s at
// 5 ms); conq fetches, acknowledges and renews leases in batches.
func BenchmarkRemoteWorker(b *testing.B) {
	n := envInt("CONQ_BENCH_REMOTE_TASKS", 20_000)
	na := envInt("CONQ_BENCH_REMOTE_ASYNQ_TASKS", 2_000)
	opts, err := redisbroker.ParseURL(testenv.RedisURL(b))
	if err != nil {
		b.Fatal(err)
	}
	lab := netlab.New(b, 1)
	ns := lab.NS[0]
	p := ns.Proxy(b, opts.Addr)
	remote := func(db int) *goredis.Client {
		c := goredis.NewClient(&goredis.Options{Addr: p.Addr(), DB: db, Dialer: ns.DialContext, PoolSize: concurrency})
		b.Cleanup(func() { c.Close() })
		return c
	}
	for _, lat := range []time.Duration{time.Millisecond, 5 * time.Millisecond} {
		if err := p.SetLatency(lat); err != nil {
			b.Fatal(err)
		}
		var conqRate, asynqRate float64
		b.Run(fmt.Sprintf("conq/%v", lat), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				e := newConq(b)
				e.enqueue(b, n, 1000)
				wb, err := redisbroker.New(redisbroker.Config{Client: remote(opts.DB), Prefix: e.b.Prefix()})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				d := scaleWork(b, wb, n)
				conqRate = float64(n) / d.Seconds()
				b.ReportMetric(conqRate, "tasks/s")
				wb.Close()
			}
		})
		b.Run(fmt.Sprintf("asynq/%v", lat), func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				e := newAsynq(b)
				e.enqueue(b, na, nil)
				b.StartTimer()
				d := asynqRemoteWork(b, remote(asynqDB), na)
				asynqRate = float64(na) / d.Seconds()
				b.ReportMetric(asynqRate, "tasks/s")
			}
		})
		if conqRate > 0 && asynqRate > 0 {
			b.Logf("added latency %v: conq %.0f tasks/s per worker, asynq %.0f: %.1fx", lat, conqRate, asynqRate, conqRate/asynqRate)
		}
	}
}

// asynqRemoteWork is asynqEnv.work with a server on rc (through the proxy).
func asynqRemoteWork(b *testing.B, rc *goredis.Client, n int) time.Duration {
	srv := asynq.NewServerFromRedisClient(rc, asynq.Config{
		Concurrency: concurrency, LogLevel: asynq.FatalLevel, Logger: nopLogger{},
	})
	var done atomic.Int64
	finished := make(chan struct{})
	mux := asynq.NewServeMux()
	mux.HandleFunc("noop", func(context.Context, *asynq.Task) error {
		if done.Add(1) == int64(n) {
			close(finished)
		}
		return nil
	})
	start := time.Now()
	if err := srv.Start(mux); err != nil {
		b.Fatal(err)
	}
	select {
	case <-finished:
	case <-time.After(10 * time.Minute):
		b.Fatalf("asynq processed %d of %d tasks in 10m", done.Load(), n)
	}
	d := time.Since(start)
	srv.Shutdown()
	return d
}
