package queue_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	"github.com/conqhq/conq/queue/broker/memory"
)

func TestUniqueDuplicateRejected(t *testing.T) {
	e := newEnv(t)
	first := e.enqueue(queue.NewTask("email", []byte("to:a")), queue.Unique(time.Hour))
	_, err := e.client.Enqueue(e.ctx, queue.NewTask("email", []byte("to:a")), queue.Unique(time.Hour))
	if !errors.Is(err, queue.ErrDuplicateTask) {
		t.Fatalf("duplicate: %v, want ErrDuplicateTask", err)
	}
	// Another payload, kind or queue is another task.
	e.enqueue(queue.NewTask("email", []byte("to:b")), queue.Unique(time.Hour))
	e.enqueue(queue.NewTask("sms", []byte("to:a")), queue.Unique(time.Hour))
	e.enqueue(queue.NewTask("email", []byte("to:a")), queue.Unique(time.Hour), queue.Queue("other"))
	// Without Unique, duplicates are fine.
	e.enqueue(queue.NewTask("email", []byte("to:a")))
	// An explicit key ignores the payload.
	e.enqueue(queue.NewTask("sync", []byte("v1")), queue.UniqueKey("user:42"))
	if _, err := e.client.Enqueue(e.ctx, queue.NewTask("sync", []byte("v2")), queue.UniqueKey("user:42")); !errors.Is(err, queue.ErrDuplicateTask) {
		t.Fatalf("same UniqueKey: %v", err)
	}
	// EnqueueMany reports duplicates per item.
	infos, err := e.client.EnqueueMany(e.ctx, []*queue.Task{
		queue.NewTask("email", []byte("to:a"), queue.Unique(time.Hour)),
		queue.NewTask("email", []byte("to:c"), queue.Unique(time.Hour)),
	})
	var be *queue.BatchError
	if !errors.As(err, &be) || !errors.Is(be.Errs[0], queue.ErrDuplicateTask) || be.Errs[1] != nil || infos[1] == nil {
		t.Fatalf("EnqueueMany: %v, %v", infos, err)
	}
	e.get(first.ID)
}

func TestUniqueReleasedOnCompletion(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	e.worker(e.config(), func(w *queue.Worker) {
		w.HandleFunc("job", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			started <- struct{}{}
			<-release
			return nil, nil
		})
	})
	task := queue.NewTask("job", []byte("x"), queue.Unique(time.Hour))
	first := e.enqueue(task)
	<-started
	// Active: still held.
	if _, err := e.client.Enqueue(e.ctx, task); !errors.Is(err, queue.ErrDuplicateTask) {
		t.Fatalf("while active: %v", err)
	}
	close(release)
	if !waitFor(func() bool {
		_, err := e.mem.GetTask(e.ctx, "", first.ID)
		return errors.Is(err, queue.ErrTaskNotFound)
	}) {
		t.Fatal("first task never completed")
	}
	e.enqueue(task) // released on completion
	<-started
}

func TestUniqueReleasedOnDeath(t *testing.T) {
	e := newEnv(t)
	e.worker(e.config(), func(w *queue.Worker) {
		w.HandleFunc("job", func(context.Context, *queue.TaskInfo) ([]byte, error) {
			return nil, errors.New("boom")
		})
	})
	task := queue.NewTask("job", nil, queue.Unique(time.Hour), queue.MaxRetries(0))
	first := e.enqueue(task)
	e.waitState(first.ID, queue.StateDead)
	e.enqueue(task)
}

func TestUniqueTTLExpiry(t *testing.T) {
	e := newEnv(t)
	task := queue.NewTask("job", nil, queue.Unique(time.Minute))
	first := e.enqueue(task)
	e.clock.Advance(59 * time.Second)
	if _, err := e.client.Enqueue(e.ctx, task); !errors.Is(err, queue.ErrDuplicateTask) {
		t.Fatalf("before the TTL: %v", err)
	}
	e.clock.Advance(time.Second)
	// The TTL passed while the first task is still pending: accepted.
	second := e.enqueue(task)
	e.get(first.ID)
	e.get(second.ID)
	// And the second holds the lock now.
	if _, err := e.client.Enqueue(e.ctx, task); !errors.Is(err, queue.ErrDuplicateTask) {
		t.Fatalf("after re-lock: %v", err)
	}
	// UniqueKey alone locks for DefaultUniqueTTL.
	e.enqueue(queue.NewTask("k", nil, queue.UniqueKey("x")))
	e.clock.Advance(queue.DefaultUniqueTTL - time.Second)
	if _, err := e.client.Enqueue(e.ctx, queue.NewTask("k", nil, queue.UniqueKey("x"))); !errors.Is(err, queue.ErrDuplicateTask) {
		t.Fatalf("UniqueKey before DefaultUniqueTTL: %v", err)
	}
	e.clock.Advance(time.Second)
	e.enqueue(queue.NewTask("k", nil, queue.UniqueKey("x")))
}

func TestUniqueOptionsAndSupport(t *testing.T) {
	e := newEnv(t)
	for _, opt := range []queue.Option{queue.Unique(0), queue.Unique(-time.Second), queue.UniqueKey(""), queue.UniqueKey("a b")} {
		if _, err := e.client.Enqueue(e.ctx, queue.NewTask("k", nil), opt); !errors.Is(err, queue.ErrInvalidOption) {
			t.Errorf("bad unique option accepted: %v", err)
		}
	}
	var b broker.Broker = brokertest.WithoutOptional(memory.New(memory.Config{}))
	c, _ := queue.NewClient(b, queue.ClientConfig{})
	if _, err := c.Enqueue(e.ctx, queue.NewTask("k", nil), queue.Unique(time.Hour)); !errors.Is(err, queue.ErrUnsupported) {
		t.Fatalf("unique on a broker without support: %v", err)
	}
}
