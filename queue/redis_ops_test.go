package queue_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// redisTarget is a Redis deployment the Redis tests of this package run
// on, with the broker configuration they use there.
type redisTarget struct {
	url    string
	client func(t *testing.T) goredis.UniversalClient // for cleaning up keys
	cfg    redisbroker.Config
}

// eachRedis runs fn on the test Redis and on the test Redis Cluster (3
// masters in make test) with every queue in 3 shards, one per master; each
// as a subtest, skipped (or failed under CI) on its own when missing.
func eachRedis(t *testing.T, fn func(t *testing.T, r redisTarget)) {
	t.Run("standalone", func(t *testing.T) {
		fn(t, redisTarget{url: testenv.RedisURL(t), client: func(t *testing.T) goredis.UniversalClient { return testenv.RedisClient(t) }})
	})
	t.Run("cluster", func(t *testing.T) {
		fn(t, redisTarget{url: testenv.RedisClusterURL(t), client: func(t *testing.T) goredis.UniversalClient { return testenv.RedisClusterClient(t) },
			cfg: redisbroker.Config{DefaultShards: 3}})
	})
}

// brokers opens n brokers, each with its own connection pool (as n
// processes would have), sharing one fresh key prefix that is deleted when
// t ends.
func (r redisTarget) brokers(t *testing.T, n int) []broker.Broker {
	t.Helper()
	prefix := testenv.UniquePrefix(t, r.client(t)) // keys deleted after the brokers are closed
	var out []broker.Broker
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		cfg := r.cfg
		cfg.Prefix, cfg.Logger = prefix, slog.New(slog.DiscardHandler)
		b, err := redisbroker.Open(ctx, r.url, cfg)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	t.Cleanup(func() {
		for _, b := range out {
			b.Close()
		}
	})
	return out
}

func TestRedisSchedulerTwoInstancesFireEachTickOnce(t *testing.T) {
	eachRedis(t, func(t *testing.T, r redisTarget) {
		bs := r.brokers(t, 2)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		offset := wallOffset()
		done := make(chan error, len(bs))
		for _, b := range bs {
			s, err := queue.NewScheduler(b, queue.SchedulerConfig{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.RegisterEntry(queue.Entry{Name: "every-second", Spec: "* * * * * *", Task: queue.NewTask("tick", nil), Options: []queue.Option{queue.Queue("cron")}}); err != nil {
				t.Fatal(err)
			}
			go func() { done <- s.Run(ctx) }()
		}
		time.Sleep(4500 * time.Millisecond)
		cancel()
		for range bs {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		tasks, err := bs[0].ListTasks(context.Background(), broker.ListParams{Queue: "cron", State: queue.StatePending, Offset: 0, Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		if d := wallOffset() - offset; d > 250*time.Millisecond || d < -250*time.Millisecond {
			// The wall clock was stepped during the test (a VM paused and
			// resynchronised, NTP). Schedulers follow the wall clock: at
			// a step forward they rightly fire the latest tick of the new
			// time, once, skipping those in between; a step back pauses
			// them. The ticks on either side of the step must still be
			// consecutive seconds.
			t.Logf("the wall clock moved %v against the monotonic one during the test", d)
			checkTicksAcrossStep(t, tasks, d)
			return
		}
		checkTicks(t, tasks, 4, 5)
	})
}

// wallOffset is the wall clock minus the monotonic one: it changes only
// when the wall clock is stepped.
func wallOffset() time.Duration {
	now := time.Now()
	return time.Duration(now.UnixNano()) - now.Sub(testStart)
}

var testStart = time.Now()

// checkTicksAcrossStep is checkTicks for a run during which the wall
// clock was stepped by d: one gap is allowed, no longer than the step
// forward (and a second); every other pair of ticks is one second apart.
func checkTicksAcrossStep(t *testing.T, tasks []*queue.TaskInfo, d time.Duration) {
	t.Helper()
	ticks := tickTimes(t, tasks)
	if len(ticks) < 2 {
		t.Fatalf("ticks %v: want at least 2 in 4.5 s", ticks)
	}
	gaps := 0
	for i := 1; i < len(ticks); i++ {
		switch gap := ticks[i] - ticks[i-1]; {
		case gap == 1000:
		case gap > 1000 && gap <= 2000+max(d, 0).Milliseconds():
			gaps++
		default:
			t.Fatalf("ticks %v: %d ms between two ticks with the clock stepped by %v", ticks, gap, d)
		}
	}
	if gaps > 1 {
		t.Fatalf("ticks %v: %d gaps for one step of the clock", ticks, gaps)
	}
}

// tickTimes returns the ticks (ms) of periodic tasks, from their IDs,
// sorted.
func tickTimes(t *testing.T, tasks []*queue.TaskInfo) []int64 {
	t.Helper()
	var ticks []int64
	for _, task := range tasks {
		i := strings.LastIndexByte(task.ID, ':')
		ms, err := strconv.ParseInt(task.ID[i+1:], 10, 64)
		if err != nil {
			t.Fatalf("task ID %q", task.ID)
		}
		ticks = append(ticks, ms)
	}
	slices.Sort(ticks)
	return ticks
}

// checkTicks checks that tasks are one per tick, consecutive seconds, and
// between lo and hi of them.
func checkTicks(t *testing.T, tasks []*queue.TaskInfo, lo, hi int) {
	t.Helper()
	ticks := tickTimes(t, tasks)
	if len(ticks) < lo || len(ticks) > hi {
		t.Fatalf("%d ticks enqueued, want %d to %d", len(ticks), lo, hi)
	}
	for i := 1; i < len(ticks); i++ {
		if ticks[i]-ticks[i-1] != 1000 {
			t.Fatalf("ticks %v: not one per second, each once", ticks)
		}
	}
}

func TestRedisConcurrencyLimitThreeWorkers(t *testing.T) {
	eachRedis(t, func(t *testing.T, r redisTarget) {
		checkConcurrencyLimit(t, r.brokers(t, 3), 30)
	})
}

func TestRedisRateLimitThreeWorkers(t *testing.T) {
	eachRedis(t, func(t *testing.T, r redisTarget) {
		if testing.Short() {
			t.Skip("10s test")
		}
		checkRateLimit(t, r.brokers(t, 3), 20, 10*time.Second)
	})
}

func TestRedisUnique(t *testing.T) {
	eachRedis(t, func(t *testing.T, r redisTarget) {
		b := r.brokers(t, 1)[0]
		if _, ok := b.(broker.UniqueEnqueuer); !ok {
			t.Skip("the Redis broker does not implement unique tasks yet")
		}
		ctx := context.Background()
		client, _ := queue.NewClient(b, queue.ClientConfig{})
		task := queue.NewTask("job", []byte("x"), queue.Unique(time.Hour))
		if _, err := client.Enqueue(ctx, task); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(ctx, task); !errors.Is(err, queue.ErrDuplicateTask) {
			t.Fatalf("duplicate: %v", err)
		}
		w, err := queue.NewWorker(b, limitConfig(nil))
		if err != nil {
			t.Fatal(err)
		}
		ran := make(chan struct{}, 2)
		w.HandleFunc("job", func(context.Context, *queue.TaskInfo) ([]byte, error) { ran <- struct{}{}; return nil, nil })
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer w.Shutdown(ctx)
		<-ran
		// Released on completion (shortly after the handler returns).
		if !waitFor(func() bool { _, err := client.Enqueue(ctx, task); return err == nil }) {
			t.Fatal("lock never released after completion")
		}
		<-ran
		// TTL expiry.
		short := queue.NewTask("other", nil, queue.Unique(time.Second))
		if _, err := client.Enqueue(ctx, short); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Enqueue(ctx, short); !errors.Is(err, queue.ErrDuplicateTask) {
			t.Fatalf("duplicate: %v", err)
		}
		time.Sleep(1100 * time.Millisecond)
		if _, err := client.Enqueue(ctx, short); err != nil {
			t.Fatalf("after the TTL: %v", err)
		}
	})
}

// TestRedisCancelAndHeartbeat: a worker on Redis lists its running task in
// its heartbeat, and cancelling that task stops the handler and ends it
// dead with kind "cancelled".
func TestRedisCancelAndHeartbeat(t *testing.T) {
	eachRedis(t, func(t *testing.T, r redisTarget) {
		b := r.brokers(t, 1)[0]
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		started := make(chan struct{}, 1)
		causes := make(chan error, 1)
		w, err := queue.NewWorker(b, queue.WorkerConfig{
			Concurrency: 2, LeaseDuration: 3 * time.Second, ExtendInterval: 50 * time.Millisecond,
			HeartbeatInterval: 50 * time.Millisecond, PollInterval: 50 * time.Millisecond,
			Logger: slog.New(slog.DiscardHandler),
		})
		if err != nil {
			t.Fatal(err)
		}
		w.HandleFunc("wait", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			started <- struct{}{}
			<-ctx.Done()
			causes <- context.Cause(ctx)
			return []byte("ignored"), nil // success after a cancel still ends dead
		})
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer w.Shutdown(context.Background())
		c, err := queue.NewClient(b, queue.ClientConfig{})
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Enqueue(ctx, queue.NewTask("wait", nil), queue.MaxRetries(3))
		if err != nil {
			t.Fatal(err)
		}
		<-started
		insp := queue.NewInspector(b)
		deadline := time.Now().Add(10 * time.Second)
		for {
			ws, err := insp.Workers(ctx)
			if err == nil && len(ws) == 1 && len(ws[0].Running) == 1 && ws[0].Running[0].ID == info.ID {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Workers = %+v, %v", ws, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if st, err := insp.CancelTask(ctx, "", info.ID); err != nil || st != queue.StateActive {
			t.Fatalf("CancelTask = %q, %v", st, err)
		}
		select {
		case cause := <-causes:
			if !errors.Is(cause, queue.ErrTaskCancelled) {
				t.Fatalf("cause %v", cause)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("handler not cancelled")
		}
		for {
			got, err := insp.Task(ctx, "", info.ID)
			if err == nil && got.State == queue.StateDead {
				if last := got.Errors[len(got.Errors)-1]; got.Attempts != 1 || last.Kind != "cancelled" {
					t.Fatalf("cancelled task: %+v", got)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task %+v, %v", got, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err := w.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if ws, err := insp.Workers(ctx); err != nil || len(ws) != 0 {
			t.Fatalf("Workers after shutdown = %+v, %v", ws, err)
		}
	})
}
