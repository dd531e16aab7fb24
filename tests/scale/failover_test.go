package scale

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/internal/testenv/redisproc"
	"github.com/conqhq/conq/queue"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// Short client timeouts: calls to a dead node fail fast and are retried.
const fastTimeouts = "dial_timeout=300ms&read_timeout=2s&write_timeout=1s"

// TestClusterFailover kills the master serving one shard of a queue spread
// over a 3-master cluster (replicas and append-only files on) while a
// producer enqueues with WaitReplicas 1 and two workers run tasks. The
// replica takes over; the workers and the producer recover without a
// restart, and every task whose enqueue was acknowledged is completed.
func TestClusterFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node cluster and fails one over (about 15 s)")
	}
	cl := redisproc.StartCluster(t, redisproc.ClusterOptions{Options: redisproc.Options{AppendFsync: "everysec"}})
	prefix := testenv.UniquePrefix(t, cl.Client(t))
	url := cl.URL() + "&" + fastTimeouts
	f := newFailoverRun(t, url, redisbroker.Config{Prefix: prefix, WaitReplicas: 1})
	ctx := f.ctx
	if err := f.admin.SetShards(ctx, queue.DefaultQueue, 3); err != nil {
		t.Fatal(err)
	}
	info, err := f.admin.Queue(ctx, queue.DefaultQueue)
	if err != nil || len(info.Shards) != 3 {
		t.Fatalf("queue: %+v, %v", info, err)
	}
	var victim *redisproc.Server
	for _, n := range cl.Nodes {
		if n.Addr() == info.Shards[1].Node {
			victim = n
		}
	}
	if victim == nil {
		t.Fatalf("shard 1 is on %s, not a node of the fixture", info.Shards[1].Node)
	}
	f.run(func() string {
		start := time.Now()
		victim.Kill()
		m, err := cl.WaitFailover(ctx, victim)
		if err != nil {
			t.Fatal(err)
		}
		took := time.Since(start)
		// The old master comes back as a replica of the new one, so the
		// shard has a replica again to acknowledge writes.
		if err := victim.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if err := cl.WaitHealthy(ctx); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("master %s of shard 1 SIGKILLed, %s took over in %v; the old master rejoined as a replica", victim.Name, m.Name, took.Round(10*time.Millisecond))
	})
}

// TestSentinelFailover kills the primary of a Sentinel-managed deployment
// (two replicas, three sentinels) under the same load: the broker, opened
// with a redis+sentinel:// URL, follows the new primary, and every
// acknowledged task is completed.
func TestSentinelFailover(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a primary, two replicas and three sentinels and fails over (about 15 s)")
	}
	sn := redisproc.StartSentinel(t, redisproc.SentinelOptions{Options: redisproc.Options{AppendFsync: "everysec"}, Replicas: 2})
	prefix := testenv.UniquePrefix(t, sn.FailoverClient(t))
	url := sn.FailoverURL() + "&" + fastTimeouts
	f := newFailoverRun(t, url, redisbroker.Config{Prefix: prefix, WaitReplicas: 1})
	ctx := f.ctx
	f.run(func() string {
		old, err := sn.Master(ctx)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		old.Kill()
		m, err := sn.WaitFailover(ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		// The time runs until every sentinel is settled on the new primary
		// (WaitFailover): about 5-6.5 s with the fixture's down-after of 3 s.
		return fmt.Sprintf("primary %s SIGKILLed, %s promoted and every sentinel settled on it in %v", old.Name, m.Name, time.Since(start).Round(10*time.Millisecond))
	})
}

// failoverRun is a producer and two workers on their own brokers.
type failoverRun struct {
	t      *testing.T
	ctx    context.Context
	url    string
	cfg    redisbroker.Config
	logger *slog.Logger
	admin  *queue.Inspector
	runs   sync.Map // task ID -> *atomic.Int32
}

func newFailoverRun(t *testing.T, url string, cfg redisbroker.Config) *failoverRun {
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	t.Cleanup(cancel)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	cfg.Logger = logger
	f := &failoverRun{t: t, ctx: ctx, url: url, cfg: cfg, logger: logger}
	f.admin = queue.NewInspector(f.open())
	return f
}

// open returns a new broker (its own client), closed when the test ends.
func (f *failoverRun) open() *redisbroker.Broker {
	b, err := redisbroker.Open(f.ctx, f.url, f.cfg)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { b.Close() })
	return b
}

// run starts the workers and the producer, calls failover after a while
// (it returns what happened), checks that producing resumes by itself,
// then that every acknowledged task completes.
func (f *failoverRun) run(failover func() string) {
	t, ctx := f.t, f.ctx
	var workers []*queue.Worker
	// Shut the workers down before the cleanups stop the servers.
	defer func() {
		for _, w := range workers {
			sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_ = w.Shutdown(sctx)
			cancel()
		}
	}()
	for i := range 2 {
		w, err := queue.NewWorker(f.open(), queue.WorkerConfig{
			Concurrency: 8, LeaseDuration: 2 * time.Second, Logger: f.logger.With("worker", i),
			RecoverInterval: 500 * time.Millisecond,
			RetryDelay:      func(int, error, *queue.TaskInfo) time.Duration { return 100 * time.Millisecond },
		})
		if err != nil {
			t.Fatal(err)
		}
		w.HandleFunc("work", func(ctx context.Context, task *queue.TaskInfo) ([]byte, error) {
			n, _ := f.runs.LoadOrStore(task.ID, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			return nil, nil
		})
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		workers = append(workers, w)
	}
	client, err := queue.NewClient(f.open(), queue.ClientConfig{Logger: f.logger,
		Options: []queue.Option{queue.Retention(time.Hour), queue.MaxRetries(25)}})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu                        sync.Mutex
		acked                     []string
		failed, unconfirmed       int
		stopProducing, producedCh = make(chan struct{}), make(chan struct{})
	)
	go func() {
		defer close(producedCh)
		const batch = 10
		for i := 0; ; i += batch {
			select {
			case <-stopProducing:
				return
			default:
			}
			tasks := make([]*queue.Task, batch)
			for j := range tasks {
				tasks[j] = queue.NewTask("work", nil, queue.TaskID("task-"+strconv.Itoa(i+j)))
			}
			ectx, cancel := context.WithTimeout(ctx, 3*time.Second)
			infos, err := client.EnqueueMany(ectx, tasks)
			cancel()
			var be *queue.BatchError
			mu.Lock()
			switch {
			case err == nil:
				for _, in := range infos {
					acked = append(acked, in.ID)
				}
			case errors.As(err, &be):
				for j, e := range be.Errs {
					switch {
					case e == nil:
						acked = append(acked, infos[j].ID)
					case errors.Is(e, queue.ErrNotReplicated):
						unconfirmed++ // stored, but not acknowledged: not counted
					default:
						failed++
					}
				}
			default:
				failed += batch
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(50 * time.Millisecond)
			} else {
				time.Sleep(2 * time.Millisecond)
			}
		}
	}()
	ackedNow := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }

	time.Sleep(1500 * time.Millisecond)
	before := ackedNow()
	what := failover()
	t.Log(what)
	after := ackedNow()
	for deadline := time.Now().Add(30 * time.Second); ackedNow() < after+300; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("enqueueing did not recover after the failover: %d acknowledged, %d then", ackedNow(), after)
		}
	}
	time.Sleep(time.Second)
	close(stopProducing)
	<-producedCh

	var missing []string
	for deadline := time.Now().Add(60 * time.Second); ; {
		missing = missing[:0]
		for _, id := range acked {
			task, err := f.admin.Task(ctx, queue.DefaultQueue, id)
			if err != nil && !errors.Is(err, queue.ErrTaskNotFound) {
				t.Logf("task %s: %v", id, err)
			}
			if err != nil || task.State != queue.StateCompleted {
				missing = append(missing, id)
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if len(missing) > 0 {
		for _, id := range missing[:min(len(missing), 10)] {
			task, err := f.admin.Task(ctx, queue.DefaultQueue, id)
			if err != nil {
				t.Logf("task %s: %v", id, err)
			} else {
				t.Logf("task %s: state %s, attempts %d, errors %v", id, task.State, task.Attempts, task.Errors)
			}
		}
		t.Fatalf("%d of %d acknowledged tasks did not complete", len(missing), len(acked))
	}
	ran, twice := 0, 0
	f.runs.Range(func(_, v any) bool {
		ran++
		if v.(*atomic.Int32).Load() > 1 {
			twice++
		}
		return true
	})
	t.Logf("failover: %d acknowledged tasks all completed (%d before the failover); %d enqueues failed and %d were stored but not confirmed by a replica during it (not counted); %d tasks ran, %d of them more than once",
		len(acked), before, failed, unconfirmed, ran, twice)
	if failed+unconfirmed == 0 {
		t.Log("no enqueue failed during the failover: the client's retries spanned it")
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
