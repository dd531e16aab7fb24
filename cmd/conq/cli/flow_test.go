package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/memory"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

const (
	chainFlow = `{"flow":{"chain":[{"task":{"kind":"add","args":[2,2]}},{"task":{"kind":"mul","args":[4]}}]}}`
	chordFlow = `{"flow":{"chord":{"header":[{"task":{"kind":"add","args":[1,1]}},{"task":{"kind":"add","args":[2,2]}},{"task":{"kind":"add","args":[3,3]}}],"body":{"task":{"kind":"tsum"}}}}}`
)

// flowArgs decodes an "args" payload of numbers.
func flowArgs(t *queue.TaskInfo) ([]float64, error) {
	var ca struct{ Args []float64 }
	err := json.Unmarshal(t.Payload, &ca)
	return ca.Args, err
}

// flowHandlers registers add, mul, tsum (sums a JSON list) and boom.
func flowHandlers(w *queue.Worker) {
	w.HandleFunc("add", func(_ context.Context, t *queue.TaskInfo) ([]byte, error) {
		a, err := flowArgs(t)
		if err != nil || len(a) != 2 {
			return nil, queue.SkipRetry
		}
		return json.Marshal(a[0] + a[1])
	})
	w.HandleFunc("mul", func(_ context.Context, t *queue.TaskInfo) ([]byte, error) {
		a, err := flowArgs(t)
		if err != nil || len(a) != 2 {
			return nil, queue.SkipRetry
		}
		return json.Marshal(a[0] * a[1])
	})
	w.HandleFunc("tsum", func(_ context.Context, t *queue.TaskInfo) ([]byte, error) {
		var xs []float64
		if err := json.Unmarshal(t.Payload, &xs); err != nil {
			return nil, err
		}
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return json.Marshal(s)
	})
	w.HandleFunc("boom", func(context.Context, *queue.TaskInfo) ([]byte, error) {
		return nil, fmt.Errorf("the printer is on fire: %w", queue.SkipRetry)
	})
}

// memoryFlowBroker makes every command of the test use one memory broker
// (the Redis broker's flows are tested with the conformance suite), served by a Go worker that
// publishes its kinds.
func memoryFlowBroker(t *testing.T) broker.Broker {
	t.Helper()
	b := memory.New(memory.Config{})
	sharedBrokerForTest = b
	t.Cleanup(func() { sharedBrokerForTest = nil; b.Close() })
	w, err := queue.NewWorker(b, queue.WorkerConfig{
		Concurrency: 4, Logger: quietLogger(testWriter{t}), ForwardInterval: 20 * time.Millisecond,
		PollInterval: 20 * time.Millisecond, HeartbeatInterval: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	flowHandlers(w)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	insp := queue.NewInspector(b)
	waitFor(t, func() bool { ws, err := insp.Workers(context.Background()); return err == nil && len(ws) == 1 })
	return b
}

func writeFlow(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "flow.json")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnqueueFlowWait(t *testing.T) {
	memoryFlowBroker(t)
	ctx := queueCtx(t, 60*time.Second)
	if out := queueMust(t, ctx, "", "enqueue", "--flow", writeFlow(t, chainFlow), "--wait"); out != "16\n" {
		t.Fatalf("chain --wait printed %q, want 16", out)
	}
	// From stdin, as JSON.
	var got struct {
		ID     string          `json:"id"`
		State  string          `json:"state"`
		Result json.RawMessage `json:"result"`
	}
	out := queueMust(t, ctx, chordFlow, "enqueue", "--flow", "-", "--wait", "--json")
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.State != "completed" || string(got.Result) != "12" || !strings.HasPrefix(got.ID, "wf_") {
		t.Fatalf("chord --wait --json: %s (%v)", out, err)
	}
	// A group's result is the list of its members' in member order.
	group := `{"flow":{"group":[{"task":{"kind":"add","args":[1,1]}},{"task":{"kind":"mul","args":[3,3]}}]},"queue":"default"}`
	if out := queueMust(t, ctx, group, "enqueue", "--flow", "-", "--wait"); out != "[2,9]\n" {
		t.Fatalf("group --wait printed %q", out)
	}
}

func TestEnqueueFlowFailedAndInspect(t *testing.T) {
	memoryFlowBroker(t)
	ctx := queueCtx(t, 60*time.Second)
	doomed := `{"flow":{"chain":[{"task":{"kind":"add","args":[1,1]}},{"chord":{"header":[{"task":{"kind":"boom","max_retries":0}}],"body":{"task":{"kind":"tsum"}}}}]}}`
	r := queueRun(t, ctx, "", "enqueue", "--flow", writeFlow(t, doomed), "--wait")
	if r.code != 1 || !strings.Contains(r.stderr, "the printer is on fire") || !strings.Contains(r.stderr, "step 1 (boom, task wf_") || !strings.Contains(r.stderr, "failed") {
		t.Fatalf("failed flow: exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	id := r.stderr[strings.Index(r.stderr, "workflow wf_")+len("workflow "):]
	id = id[:strings.IndexByte(id, ' ')]

	out := queueMust(t, ctx, "", "inspect", "flow", id)
	for _, want := range []string{"Workflow:", id, "State:", "failed", "STEP", "KIND", "TASK", "ATTEMPTS", id + ".0", "completed", "2", id + ".1", "boom", "error: ", "the printer is on fire", "tsum", "cancelled"} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect flow lacks %q:\n%s", want, out)
		}
	}
	var v flowView
	if err := json.Unmarshal([]byte(queueMust(t, ctx, "", "inspect", "flow", id, "--json")), &v); err != nil {
		t.Fatal(err)
	}
	if v.ID != id || v.StateName != "failed" || len(v.Steps) != 3 || v.Steps[0].State != "completed" || string(v.Steps[0].Result) != "2" ||
		v.Steps[1].State != "failed" || v.Steps[1].Attempts != 1 || !strings.Contains(v.Steps[1].Error, "on fire") ||
		v.Steps[2].State != "cancelled" || len(v.Steps[2].Inputs) != 1 || v.Steps[1].Inputs[0] != 0 || v.Steps[2].TaskID != id+".2" {
		t.Fatalf("inspect flow --json = %+v", v)
	}
	// Not waiting: the ID, then the workflow runs on.
	id = strings.TrimSpace(queueMust(t, ctx, "", "enqueue", "--flow", writeFlow(t, chainFlow)))
	waitFor(t, func() bool {
		return strings.Contains(queueMust(t, ctx, "", "inspect", "flow", id), "State:     completed")
	})
	if r := queueRun(t, ctx, "", "inspect", "flow", "wf_nope"); r.code != 1 || !strings.Contains(r.stderr, `no workflow "wf_nope"`) {
		t.Fatalf("absent: exit %d, %s", r.code, r.stderr)
	}
	// A step that fails and waits to retry (1 s, then 2 s: tsum is given
	// add's 2, not a list): a wait that times out names it, with its error.
	slow := `{"flow":{"chain":[{"task":{"kind":"add","args":[1,1]}},{"task":{"kind":"tsum","max_retries":5}}]}}`
	r = queueRun(t, ctx, "", "enqueue", "--flow", writeFlow(t, slow), "--wait", "--wait-timeout", "2s")
	if r.code != 1 || !strings.Contains(r.stderr, "did not finish within --wait-timeout") ||
		!strings.Contains(r.stderr, "step 1 (tsum) waits to retry after") || !strings.Contains(r.stderr, "cannot unmarshal number") {
		t.Fatalf("wait-timeout of a retrying flow: exit %d, stderr %q", r.code, r.stderr)
	}
}

// Every rejection comes before anything is enqueued and names the problem.
func TestEnqueueFlowRejects(t *testing.T) {
	b := memoryFlowBroker(t)
	ctx := queueCtx(t, 60*time.Second)
	big := `{"flow":{"group":[` + strings.Repeat(`{"task":{"kind":"add","args":[1,1]}},`, 4) + `{"task":{"kind":"add","args":[1,1]}}]}}`
	for _, c := range []struct {
		name, flow string
		args       []string
		want       string
	}{
		{"empty group", `{"flow":{"chain":[{"task":{"kind":"add","args":[1,1]}},{"group":[]}]}}`, nil, "flow.chain[1].group: empty"},
		{"unknown kind", `{"flow":{"chain":[{"task":{"kind":"add","args":[1,1]}},{"task":{"kind":"mull","args":[2]}}]}}`, nil,
			`flow.chain[1].task: unknown task kind "mull" on queue "default" (served: add, boom, mul, tsum)`},
		{"offline kinds", chordFlow, []string{"--kinds", "add,mul"}, `flow.chord.body.task: unknown task kind "tsum"`},
		{"too many", big, []string{"--max-steps", "4"}, "flow.group[4].task: flow too large: more than 4 steps, the limit"},
		{"max-steps range", chainFlow, []string{"--max-steps", "0"}, "--max-steps 0: must be in 1..100000"},
		{"step id", `{"flow":{"task":{"kind":"add","id":"x"}}}`, nil, "a workflow step's task ID is set by the workflow"},
		{"payload after a step", `{"flow":{"chain":[{"task":{"kind":"add","args":[1,1]}},{"task":{"kind":"tsum","payload":[1]}}]}}`, nil, "has its own json payload"},
		{"with --kind", chainFlow, []string{"--kind", "add"}, "--flow cannot be combined with --kind"},
		{"bad json", `{"flow":`, nil, "--flow"},
		{"bad queue flag", chainFlow, []string{"--queue", "a b"}, `--queue: queue name "a b"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"enqueue", "--flow", writeFlow(t, c.flow)}, c.args...)
			r := queueRun(t, ctx, "", args...)
			if r.code != 2 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, c.want)
			}
		})
	}
	qs, err := queue.NewInspector(b).Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		for st, n := range q.Counts {
			if n > 0 {
				t.Fatalf("queue %s holds %d %s tasks after rejected flows", q.Name, n, st)
			}
		}
	}
	if r := queueRun(t, ctx, "", "enqueue", "--kind", "add", "--kinds", "add"); r.code != 2 || !strings.Contains(r.stderr, "--kinds and --max-steps need --flow") {
		t.Fatalf("--kinds without --flow: exit %d, %s", r.code, r.stderr)
	}
	// Another queue has no live worker: its kinds are unknown, so accepted.
	other := `{"flow":{"task":{"kind":"mull"}},"queue":"other"}`
	if r := queueRun(t, ctx, "", "enqueue", "--flow", writeFlow(t, other)); r.code != 0 {
		t.Fatalf("queue without workers: exit %d, %s", r.code, r.stderr)
	}
}

// With Redis, --flow goes to the Redis broker: a workflow if it has them,
// else an error saying the broker lacks them. --kinds needs no broker.
func TestEnqueueFlowRedis(t *testing.T) {
	r := queueRun(t, queueCtx(t, 10*time.Second), chordFlow, "enqueue", "--flow", "-", "--kinds", "add", "--broker", unusedBroker)
	if r.code != 2 || !strings.Contains(r.stderr, `unknown task kind "tsum"`) {
		t.Fatalf("--kinds offline: exit %d, %s", r.code, r.stderr)
	}
	url, prefix := queueTestRedis(t)
	ctx := queueCtx(t, 60*time.Second)
	b, err := redisbroker.Open(ctx, url, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if !b.Capabilities().Has(broker.CapWorkflows) {
		r := queueRun(t, ctx, chainFlow, "enqueue", "--flow", "-", "--broker", url)
		if r.code != 1 || !strings.Contains(r.stderr, "the broker does not support workflows") {
			t.Fatalf("unsupported: exit %d, %s", r.code, r.stderr)
		}
		return
	}
	startGoWorker(t, url, prefix, flowHandlers)
	bf := []string{"--broker", url}
	run := func(stdin string, args ...string) queueRunResult {
		return queueRun(t, ctx, stdin, append(args, bf...)...)
	}
	if r := run(chordFlow, "enqueue", "--flow", "-", "--wait"); r.code != 0 || r.stdout != "12\n" {
		t.Fatalf("chord on Redis: exit %d, %q, %s", r.code, r.stdout, r.stderr)
	}
	// The worker's heartbeat record carries its kinds through Redis.
	waitFor(t, func() bool {
		var ws []queue.WorkerInfo
		r := run("", "inspect", "workers", "--json")
		return r.code == 0 && json.Unmarshal([]byte(r.stdout), &ws) == nil && len(ws) == 1 && len(ws[0].Kinds) == 4
	})
	r = run(`{"flow":{"chain":[{"task":{"kind":"add","args":[1,1]}},{"task":{"kind":"sub","args":[1]}}]}}`, "enqueue", "--flow", "-")
	if r.code != 2 || !strings.Contains(r.stderr, `flow.chain[1].task: unknown task kind "sub" on queue "default" (served: add, boom, mul, tsum)`) {
		t.Fatalf("unknown kind on Redis: exit %d, %s", r.code, r.stderr)
	}
	doomed := `{"flow":{"chain":[{"task":{"kind":"add","args":[1,1]}},{"task":{"kind":"boom","max_retries":0}}]}}`
	r = run(doomed, "enqueue", "--flow", "-", "--wait", "--json")
	var v struct {
		ID, State, Error string
		Steps            []flowStep
	}
	if r.code != 1 || json.Unmarshal([]byte(r.stdout), &v) != nil || v.State != "failed" || len(v.Steps) != 2 || v.Steps[1].State != "failed" {
		t.Fatalf("failed flow on Redis: exit %d, %s, %s", r.code, r.stdout, r.stderr)
	}
	out := queueMust(t, ctx, "", append([]string{"inspect", "flow", v.ID}, bf...)...)
	for _, want := range []string{"State:     failed", v.ID + ".0", "completed", v.ID + ".1", "error: the printer is on fire"} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect flow on Redis lacks %q:\n%s", want, out)
		}
	}
	// The Redis broker takes a workflow whose steps are in two queues.
	r = run(`{"flow":{"group":[{"task":{"kind":"add","args":[1,1]}},{"task":{"kind":"x","queue":"elsewhere"}}]}}`, "enqueue", "--flow", "-")
	if r.code != 0 {
		t.Fatalf("two queues on Redis: exit %d, %s", r.code, r.stderr)
	}
	// inspect flows lists them through the Redis index, newest first.
	out = queueMust(t, ctx, "", append([]string{"inspect", "flows", "--state", "failed"}, bf...)...)
	if !strings.Contains(out, v.ID) || !strings.Contains(out, "failed") || !strings.Contains(out, "2/2") {
		t.Fatalf("inspect flows --state failed on Redis:\n%s", out)
	}
}

func TestInspectFlows(t *testing.T) {
	memoryFlowBroker(t)
	ctx := queueCtx(t, 60*time.Second)
	if out := queueMust(t, ctx, "", "inspect", "flows"); !strings.Contains(out, "(no workflows)") {
		t.Fatalf("no workflows:\n%s", out)
	}
	doomed := `{"flow":{"chain":[{"task":{"kind":"add","args":[1,1]}},{"task":{"kind":"boom","max_retries":0}}]}}`
	var ids []string
	for _, f := range []string{chainFlow, doomed, chainFlow} {
		r := queueRun(t, ctx, f, "enqueue", "--flow", "-", "--wait", "--json")
		var v struct{ ID string }
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || v.ID == "" {
			t.Fatalf("enqueue: exit %d, %s, %s", r.code, r.stdout, r.stderr)
		}
		ids = append(ids, v.ID)
	}
	out := queueMust(t, ctx, "", "inspect", "flows")
	for _, want := range []string{"ID", "QUEUE", "STATE", "STEPS", "CREATED", ids[0], ids[1], ids[2], "completed", "failed", "2/2", "the printer is on fire"} {
		if !strings.Contains(out, want) {
			t.Fatalf("inspect flows lacks %q:\n%s", want, out)
		}
	}
	// Newest first.
	if strings.Index(out, ids[2]) > strings.Index(out, ids[1]) || strings.Index(out, ids[1]) > strings.Index(out, ids[0]) {
		t.Fatalf("inspect flows not newest first (%v):\n%s", ids, out)
	}
	var page struct {
		Workflows []queue.WorkflowSummary `json:"workflows"`
		Next      string                  `json:"next"`
	}
	if err := json.Unmarshal([]byte(queueMust(t, ctx, "", "inspect", "flows", "--state", "failed", "--json")), &page); err != nil ||
		len(page.Workflows) != 1 || page.Workflows[0].ID != ids[1] || page.Workflows[0].Done != 2 || page.Next != "" {
		t.Fatalf("inspect flows --state failed --json = %+v, %v", page, err)
	}
	// A limit leaves a cursor that lists the rest.
	out = queueMust(t, ctx, "", "inspect", "flows", "--limit", "2")
	i := strings.Index(out, "(more: --cursor ")
	if i < 0 || strings.Contains(out, ids[0]) {
		t.Fatalf("inspect flows --limit 2:\n%s", out)
	}
	cursor := strings.TrimSuffix(strings.TrimSpace(out[i+len("(more: --cursor "):]), ")")
	if out := queueMust(t, ctx, "", "inspect", "flows", "--limit", "2", "--cursor", cursor); !strings.Contains(out, ids[0]) || strings.Contains(out, ids[1]) || strings.Contains(out, "more:") {
		t.Fatalf("inspect flows --cursor:\n%s", out)
	}
	for _, bad := range [][]string{{"--state", "stuck"}, {"--limit", "-1"}, {"--cursor", "nope"}} {
		if r := queueRun(t, ctx, "", append([]string{"inspect", "flows"}, bad...)...); r.code != 2 {
			t.Fatalf("inspect flows %v: exit %d, %s", bad, r.code, r.stderr)
		}
	}
}
