package cli

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/internal/primes"
	"github.com/conqhq/conq/queue"
)

// The queue mode of conq primes: every number is a task on the broker
// (embedded by default, Redis with --broker), run by an in-process worker
// of --workers concurrency with a Go handler.

const (
	primesQueueName = "conq-primes"
	primesQueueKind = "conq.primes.check"
)

func init() {
	registerPrimesMode("queue", primesMode{
		Summary: "the task queue: a task per number, an in-process worker of --workers (embedded broker, or Redis with --broker)",
		Run:     runPrimesQueue,
		Setup:   setupPrimesQueue,
	})
}

// setupPrimesQueue adds --broker to conq primes; its value is bound to
// this command's runner, so concurrent commands stay independent.
func setupPrimesQueue(cmd *cobra.Command) func(string) (primesRunner, error) {
	var url string
	cmd.Flags().StringVar(&url, "broker", "", "with --mode queue: broker URL, redis://host[:port][/db] or rediss://...; default: the embedded in-process broker")
	return func(mode string) (primesRunner, error) {
		if mode != "queue" {
			if cmd.Flags().Changed("broker") {
				return nil, usageError("--broker is only for --mode queue")
			}
			return nil, nil
		}
		if url != "" {
			if err := checkBrokerURL(url); err != nil {
				return nil, err
			}
		}
		cfg := primesQueueConfig{url: url, stderr: cmd.ErrOrStderr()}
		return func(ctx context.Context, workers int, numbers []uint64, report func(primeCheck)) error {
			return runPrimesQueueWith(ctx, cfg, workers, numbers, report)
		}, nil
	}
}

// primesQueueConfig is what the queue mode needs from the command line.
type primesQueueConfig struct {
	url    string
	stderr io.Writer
}

// primesQueueResult is a task's result.
type primesQueueResult struct {
	N       uint64 `json:"n"`
	Prime   bool   `json:"prime"`
	Elapsed int64  `json:"elapsed_ns"`
}

func runPrimesQueue(ctx context.Context, workers int, numbers []uint64, report func(primeCheck)) error {
	return runPrimesQueueWith(ctx, primesQueueConfig{stderr: io.Discard}, workers, numbers, report)
}

func runPrimesQueueWith(ctx context.Context, cfg primesQueueConfig, workers int, numbers []uint64, report func(primeCheck)) error {
	logger := quietLogger(cfg.stderr)
	b, err := openBroker(ctx, cfg.url, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	w, err := queue.NewWorker(b, queue.WorkerConfig{
		Queues:      map[string]int{primesQueueName: 1},
		Concurrency: workers,
		Prefetch:    -1, // long tasks: a worker takes one at a time
		Logger:      logger,
	})
	if err != nil {
		return err
	}
	queue.HandleJSON(w, primesQueueKind, func(_ context.Context, n uint64) (primesQueueResult, error) {
		t0 := time.Now()
		p := primes.IsPrime(n)
		return primesQueueResult{N: n, Prime: p, Elapsed: int64(time.Since(t0))}, nil
	})
	if err := w.Start(ctx); err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		_ = w.Shutdown(sctx)
	}()

	client, err := queue.NewClient(b, queue.ClientConfig{Logger: logger, Options: []queue.Option{
		queue.Queue(primesQueueName), queue.Retention(10 * time.Minute), queue.MaxRetries(2),
	}})
	if err != nil {
		return err
	}
	run := rand.Text()[:10]
	tasks := make([]*queue.Task, len(numbers))
	for i, n := range numbers {
		tasks[i] = queue.NewTask(primesQueueKind, []byte(strconv.FormatUint(n, 10)), queue.TaskID(run+"-"+strconv.Itoa(i)))
	}
	infos, err := client.EnqueueMany(ctx, tasks)
	if err != nil {
		return fmt.Errorf("enqueue the numbers: %w", err)
	}

	// Wait for every result and report each as it completes.
	type outcome struct {
		id  string
		r   primesQueueResult
		err error
	}
	outcomes := make(chan outcome, len(infos))
	for _, info := range infos {
		go func() {
			r, err := queue.ResultJSON[primesQueueResult](ctx, client, info.ID)
			outcomes <- outcome{info.ID, r, err}
		}()
	}
	in := queue.NewInspector(b)
	var firstErr error
	for range infos {
		o := <-outcomes
		if o.err != nil {
			if firstErr == nil {
				firstErr = o.err
			}
			continue
		}
		if firstErr == nil {
			report(primeCheck{N: o.r.N, Prime: o.r.Prime, Elapsed: time.Duration(o.r.Elapsed)})
		}
		// The result was kept only for us: tidy up.
		_ = in.DeleteTask(context.WithoutCancel(ctx), primesQueueName, o.id)
	}
	return firstErr
}
