package queue_test

import (
	"errors"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
)

func TestInspector(t *testing.T) {
	e := newEnv(t)
	in := queue.NewInspector(e.b)
	p1 := e.enqueue(queue.NewTask("k", nil), queue.Queue("a"))
	p2 := e.enqueue(queue.NewTask("k", nil), queue.Queue("a"))
	e.enqueue(queue.NewTask("k", nil), queue.Queue("a"), queue.ProcessIn(time.Hour))
	e.enqueue(queue.NewTask("k", nil), queue.Queue("b"))

	// Make p1 dead by hand.
	ts, err := e.mem.Fetch(e.ctx, broker.FetchParams{Queues: []string{"a"}, Max: 1, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(ts) != 1 || ts[0].ID != p1.ID {
		t.Fatal(ts, err)
	}
	if err := e.mem.Fail(e.ctx, broker.Failure{LeaseRef: broker.LeaseRef{Queue: "a", ID: p1.ID, Token: ts[0].Token}, Error: broker.AttemptError{Message: "x"}, Dead: true}); err != nil {
		t.Fatal(err)
	}

	qs, err := in.Queues(e.ctx)
	if err != nil || len(qs) != 2 || qs[0].Name != "a" || qs[1].Name != "b" {
		t.Fatalf("Queues = %+v, %v", qs, err)
	}
	if c := qs[0].Counts; c[queue.StatePending] != 1 || c[queue.StateScheduled] != 1 || c[queue.StateDead] != 1 || c[queue.StateCompleted] != 0 {
		t.Fatalf("counts of a: %v", c)
	}
	if _, ok := qs[0].Counts[queue.StateRetry]; !ok {
		t.Fatal("counts lack zero states")
	}
	if _, err := in.Queue(e.ctx, "zzz"); !errors.Is(err, queue.ErrQueueNotFound) {
		t.Fatalf("Queue(unknown) = %v", err)
	}

	dead, err := in.Tasks(e.ctx, "a", queue.StateDead, 0, 10)
	if err != nil || len(dead) != 1 || dead[0].ID != p1.ID || dead[0].Errors[0].Message != "x" {
		t.Fatalf("dead tasks = %v, %v", dead, err)
	}
	if got, err := in.Task(e.ctx, "", p2.ID); err != nil || got.State != queue.StatePending {
		t.Fatalf("Task = %+v, %v", got, err)
	}
	if _, err := in.Task(e.ctx, "a", "missing"); !errors.Is(err, queue.ErrTaskNotFound) {
		t.Fatalf("Task(missing) = %v", err)
	}

	if err := in.RetryTask(e.ctx, "a", p1.ID); err != nil {
		t.Fatal(err)
	}
	if err := in.RetryTask(e.ctx, "a", p1.ID); !errors.Is(err, queue.ErrInvalidState) {
		t.Fatalf("RetryTask(pending) = %v", err)
	}
	if err := in.DeleteTask(e.ctx, "a", p2.ID); err != nil {
		t.Fatal(err)
	}
	ts, _ = e.mem.Fetch(e.ctx, broker.FetchParams{Queues: []string{"a"}, Max: 1, Lease: time.Minute, WorkerID: "w"})
	if err := in.DeleteTask(e.ctx, "a", ts[0].ID); !errors.Is(err, queue.ErrInvalidState) {
		t.Fatalf("DeleteTask(active) = %v", err)
	}

	if err := in.PauseQueue(e.ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if q, _ := in.Queue(e.ctx, "b"); !q.Paused {
		t.Fatal("b not paused")
	}
	if ts, _ := e.mem.Fetch(e.ctx, broker.FetchParams{Queues: []string{"b"}, Max: 1, Lease: time.Minute, WorkerID: "w"}); len(ts) != 0 {
		t.Fatal("fetched from a paused queue")
	}
	if err := in.ResumeQueue(e.ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if q, _ := in.Queue(e.ctx, "b"); q.Paused {
		t.Fatal("b still paused")
	}

	for name, err := range map[string]error{
		"pause bad name": in.PauseQueue(e.ctx, "a b"),
		"bad state":      func() error { _, err := in.Tasks(e.ctx, "a", "nope", 0, 1); return err }(),
		"empty id":       in.DeleteTask(e.ctx, "a", ""),
	} {
		if !errors.Is(err, queue.ErrInvalidOption) {
			t.Errorf("%s: %v, want ErrInvalidOption", name, err)
		}
	}
}
