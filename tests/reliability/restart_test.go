package reliability

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

	"github.com/conqhq/conq/queue"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// TestRedisRestart restarts Redis (SIGKILL, then the same port and AOF
// with fsync on every write) while a producer enqueues and two workers run
// tasks. The workers recover by themselves, and every task whose Enqueue
// returned OK is completed.
func TestRedisRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 15s")
	}
	srv := startRedisServer(t, "--appendonly", "yes", "--appendfsync", "always")
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// Short timeouts so calls to the dead server fail fast and are retried.
	url := srv.url() + "?dial_timeout=300ms&read_timeout=1s&write_timeout=1s"
	open := func() *redisbroker.Broker {
		b, err := redisbroker.Open(ctx, url, redisbroker.Config{Logger: logger})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}

	var runs sync.Map // task ID -> *atomic.Int32
	var workers []*queue.Worker
	// Shut the workers down before the cleanups stop the server.
	defer func() {
		for _, w := range workers {
			sctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_ = w.Shutdown(sctx)
			cancel()
		}
	}()
	for i := range 2 {
		w, err := queue.NewWorker(open(), queue.WorkerConfig{
			Concurrency: 8, LeaseDuration: 2 * time.Second, Logger: logger.With("worker", i),
			RetryDelay: func(int, error, *queue.TaskInfo) time.Duration { return 100 * time.Millisecond },
		})
		if err != nil {
			t.Fatal(err)
		}
		w.HandleFunc("work", func(ctx context.Context, task *queue.TaskInfo) ([]byte, error) {
			n, _ := runs.LoadOrStore(task.ID, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
			select {
			case <-time.After(2 * time.Millisecond):
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return nil, nil
		})
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		workers = append(workers, w)
	}

	pb := open()
	client, err := queue.NewClient(pb, queue.ClientConfig{Logger: logger, Options: []queue.Option{queue.Retention(time.Hour), queue.MaxRetries(25)}})
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		acked    []string
		failures int
	)
	stopProducing := make(chan struct{})
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 0; ; i++ {
			select {
			case <-stopProducing:
				return
			default:
			}
			id := "task-" + strconv.Itoa(i)
			ectx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
			_, err := client.Enqueue(ectx, queue.NewTask("work", nil), queue.TaskID(id))
			cancel()
			mu.Lock()
			if err == nil {
				acked = append(acked, id)
			} else {
				failures++
			}
			mu.Unlock()
			if err != nil {
				time.Sleep(50 * time.Millisecond)
			} else {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	ackedNow := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }

	time.Sleep(2 * time.Second)
	before := ackedNow()
	srv.p.kill()
	t.Logf("redis-server SIGKILLed after %d acknowledged enqueues", before)
	time.Sleep(1500 * time.Millisecond)
	srv.start()
	t.Logf("redis-server restarted on port %d", srv.port)
	// Production must resume by itself.
	for deadline := time.Now().Add(20 * time.Second); ackedNow() < before+200; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("enqueueing did not recover after the restart: %d acknowledged", ackedNow())
		}
	}
	time.Sleep(time.Second)
	close(stopProducing)
	<-produced

	// Every acknowledged task completes.
	in := queue.NewInspector(pb)
	var missing []string
	for deadline := time.Now().Add(60 * time.Second); ; {
		missing = missing[:0]
		for _, id := range acked {
			task, err := in.Task(ctx, queue.DefaultQueue, id)
			if err != nil && !errors.Is(err, queue.ErrTaskNotFound) {
				t.Fatalf("task %s: %v", id, err)
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
		shown := missing[:min(len(missing), 10)]
		for _, id := range shown {
			task, err := in.Task(ctx, queue.DefaultQueue, id)
			if err != nil {
				t.Logf("task %s: %v", id, err)
			} else {
				t.Logf("task %s: state %s, attempts %d, errors %v", id, task.State, task.Attempts, task.Errors)
			}
		}
		t.Fatalf("%d of %d acknowledged tasks did not complete (first: %v)", len(missing), len(acked), shown)
	}
	ran := 0
	runs.Range(func(any, any) bool { ran++; return true })
	msg := fmt.Sprintf("redis restart: %d acknowledged tasks all completed (%d before the restart, %d enqueue errors during the outage, %d tasks run)",
		len(acked), before, failures, ran)
	t.Log(msg)
	fmt.Println(msg)
	if failures == 0 {
		t.Error("no enqueue failed during the outage: the restart did not happen while producing")
	}
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}
