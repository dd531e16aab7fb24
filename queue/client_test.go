package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

func TestEnqueueDefaultsAndOptions(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	info := e.enqueue(queue.NewTask("k", []byte("p")))
	if info.Queue != queue.DefaultQueue || info.MaxRetries != queue.DefaultMaxRetries || info.State != queue.StatePending ||
		info.ID == "" || !info.EnqueuedAt.Equal(now) {
		t.Fatalf("defaults: %+v", info)
	}
	deadline := now.Add(time.Hour)
	info = e.enqueue(queue.NewTask("k", nil, queue.Queue("a"), queue.MaxRetries(1)),
		queue.Queue("b"), queue.Timeout(time.Second), queue.Deadline(deadline), queue.ProcessIn(time.Minute),
		queue.Retention(time.Hour), queue.TaskID("my-id"))
	want := queue.TaskInfo{ID: "my-id", Queue: "b", MaxRetries: 1, Timeout: time.Second, Retention: time.Hour}
	if info.ID != want.ID || info.Queue != want.Queue || info.MaxRetries != 1 || info.Timeout != time.Second ||
		info.Retention != time.Hour || !info.Deadline.Equal(deadline) || !info.ProcessAt.Equal(now.Add(time.Minute)) ||
		info.State != queue.StateScheduled {
		t.Fatalf("options: %+v", info)
	}
	if got := e.get("my-id"); got.State != queue.StateScheduled || got.Queue != "b" {
		t.Fatalf("stored: %+v", got)
	}
	// Client-wide defaults come first.
	c := e.newClient(queue.Queue("emails"), queue.MaxRetries(0))
	info, err := c.Enqueue(e.ctx, queue.NewTask("k", nil))
	if err != nil || info.Queue != "emails" || info.MaxRetries != 0 {
		t.Fatalf("client defaults: %+v, %v", info, err)
	}
	if _, err := queue.NewClient(e.b, queue.ClientConfig{Options: []queue.Option{queue.MaxRetries(-1)}}); !errors.Is(err, queue.ErrInvalidOption) {
		t.Fatalf("bad client default = %v", err)
	}
}

func TestEnqueueInvalid(t *testing.T) {
	e := newEnv(t)
	now := e.clock.Now()
	cases := []struct {
		name string
		task *queue.Task
		opts []queue.Option
		want string
	}{
		{"empty kind", queue.NewTask("", nil), nil, "empty task kind"},
		{"kind with space", queue.NewTask("a b", nil), nil, "space"},
		{"negative retries", queue.NewTask("k", nil), []queue.Option{queue.MaxRetries(-1)}, "MaxRetries(-1)"},
		{"bad queue", queue.NewTask("k", nil), []queue.Option{queue.Queue("no spaces")}, `queue name "no spaces"`},
		{"empty queue", queue.NewTask("k", nil), []queue.Option{queue.Queue("")}, "empty queue name"},
		{"negative timeout", queue.NewTask("k", nil), []queue.Option{queue.Timeout(-time.Second)}, "Timeout(-1s)"},
		{"negative retention", queue.NewTask("k", nil), []queue.Option{queue.Retention(-time.Second)}, "Retention"},
		{"past deadline", queue.NewTask("k", nil), []queue.Option{queue.Deadline(now.Add(-time.Second))}, "already passed"},
		{"start after deadline", queue.NewTask("k", nil), []queue.Option{queue.Deadline(now.Add(time.Minute)), queue.ProcessIn(time.Hour)}, "not before its deadline"},
		{"empty ID", queue.NewTask("k", nil), []queue.Option{queue.TaskID("")}, "empty task ID"},
		{"nil task", nil, nil, "nil task"},
	}
	for _, c := range cases {
		_, err := e.client.Enqueue(e.ctx, c.task, c.opts...)
		if !errors.Is(err, queue.ErrInvalidOption) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want ErrInvalidOption mentioning %q", c.name, err, c.want)
		}
	}
}

func TestEnqueuePayloadTooLarge(t *testing.T) {
	e := newEnv(t)
	_, err := e.client.Enqueue(e.ctx, queue.NewTask("big", make([]byte, queue.DefaultMaxPayloadSize+1)))
	var pe *queue.PayloadTooLargeError
	if !errors.As(err, &pe) || pe.Size != queue.DefaultMaxPayloadSize+1 || pe.Max != queue.DefaultMaxPayloadSize {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(err.Error(), "1048577 bytes") || !strings.Contains(err.Error(), "1048576 bytes") {
		t.Fatalf("message does not name the sizes: %v", err)
	}
	c, _ := queue.NewClient(e.b, queue.ClientConfig{MaxPayloadSize: -1})
	if _, err := c.Enqueue(e.ctx, queue.NewTask("big", make([]byte, 2<<20))); err != nil {
		t.Fatalf("uncapped client: %v", err)
	}
}

func TestEnqueueIDConflict(t *testing.T) {
	e := newEnv(t)
	e.enqueue(queue.NewTask("k", nil), queue.TaskID("dup"))
	_, err := e.client.Enqueue(e.ctx, queue.NewTask("k", nil), queue.TaskID("dup"))
	if !errors.Is(err, queue.ErrTaskIDConflict) || !strings.Contains(err.Error(), "dup") {
		t.Fatalf("err = %v, want ErrTaskIDConflict naming the ID", err)
	}
	// Another queue may reuse it.
	e.enqueue(queue.NewTask("k", nil), queue.TaskID("dup"), queue.Queue("other"))
}

func TestEnqueueMany(t *testing.T) {
	e := newEnv(t)
	e.enqueue(queue.NewTask("k", nil), queue.TaskID("taken"))
	tasks := []*queue.Task{
		queue.NewTask("k", nil),
		queue.NewTask("", nil),
		queue.NewTask("k", nil, queue.TaskID("taken")),
		queue.NewTask("k", nil, queue.TaskID("fresh")),
	}
	infos, err := e.client.EnqueueMany(e.ctx, tasks, queue.Retention(time.Hour))
	var be *queue.BatchError
	if !errors.As(err, &be) || len(be.Errs) != 4 {
		t.Fatalf("err = %v, want a BatchError of 4", err)
	}
	if be.Errs[0] != nil || !errors.Is(be.Errs[1], queue.ErrInvalidOption) || !errors.Is(be.Errs[2], queue.ErrTaskIDConflict) || be.Errs[3] != nil {
		t.Fatalf("item errors: %v", be.Errs)
	}
	if infos[0] == nil || infos[1] != nil || infos[2] != nil || infos[3] == nil || infos[3].Retention != time.Hour {
		t.Fatalf("infos: %v", infos)
	}
	e.get(infos[0].ID)
	e.get("fresh")
	infos, err = e.client.EnqueueMany(e.ctx, []*queue.Task{queue.NewTask("k", nil), queue.NewTask("k", nil)})
	if err != nil || len(infos) != 2 {
		t.Fatalf("all valid: %v, %v", infos, err)
	}
}

func TestResultErrors(t *testing.T) {
	e := newEnv(t)
	if _, err := e.client.Result(e.ctx, "nope"); !errors.Is(err, queue.ErrTaskNotFound) || !strings.Contains(err.Error(), "Retention") {
		t.Fatalf("Result(missing) = %v", err)
	}
	info := e.enqueue(queue.NewTask("k", nil))
	ctx, cancel := context.WithTimeout(e.ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := e.client.Result(ctx, info.ID); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Result past ctx = %v", err)
	}
}
