package queue_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
)

func TestFlowChainAndChord(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := memory.New(memory.Config{})
	defer b.Close()
	c, _ := queue.NewClient(b, queue.ClientConfig{})
	add := func(args ...any) queue.Flow {
		task, err := queue.NewCallTask("add", args, nil)
		if err != nil {
			t.Fatal(err)
		}
		return queue.Step(task)
	}
	var members []queue.Flow
	for i := range 10 {
		members = append(members, add(i, i))
	}
	h, err := c.EnqueueFlow(ctx, queue.Chain(add(2, 2), add(4), queue.Chord(members, add())))
	if err != nil {
		t.Fatal(err)
	}
	w, err := queue.NewWorker(b, queue.WorkerConfig{Concurrency: 4})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("add", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) {
		var ca struct{ Args []any }
		_ = json.Unmarshal(t.Payload, &ca)
		sum := 0.0
		var walk func(v any)
		walk = func(v any) {
			switch x := v.(type) {
			case float64:
				sum += x
			case []any:
				for _, y := range x {
					walk(y)
				}
			}
		}
		walk(ca.Args)
		return []byte(strconv.FormatFloat(sum, 'f', -1, 64)), nil
	})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	res, err := h.Result(ctx)
	// chain: 2+2=4, 4+4=8; chord members each get 8 prepended: 8+2i, sum = 80+90 = 170.
	if err != nil || string(res) != "170" {
		t.Fatalf("Result = %s, %v; want 170", res, err)
	}
	_, err = c.EnqueueFlow(ctx, queue.Group())
	if !errors.Is(err, queue.ErrInvalidOption) {
		t.Fatalf("empty group: %v", err)
	}
}

// An immutable step runs with its own arguments whatever precedes it
// (Celery's chain(a.s(1), b.si(5))), also as a chord body and with a
// payload that a mutable step after another one could not have.
func TestFlowImmutable(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := memory.New(memory.Config{})
	defer b.Close()
	c, _ := queue.NewClient(b, queue.ClientConfig{})
	call := func(kind string, args ...any) queue.Flow {
		task, err := queue.NewCallTask(kind, args, nil)
		if err != nil {
			t.Fatal(err)
		}
		return queue.Step(task)
	}
	own := queue.Step(queue.NewTask("echo", []byte(`{"own":1}`)))
	if _, err := c.EnqueueFlow(ctx, queue.Chain(call("echo", 1), own)); !errors.Is(err, queue.ErrInvalidOption) {
		t.Fatalf("mutable JSON step after another: %v, want ErrInvalidOption", err)
	}
	if _, err := c.EnqueueFlow(ctx, queue.Chain(call("echo", 1), queue.Group(call("echo")).Immutable())); !errors.Is(err, queue.ErrInvalidOption) {
		t.Fatalf("immutable group: %v, want ErrInvalidOption", err)
	}
	h, err := c.EnqueueFlow(ctx, queue.Chain(
		call("echo", 1),
		call("echo", 5).Immutable(),
		own.Immutable(),
		queue.Chord([]queue.Flow{call("echo", 2), call("echo", 3)}, call("echo", "body").Immutable()),
	))
	if err != nil {
		t.Fatal(err)
	}
	w, err := queue.NewWorker(b, queue.WorkerConfig{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	w.HandleFunc("echo", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) {
		got <- t.Kind + " " + string(t.Payload)
		return t.Payload, nil
	})
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	res, err := h.Result(ctx)
	if err != nil || string(res) != `{"args":["body"],"kwargs":{}}` {
		t.Fatalf("Result = %s, %v", res, err)
	}
	info, err := queue.NewInspector(b).Workflow(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{false, true, true, false, false, true} {
		if info.Steps[i].Immutable != want {
			t.Fatalf("step %d Immutable = %v, want %v", i, info.Steps[i].Immutable, want)
		}
	}
	if string(info.Steps[2].Result) != `{"own":1}` {
		t.Fatalf("immutable JSON step got %s", info.Steps[2].Result)
	}
}

func TestInspectorWorkflows(t *testing.T) {
	ctx := context.Background()
	b := memory.New(memory.Config{})
	defer b.Close()
	c, _ := queue.NewClient(b, queue.ClientConfig{})
	var ids []string
	for range 3 {
		h, err := c.EnqueueFlow(ctx, queue.Step(queue.NewTask("a", nil)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, h.ID)
	}
	insp := queue.NewInspector(b)
	page, err := insp.Workflows(ctx, queue.WorkflowListParams{Limit: 2})
	if err != nil || len(page.Workflows) != 2 || page.Next == "" {
		t.Fatalf("first page = %+v, %v", page, err)
	}
	rest, err := insp.Workflows(ctx, queue.WorkflowListParams{Limit: 2, Cursor: page.Next})
	if err != nil || len(rest.Workflows) != 1 || rest.Next != "" {
		t.Fatalf("second page = %+v, %v", rest, err)
	}
	seen := map[string]bool{}
	for _, w := range append(page.Workflows, rest.Workflows...) {
		seen[w.ID] = true
		if w.State != "running" || w.Steps != 1 || w.Queue != queue.DefaultQueue {
			t.Fatalf("summary %+v", w)
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("%s not listed", id)
		}
	}
	if _, err := insp.Workflows(ctx, queue.WorkflowListParams{State: "stuck"}); !errors.Is(err, queue.ErrInvalidOption) {
		t.Fatalf("bad state: %v, want ErrInvalidOption", err)
	}
}

// FlowHandle.Result and the Inspector's outcome calls read a workflow's
// outcome without its steps; a failed flow is a *FlowError with the
// workflow's error.
func TestFlowOutcome(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := memory.New(memory.Config{})
	defer b.Close()
	c, _ := queue.NewClient(b, queue.ClientConfig{})
	insp := queue.NewInspector(b)
	ok, err := c.EnqueueFlow(ctx, queue.Chain(queue.Step(queue.NewTask("echo", []byte(`"a"`))), queue.Step(queue.NewTask("echo", nil))))
	if err != nil {
		t.Fatal(err)
	}
	bad, err := c.EnqueueFlow(ctx, queue.Chain(queue.Step(queue.NewTask("boom", nil)), queue.Step(queue.NewTask("echo", nil))), queue.MaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	if o, err := insp.WorkflowOutcome(ctx, ok.ID); err != nil || o.State != "running" || o.Steps != nil || o.Result != nil {
		t.Fatalf("WorkflowOutcome while running = %+v, %v", o, err)
	}
	w, err := queue.NewWorker(b, queue.WorkerConfig{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	w.HandleFunc("echo", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) { return t.Payload, nil })
	w.HandleFunc("boom", func(ctx context.Context, t *queue.TaskInfo) ([]byte, error) { return nil, errors.New("boom") })
	if err := w.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer w.Shutdown(context.Background())
	if res, err := ok.Result(ctx); err != nil || string(res) != `"a"` {
		t.Fatalf("Result = %s, %v", res, err)
	}
	_, err = bad.Result(ctx)
	var fe *queue.FlowError
	if !errors.As(err, &fe) || fe.ID != bad.ID || fe.State != "failed" {
		t.Fatalf("Result of a failed flow = %v, want a *FlowError", err)
	}
	for _, h := range []*queue.FlowHandle{ok, bad} {
		full, err := insp.Workflow(ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		for _, call := range []func(context.Context, string) (*queue.WorkflowInfo, error){insp.WorkflowOutcome, insp.AwaitWorkflowOutcome} {
			o, err := call(ctx, h.ID)
			if err != nil || o.Steps != nil || o.State != full.State || string(o.Result) != string(full.Result) || o.Error != full.Error {
				t.Fatalf("outcome = %+v, %v; workflow %+v", o, err, full)
			}
		}
		if h == bad && fe.Msg != full.Error {
			t.Fatalf("FlowError message %q, workflow error %q", fe.Msg, full.Error)
		}
	}
	if _, err := insp.WorkflowOutcome(ctx, "wf_nope"); !errors.Is(err, queue.ErrTaskNotFound) {
		t.Fatalf("WorkflowOutcome of an unknown workflow = %v", err)
	}
}
