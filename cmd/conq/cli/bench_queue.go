package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
)

func init() { addCommand(newBenchCmd) }

// benchSubcommands lets benchmark files add subcommands to conq bench.
var benchSubcommands = []func() *cobra.Command{newBenchQueueCmd}

func newBenchCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure conq's throughput and latency",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError("conq bench needs a subcommand (see conq bench --help)")
		},
	}
	for _, f := range benchSubcommands {
		cmd.AddCommand(f())
	}
	return cmd
}

type benchQueueOptions struct {
	broker      string
	tasks       int
	concurrency int
	rate        float64
	batch       int
	queue       string
	timeout     time.Duration
	json        bool
}

// benchKind is the kind of the benchmark's no-op tasks.
const benchKind = "conq.bench.noop"

func newBenchQueueCmd() *cobra.Command {
	var o benchQueueOptions
	cmd := &cobra.Command{
		Use:   "queue [--broker URL] --tasks N --concurrency C [--rate R]",
		Short: "Measure the task queue: enqueue and processing throughput, enqueue-to-start latency",
		Long: `Bench queue runs no-op tasks through a client and an in-process worker on the
broker (the embedded one by default, or Redis with --broker).

Without --rate it measures throughput: it enqueues --tasks tasks with
EnqueueMany in batches of --batch while no worker runs (enqueue
throughput), then starts the worker and times how long it takes to run them
all (processing throughput). The latencies it reports then include the time
tasks waited in the backlog.

With --rate it measures latency: the worker runs from the start and tasks
are enqueued one by one at a fixed rate (tasks per second); the latency of a
task is from the moment it was enqueued to the moment its handler started.`,
		Example: `  conq bench queue --tasks 100000 --concurrency 50
  conq bench queue --broker redis://localhost:6379/0 --tasks 10000 --concurrency 20 --rate 1000 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBenchQueue(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	cmd.Flags().StringVar(&o.broker, "broker", "", "broker URL: redis://[user:pass@]host[:port][/db] or rediss://...; default: the embedded in-process broker")
	f.IntVarP(&o.tasks, "tasks", "n", 10000, "number of tasks")
	f.IntVarP(&o.concurrency, "concurrency", "c", 20, "worker concurrency")
	f.Float64Var(&o.rate, "rate", 0, "enqueue this many tasks per second, one by one, while the worker runs (0: throughput mode)")
	f.IntVar(&o.batch, "batch", 1000, "EnqueueMany batch size in throughput mode")
	f.StringVar(&o.queue, "queue", "conq-bench", "queue to use")
	f.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up if the run takes longer")
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// BenchQueueResult is the outcome of conq bench queue.
type BenchQueueResult struct {
	Broker      string  `json:"broker"`
	Mode        string  `json:"mode"` // "throughput" or "rate"
	Tasks       int     `json:"tasks"`
	Concurrency int     `json:"concurrency"`
	Batch       int     `json:"batch,omitempty"`
	Rate        float64 `json:"rate,omitempty"`

	EnqueueSeconds float64 `json:"enqueue_seconds"`
	EnqueuePerSec  float64 `json:"enqueue_per_sec"`
	ProcessSeconds float64 `json:"process_seconds"`
	ProcessPerSec  float64 `json:"process_per_sec"`
	// Latency from enqueue to handler start, in milliseconds.
	LatencyMs  LatencyMs `json:"latency_ms"`
	Duplicates int64     `json:"duplicates"` // extra runs (at-least-once re-deliveries)
}

// LatencyMs holds latency percentiles in milliseconds.
type LatencyMs struct {
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	Max  float64 `json:"max"`
	Mean float64 `json:"mean"`
}

func runBenchQueue(ctx context.Context, o benchQueueOptions, stdout, stderr io.Writer) error {
	switch {
	case o.tasks < 1:
		return usageError("--tasks must be at least 1")
	case o.concurrency < 1:
		return usageError("--concurrency must be at least 1")
	case o.batch < 1:
		return usageError("--batch must be at least 1")
	case o.rate < 0 || math.IsNaN(o.rate) || math.IsInf(o.rate, 0):
		return usageError("--rate must be a positive number of tasks per second")
	}
	logger := quietLogger(stderr)
	b, err := openBroker(ctx, o.broker, logger)
	if err != nil {
		return failure(err)
	}
	defer b.Close()
	res, err := benchQueue(ctx, b, o, logger)
	if err != nil {
		return failure(err)
	}
	res.Broker = "memory (embedded)"
	if o.broker != "" {
		res.Broker = redactedURL(o.broker)
	}
	if o.json {
		return writeJSON(stdout, res)
	}
	return printBenchQueue(stdout, res)
}

// benchQueue runs the benchmark on b.
func benchQueue(ctx context.Context, b broker.Broker, o benchQueueOptions, logger *slog.Logger) (*BenchQueueResult, error) {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	client, err := queue.NewClient(b, queue.ClientConfig{Options: []queue.Option{queue.Queue(o.queue), queue.MaxRetries(3)}, Logger: logger})
	if err != nil {
		return nil, err
	}
	run := rand.Text()[:10] // tells this run's tasks from leftovers of others
	n := o.tasks
	lat := make([]time.Duration, n)
	seen := make([]atomic.Bool, n)
	var distinct, dups atomic.Int64
	var lastDone atomic.Int64 // unix nanos of the last first-run
	allDone := make(chan struct{})

	w, err := queue.NewWorker(b, queue.WorkerConfig{
		Queues:      map[string]int{o.queue: 1},
		Concurrency: o.concurrency,
		Logger:      logger,
	})
	if err != nil {
		return nil, err
	}
	w.HandleFunc(benchKind, func(_ context.Context, t *queue.TaskInfo) ([]byte, error) {
		now := time.Now()
		r, idx, ok := strings.Cut(string(t.Payload), ":")
		i, err := strconv.Atoi(idx)
		if !ok || r != run || err != nil || i < 0 || i >= n {
			return nil, nil // another run's leftover: drop it
		}
		if seen[i].Swap(true) {
			dups.Add(1)
			return nil, nil
		}
		lat[i] = now.Sub(t.EnqueuedAt)
		lastDone.Store(now.UnixNano())
		if distinct.Add(1) == int64(n) {
			close(allDone)
		}
		return nil, nil
	})
	task := func(i int) *queue.Task {
		return queue.NewTask(benchKind, []byte(run+":"+strconv.Itoa(i)))
	}

	res := &BenchQueueResult{Tasks: n, Concurrency: o.concurrency}
	var start time.Time
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return w.Shutdown(sctx)
	}
	defer stop()

	if o.rate == 0 {
		res.Mode, res.Batch = "throughput", o.batch
		batch := make([]*queue.Task, 0, o.batch)
		t0 := time.Now()
		for i := 0; i < n; i += o.batch {
			batch = batch[:0]
			for j := i; j < min(i+o.batch, n); j++ {
				batch = append(batch, task(j))
			}
			if _, err := client.EnqueueMany(ctx, batch); err != nil {
				return nil, fmt.Errorf("enqueue tasks %d..%d: %w", i, i+len(batch)-1, err)
			}
		}
		res.EnqueueSeconds = time.Since(t0).Seconds()
		start = time.Now()
		if err := w.Start(ctx); err != nil {
			return nil, err
		}
	} else {
		res.Mode, res.Rate = "rate", o.rate
		if err := w.Start(ctx); err != nil {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond) // let the worker reach its first wait
		start = time.Now()
		interval := float64(time.Second) / o.rate
		for sent := 0; sent < n; {
			due := min(int(float64(time.Since(start))/interval)+1, n)
			if due <= sent {
				next := start.Add(time.Duration(float64(sent) * interval))
				time.Sleep(time.Until(next))
				continue
			}
			var err error
			if due-sent == 1 {
				_, err = client.Enqueue(ctx, task(sent))
			} else { // behind schedule: catch up in one call
				batch := make([]*queue.Task, 0, due-sent)
				for j := sent; j < due; j++ {
					batch = append(batch, task(j))
				}
				_, err = client.EnqueueMany(ctx, batch)
			}
			if err != nil {
				return nil, fmt.Errorf("enqueue task %d: %w", sent, err)
			}
			sent = due
		}
		res.EnqueueSeconds = time.Since(start).Seconds()
	}

	select {
	case <-allDone:
	case <-ctx.Done():
		return nil, fmt.Errorf("only %d of %d tasks ran before the benchmark timed out: %w", distinct.Load(), n, ctx.Err())
	}
	res.ProcessSeconds = time.Unix(0, lastDone.Load()).Sub(start).Seconds()
	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("worker shutdown: %w", err)
	}
	res.EnqueuePerSec = float64(n) / max(res.EnqueueSeconds, 1e-9)
	res.ProcessPerSec = float64(n) / max(res.ProcessSeconds, 1e-9)
	res.LatencyMs = percentiles(lat)
	res.Duplicates = dups.Load()
	return res, nil
}

func percentiles(d []time.Duration) LatencyMs {
	if len(d) == 0 {
		return LatencyMs{}
	}
	s := slices.Clone(d)
	slices.Sort(s)
	ms := func(x time.Duration) float64 { return math.Round(float64(x)/1e3) / 1e3 }
	at := func(p float64) float64 {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return ms(s[min(max(i, 0), len(s)-1)])
	}
	var sum time.Duration
	for _, x := range s {
		sum += x
	}
	return LatencyMs{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: ms(s[len(s)-1]), Mean: ms(sum / time.Duration(len(s)))}
}

func printBenchQueue(w io.Writer, r *BenchQueueResult) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "broker:\t%s\n", r.Broker)
	if r.Mode == "rate" {
		fmt.Fprintf(tw, "mode:\trate: %d tasks enqueued one by one at %g/s, concurrency %d\n", r.Tasks, r.Rate, r.Concurrency)
		fmt.Fprintf(tw, "enqueue:\t%d tasks in %.3fs (%.0f/s achieved)\n", r.Tasks, r.EnqueueSeconds, r.EnqueuePerSec)
	} else {
		fmt.Fprintf(tw, "mode:\tthroughput: %d tasks, EnqueueMany batches of %d, concurrency %d\n", r.Tasks, r.Batch, r.Concurrency)
		fmt.Fprintf(tw, "enqueue:\t%d tasks in %.3fs (%.0f/s)\n", r.Tasks, r.EnqueueSeconds, r.EnqueuePerSec)
	}
	fmt.Fprintf(tw, "process:\t%d tasks in %.3fs (%.0f/s)\n", r.Tasks, r.ProcessSeconds, r.ProcessPerSec)
	l := r.LatencyMs
	what := "enqueue-to-start latency"
	if r.Mode == "throughput" {
		what += " (includes the backlog wait)"
	}
	fmt.Fprintf(tw, "latency:\tp50 %.3fms  p90 %.3fms  p99 %.3fms  max %.3fms  mean %.3fms  %s\n", l.P50, l.P90, l.P99, l.Max, l.Mean, what)
	if r.Duplicates > 0 {
		fmt.Fprintf(tw, "duplicates:\t%d re-deliveries\n", r.Duplicates)
	}
	return tw.Flush()
}
