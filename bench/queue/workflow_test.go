package queue

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

// Workflow overhead on the Redis broker (docs/benchmarks.md, "Redis
// workflows"):
//
//	source scripts/redis.sh; redis_start
//	cd bench && CONQ_BENCH_WORKFLOW=1 go test -run 'TestWorkflow' -v -count 1 ./queue/
//
// TestWorkflowChordOverhead runs CONQ_BENCH_CHORDS (default 2,000)
// chords of 10 no-op members and a no-op body (22,000 tasks), and the
// same number of no-op tasks enqueued plainly, alternated for
// CONQ_BENCH_ROUNDS (default 3) rounds in one run (CONQ_BENCH_SIDES, e.g.
// "chord" or "kept,chord": only those sides); each side is timed from
// its first enqueue to its last task's end, with the worker already
// running. TestWorkflowChainLatency runs chains of 100 steps and reports
// the time from a step's handler returning to the next step's handler
// starting. Both print one line per figure ("workflow bench: ...").

func workflowBench(t *testing.T) {
	if os.Getenv("CONQ_BENCH_WORKFLOW") == "" {
		t.Skip("a benchmark: run with CONQ_BENCH_WORKFLOW=1 (see the comment above)")
	}
}

// counter is a worker that counts handler runs of kind noop.
type counter struct {
	done   atomic.Int64
	target atomic.Int64
	ch     chan struct{}
	w      *queue.Worker
}

func startCounter(tb testing.TB, e *conqEnv) *counter {
	w, err := queue.NewWorker(e.b, queue.WorkerConfig{
		Concurrency:  concurrency,
		Prefetch:     512,
		AckBatchSize: 512,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		tb.Fatal(err)
	}
	c := &counter{w: w}
	w.HandleFunc("noop", func(context.Context, *queue.TaskInfo) ([]byte, error) {
		if c.done.Add(1) == c.target.Load() {
			close(c.ch)
		}
		return nil, nil
	})
	if err := w.Start(context.Background()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	return c
}

// expect arms the counter for n more runs.
func (c *counter) expect(n int) {
	c.ch = make(chan struct{})
	c.target.Store(c.done.Load() + int64(n))
}

func (c *counter) wait(tb testing.TB) {
	select {
	case <-c.ch:
	case <-time.After(10 * time.Minute):
		tb.Fatalf("%d of %d tasks ran in 10m", c.done.Load(), c.target.Load())
	}
}

func TestWorkflowChordOverhead(t *testing.T) {
	workflowBench(t)
	chords := envInt("CONQ_BENCH_CHORDS", 2000)
	rounds := envInt("CONQ_BENCH_ROUNDS", 3)
	const members = 10
	n := chords * (members + 1)
	ctx := context.Background()
	// "kept" is the plain tasks with the retention EnqueueFlow gives a
	// flow's steps (queue.DefaultFlowRetention): completed tasks are then
	// kept, as the chord's are, not deleted.
	// "kept11" is those kept tasks enqueued as the chords are: 11 a call,
	// from the same concurrent producers, without a workflow. It tells
	// the workflow bookkeeping apart from the cost of smaller calls.
	sides := []string{"plain", "kept", "kept11", "chord"}
	// CONQ_BENCH_SIDES (e.g. "chord" or "kept,chord") runs only those
	// sides, for a faster A/B of one of them; ratios need plain and kept.
	if v := os.Getenv("CONQ_BENCH_SIDES"); v != "" {
		sides = slices.DeleteFunc(sides, func(s string) bool { return !slices.Contains(strings.Split(v, ","), s) })
		if len(sides) == 0 {
			t.Fatalf("CONQ_BENCH_SIDES=%q names none of plain, kept, kept11, chord", v)
		}
	}
	// CONQ_BENCH_WORKER_AFTER=1: the worker starts once everything is
	// enqueued (enqueue, then process, as compare_test.go's processing
	// rates), instead of running from the start.
	after := os.Getenv("CONQ_BENCH_WORKER_AFTER") != ""
	// produce runs call as many times as there are chords, from
	// CONQ_BENCH_PRODUCERS (default 16) concurrent producers: EnqueueFlow
	// is one workflow per call, and the broker combines concurrent calls.
	produce := func(call func() error) {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range envInt("CONQ_BENCH_PRODUCERS", 16) {
			wg.Go(func() {
				for next.Add(1) <= int64(chords) {
					if err := call(); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	rates := map[string][]float64{}
	for r := range rounds {
		for k := range sides {
			side := sides[(k+r)%len(sides)] // each side goes first in turn
			e := newConq(t)
			var c *counter
			if !after {
				c = startCounter(t, e)
				c.expect(n)
			}
			start := time.Now()
			switch side {
			case "plain":
				e.enqueue(t, n, 1000)
			case "kept":
				tasks := make([]*queue.Task, 1000)
				for i := range tasks {
					tasks[i] = queue.NewTask("noop", nil, queue.Retention(queue.DefaultFlowRetention))
				}
				for i := 0; i < n; i += 1000 {
					if _, err := e.client.EnqueueMany(ctx, tasks[:min(1000, n-i)]); err != nil {
						t.Fatal(err)
					}
				}
			case "kept11":
				produce(func() error {
					tasks := make([]*queue.Task, members+1)
					for i := range tasks {
						tasks[i] = queue.NewTask("noop", nil, queue.Retention(queue.DefaultFlowRetention))
					}
					_, err := e.client.EnqueueMany(ctx, tasks)
					return err
				})
			default:
				produce(func() error {
					header := make([]queue.Flow, members)
					for i := range header {
						header[i] = queue.Step(queue.NewTask("noop", nil))
					}
					_, err := e.client.EnqueueFlow(ctx, queue.Chord(header, queue.Step(queue.NewTask("noop", nil))))
					return err
				})
			}
			enq := time.Since(start)
			if after {
				c = startCounter(t, e)
				c.expect(n)
			}
			c.wait(t)
			d := time.Since(start)
			rate := float64(n) / d.Seconds()
			rates[side] = append(rates[side], rate)
			fmt.Printf("workflow bench: round %d %s: %d tasks in %v = %.0f tasks/s (enqueue done after %v)\n", r+1, side, n, d.Round(time.Millisecond), rate, enq.Round(time.Millisecond))
		}
	}
	for _, s := range sides {
		fmt.Printf("workflow bench: %s median %.0f tasks/s (%.0f)\n", s, median(rates[s]), rates[s])
	}
	if !slices.Contains(sides, "plain") || !slices.Contains(sides, "kept") || !slices.Contains(sides, "chord") {
		return
	}
	var vsPlain, vsKept []float64
	for r := range rounds {
		vsPlain = append(vsPlain, rates["plain"][r]/rates["chord"][r])
		vsKept = append(vsKept, rates["kept"][r]/rates["chord"][r])
	}
	fmt.Printf("workflow bench: per-round overhead vs plain %.2f, vs kept %.2f; medians %.2fx, %.2fx\n", vsPlain, vsKept, median(vsPlain), median(vsKept))
	if slices.Contains(sides, "kept11") {
		var vs11 []float64
		for r := range rounds {
			vs11 = append(vs11, rates["kept11"][r]/rates["chord"][r])
		}
		fmt.Printf("workflow bench: per-round overhead vs kept tasks 11 a call %.2f; median %.2fx\n", vs11, median(vs11))
	}
	p, k, c := median(rates["plain"]), median(rates["kept"]), median(rates["chord"])
	fmt.Printf("workflow bench: median of %d rounds: plain %.0f tasks/s, plain kept %.0f tasks/s, %d chords of %d+1 %.0f tasks/s; overhead %.2fx vs plain, %.2fx vs kept\n",
		rounds, p, k, chords, members, c, p/c, k/c)
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func TestWorkflowChainLatency(t *testing.T) {
	workflowBench(t)
	const steps = 100
	chains := envInt("CONQ_BENCH_CHAINS", 3)
	e := newConq(t)
	w, err := queue.NewWorker(e.b, queue.WorkerConfig{Concurrency: 4, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	started := map[string]time.Time{} // "<workflow>/<step>" -> handler start
	ended := map[string]time.Time{}
	w.HandleFunc("step", func(_ context.Context, ti *queue.TaskInfo) ([]byte, error) {
		now := time.Now()
		mu.Lock()
		started[ti.Workflow+"/"+strconv.Itoa(ti.Step)] = now
		mu.Unlock()
		end := time.Now()
		mu.Lock()
		ended[ti.Workflow+"/"+strconv.Itoa(ti.Step)] = end
		mu.Unlock()
		return []byte(strconv.Itoa(ti.Step)), nil
	})
	ctx := context.Background()
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(ctx)
	var lat []time.Duration
	for range chains {
		nodes := make([]queue.Flow, steps)
		for i := range nodes {
			nodes[i] = queue.Step(queue.NewTask("step", nil))
		}
		h, err := e.client.EnqueueFlow(ctx, queue.Chain(nodes...))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Result(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		for i := 1; i < steps; i++ {
			lat = append(lat, started[h.ID+"/"+strconv.Itoa(i)].Sub(ended[h.ID+"/"+strconv.Itoa(i-1)]))
		}
		mu.Unlock()
	}
	slices.Sort(lat)
	q := func(p float64) float64 {
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))].Microseconds()) / 1000
	}
	fmt.Printf("workflow bench: chain of %d steps x %d: step end -> next step start p50 %.2fms p99 %.2fms max %.2fms (%d samples)\n",
		steps, chains, q(0.5), q(0.99), q(1), len(lat))
}
