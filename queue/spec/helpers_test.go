package spec_test

import (
	"context"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
)

// env is an in-process broker with a client, for the tests that check a
// specification reaches the stored task.
type env struct {
	t      *testing.T
	b      *memory.Broker
	client *queue.Client
	ctx    context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	b := memory.New(memory.Config{})
	t.Cleanup(func() { b.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	c, err := queue.NewClient(b, queue.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, b: b, client: c, ctx: ctx}
}

func (e *env) enqueue(task *queue.Task, opts ...queue.Option) *queue.TaskInfo {
	e.t.Helper()
	info, err := e.client.Enqueue(e.ctx, task, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return info
}

func (e *env) scheduler(cfg queue.SchedulerConfig) *queue.Scheduler {
	e.t.Helper()
	s, err := queue.NewScheduler(e.b, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}
