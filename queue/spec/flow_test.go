package spec_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/spec"
)

func TestParseFlowRejectsStepOptions(t *testing.T) {
	for in, want := range map[string]string{
		`{"flow":{"chain":[{"task":{"kind":"a"}},{"task":{"kind":"b","id":"mine"}}]}}`: "flow.chain[1].task: id: a workflow step's task ID is set by the workflow",
		`{"flow":{"group":[{"task":{"kind":"a","unique":"1h"}}]}}`:                     "flow.group[0].task: unique: a workflow step cannot be unique",
		`{"flow":{"task":{"kind":"a"}},"queue":"bad queue"}`:                           `flow: queue`,
		`{"flow":{"task":{"kind":"a"}}}{"flow":{"task":{"kind":"b"}}}`:                 "more than one JSON value",
		`{"flow":{"task":{"kind":"a"}}} }`:                                             "more than one JSON value",
		`{"flow":null}`:                                                                `no "flow" field`,
		`{"flow":{"chord":{"header":[{"task":{"kind":"a"}}],"body":null}}}`:            "flow.chord: no body",
		`{"flow":{"chord":{"header":[],"body":{"task":{"kind":"s"}}}}}`:                "flow.chord.header: empty (a chord needs at least one node)",
		`{"flow":{"task":{"kind":"a","retries":2}}}`:                                   `unknown field "retries"`,
		`{"flow":{"task":{"kind":"a"}},"retention":"soon"}`:                            `flow: retention "soon"`,
		`{"flow":{"task":{"kind":"a"}},"retention":-1}`:                                `flow: retention -1`,
	} {
		if _, err := spec.ParseFlow([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFlow(%s) = %v, want error containing %q", in, err, want)
		}
	}
}

// The file's queue and retention are defaults: a task's own queue wins,
// and the caller's defaults are under the file's.
func TestParseFlowDefaults(t *testing.T) {
	three := 3
	hour := time.Hour
	in := `{"flow":{"chain":[{"task":{"kind":"a","queue":"own"}},{"task":{"kind":"b"}},{"chord":{"header":[{"task":{"kind":"c"}}],"body":{"task":{"kind":"d"}}}}]},"queue":"file"}`
	f, err := spec.ParseFlowWith([]byte(in), spec.FlowOptions{Defaults: spec.Task{Queue: "cli", MaxRetries: &three, Retention: &hour}})
	if err != nil {
		t.Fatal(err)
	}
	want := []spec.FlowStep{
		{Path: "flow.chain[0].task", Kind: "a", Queue: "own"},
		{Path: "flow.chain[1].task", Kind: "b", Queue: "file"},
		{Path: "flow.chain[2].chord.header[0].task", Kind: "c", Queue: "file"},
		{Path: "flow.chain[2].chord.body.task", Kind: "d", Queue: "file"},
	}
	if fmt.Sprint(f.Tasks) != fmt.Sprint(want) || f.Steps != 4 || f.Queue != "file" {
		t.Fatalf("Tasks = %+v, want %+v", f.Tasks, want)
	}
	f, err = spec.ParseFlowWith([]byte(`{"flow":{"task":{"kind":"a"}}}`), spec.FlowOptions{Defaults: spec.Task{Queue: "cli"}})
	if err != nil || f.Tasks[0].Queue != "cli" {
		t.Fatalf("caller default: %+v, %v", f.Tasks, err)
	}
	f, err = spec.ParseFlow([]byte(`{"flow":{"task":{"kind":"a"}},"retention":90}`))
	if err != nil || f.Retention != 90*time.Second {
		t.Fatalf("retention in seconds: %+v, %v", f, err)
	}
	f, err = spec.ParseFlow([]byte(`{"flow":{"task":{"kind":"a"}}}`))
	if err != nil || f.Tasks[0].Queue != queue.DefaultQueue {
		t.Fatalf("no queue: %+v, %v", f.Tasks, err)
	}
}

func TestParseFlowLimit(t *testing.T) {
	group := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"flow":{"group":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(`{"task":{"kind":"a"}}`)
		}
		b.WriteString(`]}}`)
		return b.String()
	}
	if _, err := spec.ParseFlowWith([]byte(group(5)), spec.FlowOptions{MaxSteps: 5}); err != nil {
		t.Fatalf("5 steps, limit 5: %v", err)
	}
	_, err := spec.ParseFlowWith([]byte(group(6)), spec.FlowOptions{MaxSteps: 5})
	if !errors.Is(err, spec.ErrFlowTooLarge) || !strings.Contains(err.Error(), "flow.group[5].task: flow too large: more than 5 steps, the limit") {
		t.Fatalf("6 steps, limit 5: %v", err)
	}
	for _, bad := range []int{-1, queue.DefaultMaxFlowSteps + 1} {
		if _, err := spec.ParseFlowWith([]byte(group(1)), spec.FlowOptions{MaxSteps: bad}); !errors.Is(err, queue.ErrInvalidOption) {
			t.Errorf("limit %d: %v", bad, err)
		}
	}
	// The default limit is the queue's.
	_, err = spec.ParseFlow([]byte(group(queue.DefaultMaxFlowSteps + 1)))
	if !errors.Is(err, spec.ErrFlowTooLarge) {
		t.Fatalf("over the default: %v", err)
	}
}

func TestCheckKinds(t *testing.T) {
	f, err := spec.ParseFlow([]byte(`{"flow":{"chain":[{"task":{"kind":"add","args":[2,2]}},{"task":{"kind":"mul","args":[4]}},{"task":{"kind":"mail","queue":"m"}}]}}`))
	if err != nil {
		t.Fatal(err)
	}
	ws := []queue.WorkerInfo{
		{ID: "w1", Queues: []string{"default"}, Kinds: []string{"add"}},
		{ID: "w2", Queues: []string{"default", "other"}, Kinds: []string{"sum", "add"}},
	}
	err = f.CheckKinds(spec.LiveKinds(ws))
	var uk *spec.UnknownKindError
	if !errors.As(err, &uk) || !errors.Is(err, spec.ErrUnknownKind) || uk.Kind != "mul" || uk.Path != "flow.chain[1].task" {
		t.Fatalf("CheckKinds = %v", err)
	}
	if want := `flow.chain[1].task: unknown task kind "mul" on queue "default" (served: add, sum)`; !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("message %q, want %q...", err, want)
	}
	// A second worker that publishes nothing may serve anything.
	if err := f.CheckKinds(spec.LiveKinds(append(ws, queue.WorkerInfo{ID: "w3", Queues: []string{"default"}}))); err != nil {
		t.Fatalf("with a worker of unknown kinds: %v", err)
	}
	// mul served: queue m has no live worker, so its kinds are unknown.
	ws[0].Kinds = append(ws[0].Kinds, "mul")
	if err := f.CheckKinds(spec.LiveKinds(ws)); err != nil {
		t.Fatalf("all served: %v", err)
	}
	if err := f.CheckKinds(spec.LiveKinds(nil)); err != nil {
		t.Fatalf("no workers: %v", err)
	}
	// A fixed list (conq enqueue --kinds) applies to every queue.
	err = f.CheckKinds(func(string) []string { return []string{"add", "mul"} })
	if !errors.As(err, &uk) || uk.Kind != "mail" || uk.Queue != "m" {
		t.Fatalf("fixed list: %v", err)
	}

	list := func(context.Context) ([]queue.WorkerInfo, error) {
		return nil, fmt.Errorf("x: %w", queue.ErrUnsupported)
	}
	if err := f.CheckWorkers(context.Background(), list); err != nil {
		t.Fatalf("no registry: %v", err)
	}
	list = func(context.Context) ([]queue.WorkerInfo, error) { return nil, errors.New("connection refused") }
	if err := f.CheckWorkers(context.Background(), list); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Fatalf("registry down: %v", err)
	}
}
