// Command testworker is the queue worker process of the reliability tests:
// a queue.Worker on a Redis broker with Go handlers that record every
// execution in Redis, so a test can count runs per task across crashes.
//
//	testworker -broker URL -prefix P [-concurrency N] [-lease D]
//
// Kinds:
//
//	record  HINCRBY <prefix>:runs <task id> 1, then sleep the payload's
//	        "sleep_ms"; the result is the run count
//	typed   HandleJSON with {"a": int, "b": int} -> a+b
//	collect RPUSH <prefix>:collected <payload> (a chord body's input);
//	        the result is the list's length
//
// SIGTERM or SIGINT shut it down gracefully.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/conqhq/conq/queue"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

func main() {
	url := flag.String("broker", "", "Redis URL")
	prefix := flag.String("prefix", "conq", "key prefix")
	concurrency := flag.Int("concurrency", 4, "worker concurrency")
	lease := flag.Duration("lease", 2*time.Second, "lease duration")
	flag.Parse()
	if err := run(*url, *prefix, *concurrency, *lease); err != nil {
		fmt.Fprintln(os.Stderr, "testworker:", err)
		os.Exit(1)
	}
}

func run(url, prefix string, concurrency int, lease time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	b, err := redisbroker.Open(ctx, url, redisbroker.Config{Prefix: prefix, Logger: logger})
	if err != nil {
		return err
	}
	defer b.Close()
	rdb := b.Client()
	runsKey := prefix + ":runs"

	w, err := queue.NewWorker(b, queue.WorkerConfig{
		Concurrency:   concurrency,
		Prefetch:      concurrency, // fixed, not adaptive: the kill test's bound counts it
		LeaseDuration: lease,
		Logger:        logger,
		RetryDelay:    func(int, error, *queue.TaskInfo) time.Duration { return 100 * time.Millisecond },
	})
	if err != nil {
		return err
	}
	w.HandleFunc("record", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) {
		n, err := rdb.HIncrBy(ctx, runsKey, t.ID, 1).Result()
		if err != nil {
			return nil, fmt.Errorf("record run: %w", err)
		}
		var args struct {
			SleepMS int `json:"sleep_ms"`
		}
		_ = json.Unmarshal(t.Payload, &args)
		if args.SleepMS > 0 {
			select {
			case <-time.After(time.Duration(args.SleepMS) * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return []byte(strconv.FormatInt(n, 10)), nil
	})
	w.HandleFunc("collect", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) {
		n, err := rdb.RPush(ctx, prefix+":collected", t.Payload).Result()
		if err != nil {
			return nil, fmt.Errorf("collect: %w", err)
		}
		return []byte(strconv.FormatInt(n, 10)), nil
	})
	type sum struct{ A, B int }
	queue.HandleJSON(w, "typed", func(_ context.Context, s sum) (int, error) { return s.A + s.B, nil })
	fmt.Fprintln(os.Stderr, "testworker: ready", os.Getpid())
	return w.Run(ctx)
}
