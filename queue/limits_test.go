package queue_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	"github.com/conqhq/conq/queue/broker/memory"
)

// limitConfig is a worker config on the wall clock (limits follow the
// broker's clock, and these tests need time to pass).
func limitConfig(limits map[string]queue.Limit) queue.WorkerConfig {
	return queue.WorkerConfig{
		Concurrency:     5,
		LeaseDuration:   5 * time.Second,
		ExtendInterval:  100 * time.Millisecond,
		PollInterval:    20 * time.Millisecond,
		ForwardInterval: 20 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
		Limits:          limits,
		Logger:          slog.New(slog.DiscardHandler),
	}
}

// concurrencyProbe is a handler that records how many of its calls overlap.
type concurrencyProbe struct {
	cur, peak, done atomic.Int64
	hold            time.Duration
}

func (p *concurrencyProbe) handle(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
	n := p.cur.Add(1)
	for {
		m := p.peak.Load()
		if n <= m || p.peak.CompareAndSwap(m, n) {
			break
		}
	}
	time.Sleep(p.hold)
	p.cur.Add(-1)
	p.done.Add(1)
	return nil, nil
}

// runLimitedWorkers starts a worker on each of bs (several on one broker
// if it is given several times) with cfg and handler h for kind.
func runLimitedWorkers(t *testing.T, bs []broker.Broker, cfg queue.WorkerConfig, kind string, h queue.HandlerFunc) {
	t.Helper()
	for i, b := range bs {
		c := cfg
		c.WorkerID = fmt.Sprintf("w%d", i)
		c.NoMaintenance = i > 0
		w, err := queue.NewWorker(b, c)
		if err != nil {
			t.Fatal(err)
		}
		w.HandleFunc(kind, h)
		w.HandleFunc("free", func(context.Context, *queue.TaskInfo) ([]byte, error) { return nil, nil })
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := w.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
		})
	}
}

// checkConcurrencyLimit runs 3 workers sharing b with a limit of 2 on a
// kind and checks that no more than 2 run at once, and that waiting for a
// slot costs no attempt.
func checkConcurrencyLimit(t *testing.T, bs []broker.Broker, tasks int) {
	b := bs[0]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, _ := queue.NewClient(b, queue.ClientConfig{})
	var infos []*queue.TaskInfo
	for range tasks {
		info, err := client.Enqueue(ctx, queue.NewTask("limited", nil), queue.Retention(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		infos = append(infos, info)
	}
	p := &concurrencyProbe{hold: 30 * time.Millisecond}
	cfg := limitConfig(map[string]queue.Limit{"limited": {Concurrency: 2}})
	cfg.LimitWait = 100 * time.Millisecond // exercise give-up-and-requeue too
	runLimitedWorkers(t, bs, cfg, "limited", p.handle)
	// Unlimited kinds flow meanwhile.
	free, err := client.Enqueue(ctx, queue.NewTask("free", nil), queue.Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(50 * time.Second)
	for p.done.Load() < int64(tasks) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := p.done.Load(); got != int64(tasks) {
		t.Fatalf("%d of %d tasks ran", got, tasks)
	}
	if peak := p.peak.Load(); peak != 2 {
		t.Fatalf("peak concurrency %d, want 2 (the limit)", peak)
	}
	for _, info := range append(infos, free) {
		var got *queue.TaskInfo
		if !waitFor(func() bool {
			got, err = b.GetTask(ctx, "", info.ID)
			return err == nil && got.State == queue.StateCompleted
		}) {
			t.Fatalf("task %s: %+v, %v", info.ID, got, err)
		}
		if got.Attempts > 1 || len(got.Errors) != 0 { // (Redis counts the completing attempt lazily)
			t.Fatalf("task %s: %d attempts, errors %v; waiting for a slot must not cost attempts", got.ID, got.Attempts, got.Errors)
		}
	}
}

func TestConcurrencyLimitAcrossWorkers(t *testing.T) {
	b := memory.New(memory.Config{})
	t.Cleanup(func() { b.Close() }) // after the workers' shutdown
	checkConcurrencyLimit(t, []broker.Broker{b, b, b}, 40)
}

// checkRateLimit runs 3 workers sharing b with a rate limit on a kind and
// checks the start rate over d.
func checkRateLimit(t *testing.T, bs []broker.Broker, rate float64, d time.Duration) {
	b := bs[0]
	ctx, cancel := context.WithTimeout(context.Background(), d+30*time.Second)
	defer cancel()
	client, _ := queue.NewClient(b, queue.ClientConfig{})
	n := int(rate*d.Seconds()) * 2 // never runs dry
	tasks := make([]*queue.Task, n)
	for i := range tasks {
		tasks[i] = queue.NewTask("rated", nil)
	}
	if _, err := client.EnqueueMany(ctx, tasks); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var starts []time.Time
	runLimitedWorkers(t, bs, limitConfig(map[string]queue.Limit{"rated": {Rate: rate}}), "rated",
		func(context.Context, *queue.TaskInfo) ([]byte, error) {
			mu.Lock()
			starts = append(starts, time.Now())
			mu.Unlock()
			return nil, nil
		})
	time.Sleep(d + 300*time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if len(starts) < 2 {
		t.Fatalf("%d tasks started", len(starts))
	}
	// Count starts in a window of d after the first.
	t0 := starts[0]
	count := 0
	for _, s := range starts {
		if s.Sub(t0) < d {
			count++
		}
	}
	want := rate * d.Seconds()
	t.Logf("%d starts in %v at a limit of %v/s (want %.0f ±10%%)", count, d, rate, want)
	if float64(count) < want*0.9 || float64(count) > want*1.1 {
		t.Fatalf("%d starts in %v, want %.0f ±10%%", count, d, want)
	}
}

func TestRateLimitAcrossWorkers(t *testing.T) {
	b := memory.New(memory.Config{})
	t.Cleanup(func() { b.Close() }) // after the workers' shutdown
	checkRateLimit(t, []broker.Broker{b, b, b}, 50, 2*time.Second)
}

func TestConcurrencySlotOfDeadWorkerFreed(t *testing.T) {
	b := memory.New(memory.Config{})
	t.Cleanup(func() { b.Close() }) // after the workers' shutdown
	// A worker that died holding both slots: they free themselves when
	// their leases end.
	for _, h := range []string{"dead/1/1", "dead/2/1"} {
		if ok, err := b.AcquireSlot(context.Background(), broker.SlotParams{Name: "concurrency:limited", Holder: h, Limit: 2, Lease: 300 * time.Millisecond}); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
	client, _ := queue.NewClient(b, queue.ClientConfig{})
	start := time.Now()
	info, err := client.Enqueue(context.Background(), queue.NewTask("limited", nil), queue.Retention(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	p := &concurrencyProbe{}
	runLimitedWorkers(t, []broker.Broker{b}, limitConfig(map[string]queue.Limit{"limited": {Concurrency: 2}}), "limited", p.handle)
	if !waitFor(func() bool { return p.done.Load() == 1 }) {
		t.Fatal("the task never ran")
	}
	if el := time.Since(start); el < 250*time.Millisecond {
		t.Fatalf("ran after %v, before the dead worker's slots expired", el)
	}
	var got *queue.TaskInfo
	if !waitFor(func() bool {
		got, _ = b.GetTask(context.Background(), "", info.ID)
		return got != nil && got.State == queue.StateCompleted
	}) {
		t.Fatalf("task never completed: %+v", got)
	}
	if got.Attempts != 1 || len(got.Errors) != 0 {
		t.Fatalf("%d attempts, errors %v", got.Attempts, got.Errors)
	}
}

func TestLimitConfig(t *testing.T) {
	mem := memory.New(memory.Config{})
	defer mem.Close()
	for _, l := range []queue.Limit{{}, {Concurrency: -1}, {Rate: -1}, {Rate: 1, Burst: -1}} {
		if _, err := queue.NewWorker(mem, queue.WorkerConfig{Limits: map[string]queue.Limit{"k": l}}); !errors.Is(err, queue.ErrInvalidOption) {
			t.Errorf("limit %+v: %v", l, err)
		}
	}
	var b broker.Broker = brokertest.WithoutOptional(mem)
	if _, err := queue.NewWorker(b, queue.WorkerConfig{Limits: map[string]queue.Limit{"k": {Concurrency: 1}}}); !errors.Is(err, queue.ErrUnsupported) {
		t.Fatalf("limits on a broker without Limiter: %v", err)
	}
}
