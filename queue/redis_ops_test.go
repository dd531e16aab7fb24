package queue_test

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// redisURL returns the private test Redis, skipping (or failing under CI /
// CONQ_REQUIRE_SERVERS) when there is none.
func redisURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("CONQ_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("CI") != "" || os.Getenv("CONQ_REQUIRE_SERVERS") != "" {
			t.Fatal("CONQ_TEST_REDIS_URL is not set; start a private server with `source scripts/redis.sh; redis_start`")
		}
		t.Skip("CONQ_TEST_REDIS_URL is not set; run `source scripts/redis.sh; redis_start` to run the Redis tests")
	}
	return u
}

// redisBrokers opens n brokers, each with its own connection pool (as n
// processes would have), sharing one fresh key prefix that is deleted when
// t ends.
func redisBrokers(t *testing.T, n int) []broker.Broker {
	t.Helper()
	url := redisURL(t)
	prefix := "conqtest-ops-" + rand.Text()[:10]
	var out []broker.Broker
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b, err := redisbroker.Open(ctx, url, redisbroker.Config{Prefix: prefix, Logger: slog.New(slog.DiscardHandler)})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	rb := out[0].(*redisbroker.Broker)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		iter := rb.Client().Scan(ctx, 0, prefix+":*", 1000).Iterator()
		for iter.Next(ctx) {
			rb.Client().Unlink(ctx, iter.Val())
		}
		for _, b := range out {
			b.Close()
		}
	})
	return out
}

func TestRedisSchedulerTwoInstancesFireEachTickOnce(t *testing.T) {
	bs := redisBrokers(t, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
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
	tasks, err := bs[0].ListTasks(context.Background(), "cron", queue.StatePending, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	checkTicks(t, tasks, 4, 5)
}

// checkTicks checks that tasks are one per tick, consecutive seconds, and
// between lo and hi of them.
func checkTicks(t *testing.T, tasks []*queue.TaskInfo, lo, hi int) {
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
	checkConcurrencyLimit(t, redisBrokers(t, 3), 30)
}

func TestRedisRateLimitThreeWorkers(t *testing.T) {
	if testing.Short() {
		t.Skip("10s test")
	}
	checkRateLimit(t, redisBrokers(t, 3), 20, 10*time.Second)
}

func TestRedisUnique(t *testing.T) {
	b := redisBrokers(t, 1)[0]
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
	if err := w.Start(); err != nil {
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
}
