package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	"github.com/conqhq/conq/queue/broker/memory"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
	"github.com/conqhq/conq/queue/spec"
)

func TestAPIWorkflow(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	r := ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"chain":[{"task":{"kind":"a","args":[2,2]}},{"task":{"kind":"m","args":[4]}}]},"queue":"wq"}`)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id, _ := r.json(t)["id"].(string)
	for _, res := range []string{"4", "16"} {
		tasks, err := ts.b.Fetch(ctx, broker.FetchParams{Queues: []string{"wq"}, Max: 5, Lease: 60e9})
		if err != nil || len(tasks) != 1 {
			t.Fatalf("fetch: %v %v", tasks, err)
		}
		if err := ts.b.Complete(ctx, broker.Ack{LeaseRef: tasks[0].Ref(), Result: []byte(res)}); err != nil {
			t.Fatal(err)
		}
	}
	g := ts.do(t, "GET", "/api/v1/workflows/"+id+"?wait=5s", nil).json(t)
	if g["state"] != "completed" || g["result"] != float64(16) || len(g["steps"].([]any)) != 2 {
		t.Fatalf("get: %v", g)
	}
	if r := ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"group":[]}}`); r.status != 400 || r.errCode(t) != "invalid_argument" {
		t.Fatalf("empty group: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "POST", "/api/v1/workflows/"+id+"/cancel", nil); r.status != 409 {
		t.Fatalf("cancel finished: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "GET", "/api/v1/workflows/nope", nil); r.status != 404 {
		t.Fatalf("get absent: %d %s", r.status, r.body)
	}

	// An immutable step runs with its own payload, which may be JSON after
	// another step; a mutable one may not.
	if r := ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"chain":[{"task":{"kind":"a"}},{"task":{"kind":"m","payload":{"x":1}}}]},"queue":"wi"}`); r.status != 400 {
		t.Fatalf("mutable JSON step after another: %d %s", r.status, r.body)
	}
	r = ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"chain":[{"task":{"kind":"a","args":[1]}},{"task":{"kind":"m","payload":{"x":1}},"immutable":true}]},"queue":"wi"}`)
	if r.status != 201 {
		t.Fatalf("create immutable: %d %s", r.status, r.body)
	}
	id, _ = r.json(t)["id"].(string)
	for _, want := range []string{`{"args":[1],"kwargs":{}}`, `{"x":1}`} {
		tasks, err := ts.b.Fetch(ctx, broker.FetchParams{Queues: []string{"wi"}, Max: 5, Lease: 60e9})
		if err != nil || len(tasks) != 1 || string(tasks[0].Payload) != want {
			t.Fatalf("fetch: %v %v, want payload %s", tasks, err, want)
		}
		if err := ts.b.Complete(ctx, broker.Ack{LeaseRef: tasks[0].Ref(), Result: []byte("7")}); err != nil {
			t.Fatal(err)
		}
	}
	g = ts.do(t, "GET", "/api/v1/workflows/"+id+"?wait=5s", nil).json(t)
	steps := g["steps"].([]any)
	if g["state"] != "completed" || steps[0].(map[string]any)["immutable"] != nil || steps[1].(map[string]any)["immutable"] != true {
		t.Fatalf("get immutable: %v", g)
	}
}

// The API refuses, before anything is enqueued, a flow over the step limit
// and one naming a kind no live worker of its queue serves.
func TestAPIWorkflowRejections(t *testing.T) {
	ts := newTestServer(t, Config{MaxFlowSteps: 3})
	ctx := context.Background()
	nothingEnqueued := func() {
		t.Helper()
		qs, err := ts.insp.Queues(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range qs {
			for st, n := range q.Counts {
				if n > 0 {
					t.Fatalf("queue %s has %d %s tasks, want none", q.Name, n, st)
				}
			}
		}
	}
	r := ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"group":[{"task":{"kind":"a"}},{"task":{"kind":"a"}},{"task":{"kind":"a"}},{"task":{"kind":"a"}}]}}`)
	if r.status != 413 || r.errCode(t) != "flow_too_large" || !strings.Contains(string(r.body), "more than 3 steps") {
		t.Fatalf("over the limit: %d %s", r.status, r.body)
	}
	nothingEnqueued()

	// No live worker: the kinds cannot be known, so anything goes.
	chord := `{"flow":{"chord":{"header":[{"task":{"kind":"add","args":[1,1]}},{"task":{"kind":"add","args":[2,2]}}],"body":{"task":{"kind":"tsum"}}}}}`
	if r := ts.do(t, "POST", "/api/v1/workflows", chord); r.status != 201 {
		t.Fatalf("no workers: %d %s", r.status, r.body)
	}
	wf := ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"task":{"kind":"x"}},"queue":"other"}`)
	if wf.status != 201 {
		t.Fatalf("create: %d %s", wf.status, wf.body)
	}
	now := time.Now()
	if err := ts.b.Heartbeat(ctx, broker.WorkerInfo{ID: "w1", Queues: []string{"default"}, Kinds: []string{"add"}, StartedAt: now, HeartbeatAt: now}, time.Minute); err != nil {
		t.Fatal(err)
	}
	before, _ := ts.insp.Queues(ctx)
	r = ts.do(t, "POST", "/api/v1/workflows", chord)
	if r.status != 400 || r.errCode(t) != "unknown_kind" || !strings.Contains(string(r.body), `flow.chord.body.task: unknown task kind \"tsum\" on queue \"default\" (served: add)`) {
		t.Fatalf("unknown kind: %d %s", r.status, r.body)
	}
	after, _ := ts.insp.Queues(ctx)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("queues changed: %v -> %v", before, after)
	}
	// Another queue's workers are not asked.
	if r := ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"task":{"kind":"tsum"}},"queue":"other"}`); r.status != 201 {
		t.Fatalf("other queue: %d %s", r.status, r.body)
	}
	if err := ts.b.Heartbeat(ctx, broker.WorkerInfo{ID: "w2", Queues: []string{"default"}, Kinds: []string{"tsum"}, StartedAt: now, HeartbeatAt: now}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if r := ts.do(t, "POST", "/api/v1/workflows", chord); r.status != 201 {
		t.Fatalf("served by two workers: %d %s", r.status, r.body)
	}
	if _, err := New(Config{Broker: ts.b, MaxFlowSteps: queue.DefaultMaxFlowSteps + 1}); err == nil {
		t.Fatal("New accepted a MaxFlowSteps over the queue's limit")
	}
}

// On Redis the broker's own refusals keep their meaning: a workflow over
// the broker's step limit is 413.
func TestAPIWorkflowRedisRefusals(t *testing.T) {
	url := testenv.RedisURL(t)
	prefix := testenv.UniquePrefix(t, testenv.RedisClient(t))
	b, err := redisbroker.Open(context.Background(), url, redisbroker.Config{Prefix: prefix, MaxWorkflowSteps: 2, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	ts := newTestServer(t, Config{Broker: b})
	r := ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"group":[{"task":{"kind":"a"}},{"task":{"kind":"a"}},{"task":{"kind":"a"}}]}}`)
	if r.status != 413 || r.errCode(t) != "flow_too_large" {
		t.Fatalf("over the broker's limit: %d %s", r.status, r.body)
	}
	// A workflow spanning queues is taken (the broker moves its steps
	// between slots).
	r = ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"group":[{"task":{"kind":"a"}},{"task":{"kind":"a","queue":"other"}}]}}`)
	if r.status != 201 {
		t.Fatalf("two queues: %d %s", r.status, r.body)
	}
	r = ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"chain":[{"task":{"kind":"a","args":[1]}},{"task":{"kind":"b","args":[]}}]},"queue":"rq"}`)
	if r.status != 201 {
		t.Fatalf("create on Redis: %d %s", r.status, r.body)
	}
	id := r.json(t)["id"].(string)
	g := ts.do(t, "GET", "/api/v1/workflows/"+id, nil).json(t)
	if g["state"] != "running" || len(g["steps"].([]any)) != 2 {
		t.Fatalf("get on Redis: %v", g)
	}
	page := ts.do(t, "GET", "/workflows/"+id, nil)
	if page.status != 200 || !strings.Contains(string(page.body), `data-step-state="waiting"`) {
		t.Fatalf("dashboard on Redis: %d %s", page.status, page.body)
	}
}

// GET /api/v1/workflows lists newest first, pages by cursor, filters by
// state and refuses bad parameters.
func TestAPIWorkflowList(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	if l := ts.do(t, "GET", "/api/v1/workflows", nil).json(t); len(l["workflows"].([]any)) != 0 || l["next"] != nil {
		t.Fatalf("empty list: %v", l)
	}
	var ids []string
	for range 3 {
		r := ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"chain":[{"task":{"kind":"a"}},{"task":{"kind":"b"}}]},"queue":"wl"}`)
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		id, _ := r.json(t)["id"].(string)
		ids = append(ids, id)
	}
	if err := ts.insp.CancelWorkflow(ctx, ids[1]); err != nil {
		t.Fatal(err)
	}
	var got []string
	path := "/api/v1/workflows?limit=2"
	for range 5 {
		l := ts.do(t, "GET", path, nil).json(t)
		for _, w := range l["workflows"].([]any) {
			m := w.(map[string]any)
			got = append(got, m["id"].(string))
			if m["steps"] != float64(2) || m["queue"] != "wl" || m["created_at"] == nil {
				t.Fatalf("summary %v", m)
			}
		}
		next, _ := l["next"].(string)
		if next == "" {
			break
		}
		path = "/api/v1/workflows?limit=2&cursor=" + url.QueryEscape(next)
	}
	if len(got) != 3 {
		t.Fatalf("listed %v, want the 3 of %v", got, ids)
	}
	l := ts.do(t, "GET", "/api/v1/workflows?state=cancelled", nil).json(t)
	if ws := l["workflows"].([]any); len(ws) != 1 || ws[0].(map[string]any)["id"] != ids[1] || ws[0].(map[string]any)["state"] != "cancelled" || l["state"] != "cancelled" {
		t.Fatalf("cancelled: %v", l)
	}
	for _, q := range []string{"state=stuck", "limit=0", "limit=1001", "limit=x", "cursor=nope"} {
		if r := ts.do(t, "GET", "/api/v1/workflows?"+q, nil); r.status != 400 || r.errCode(t) != "invalid_argument" {
			t.Fatalf("%s: %d %s", q, r.status, r.body)
		}
	}
	if r := ts.do(t, "DELETE", "/api/v1/workflows", nil); r.status != 405 {
		t.Fatalf("DELETE: %d %s", r.status, r.body)
	}
}

// TestWorkflowKindCheckCache: a recent list of workers only confirms; what
// it does not confirm is checked against a fresh list.
func TestWorkflowKindCheckCache(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	live := []queue.WorkerInfo{{ID: "w1", Queues: []string{"default"}, Kinds: []string{"add"}, StartedAt: now, HeartbeatAt: now}}
	calls := 0
	s := &Server{}
	s.workers.list = func(context.Context) ([]queue.WorkerInfo, error) { calls++; return slices.Clone(live), nil }
	flow := func(kind string) *spec.Flow {
		f, err := spec.ParseFlow([]byte(`{"flow":{"chain":[{"task":{"kind":"add"}},{"task":{"kind":"` + kind + `"}}]}}`))
		if err != nil {
			t.Fatal(err)
		}
		return &f
	}
	if err := s.checkKinds(ctx, flow("add")); err != nil || calls != 1 {
		t.Fatalf("first check: %v, %d lists", err, calls)
	}
	if err := s.checkKinds(ctx, flow("add")); err != nil || calls != 1 {
		t.Fatalf("confirmed by the recent list: %v, %d lists", err, calls)
	}
	// A worker serving tsum came since: the recent list would refuse, the
	// fresh one accepts.
	live = append(live, queue.WorkerInfo{ID: "w2", Queues: []string{"default"}, Kinds: []string{"tsum"}, StartedAt: now, HeartbeatAt: now})
	if err := s.checkKinds(ctx, flow("tsum")); err != nil || calls != 2 {
		t.Fatalf("new worker's kind: %v, %d lists", err, calls)
	}
	// Refused only by a fresh list.
	if err := s.checkKinds(ctx, flow("nope")); !errors.Is(err, spec.ErrUnknownKind) || calls != 3 {
		t.Fatalf("unknown kind: %v, %d lists", err, calls)
	}
	// No live worker in the recent list: it confirms nothing.
	live = nil
	s.workers.at = time.Time{}
	if err := s.checkKinds(ctx, flow("x")); err != nil || calls != 4 {
		t.Fatalf("no workers: %v, %d lists", err, calls)
	}
	if err := s.checkKinds(ctx, flow("x")); err != nil || calls != 5 {
		t.Fatalf("no workers, again: %v, %d lists (a list without workers must not confirm)", err, calls)
	}
}

// GET /api/v1/workflows/{id}/result answers a workflow's id, state, result
// and error from its outcome, never its steps, with the wait and errors of
// GET /api/v1/workflows/{id}; that one reads a workflow once when the
// wait sees it finish. On both brokers.
func TestAPIWorkflowResult(t *testing.T) {
	for _, name := range []string{"memory", "redis"} {
		t.Run(name, func(t *testing.T) {
			var b broker.Broker
			if name == "redis" {
				b = redisBroker(t)
			} else {
				m := memory.New(memory.Config{})
				t.Cleanup(func() { _ = m.Close() })
				b = m
			}
			testAPIWorkflowResult(t, brokertest.NewFaulty(b))
		})
	}
}

func testAPIWorkflowResult(t *testing.T, f *brokertest.Faulty) {
	ts := newTestServer(t, Config{Broker: f})
	ctx := context.Background()
	create := func(body string) string {
		t.Helper()
		r := ts.do(t, "POST", "/api/v1/workflows", body)
		if r.status != 201 {
			t.Fatalf("create: %d %s", r.status, r.body)
		}
		return r.json(t)["id"].(string)
	}
	fetch := func(q string, n int) []*broker.Task {
		t.Helper()
		tasks, err := f.Fetch(ctx, broker.FetchParams{Queues: []string{q}, Max: n + 1, Lease: time.Minute})
		if err != nil || len(tasks) != n {
			t.Fatalf("fetch %s: %v %v, want %d tasks", q, tasks, err, n)
		}
		return tasks
	}
	keys := func(m map[string]any) []string {
		var ks []string
		for k := range m {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}

	// A chord: running (the wait runs out), then completed with a list.
	id := create(`{"flow":{"chord":{"header":[{"task":{"kind":"a","args":[1]}},{"task":{"kind":"a","args":[2]}}],"body":{"task":{"kind":"s"}}}},"queue":"wr"}`)
	r := ts.do(t, "GET", "/api/v1/workflows/"+id+"/result?wait=50ms", nil)
	if g := r.json(t); r.status != 200 || g["id"] != id || g["state"] != "running" || !slices.Equal(keys(g), []string{"id", "state"}) {
		t.Fatalf("running: %d %s", r.status, r.body)
	}
	waited := make(chan response, 1)
	go func() { // not ts.do: no t.Fatal off the test's goroutine
		var r response
		resp, err := http.Get(ts.url + "/api/v1/workflows/" + id + "/result?wait=10s")
		if err == nil {
			r.status = resp.StatusCode
			r.body, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
		} else {
			r.body = []byte(err.Error())
		}
		waited <- r
	}()
	for _, task := range fetch("wr", 2) {
		if err := f.Complete(ctx, broker.Ack{LeaseRef: task.Ref(), Result: []byte(strconv.Itoa(task.Step + 1))}); err != nil {
			t.Fatal(err)
		}
	}
	body := fetch("wr", 1)[0]
	if err := f.Complete(ctx, broker.Ack{LeaseRef: body.Ref(), Result: []byte(`[1, 2, "three"]`)}); err != nil {
		t.Fatal(err)
	}
	var done response
	select {
	case done = <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("GET result?wait=10s did not return once the chord completed")
	}
	if g := done.json(t); done.status != 200 || g["state"] != "completed" || fmt.Sprint(g["result"]) != "[1 2 three]" || !slices.Equal(keys(g), []string{"id", "result", "state"}) {
		t.Fatalf("completed: %d %s", done.status, done.body)
	}
	full := ts.do(t, "GET", "/api/v1/workflows/"+id, nil).json(t)
	if fmt.Sprint(full["result"]) != "[1 2 three]" {
		t.Fatalf("GET workflow result %v", full["result"])
	}
	// Neither endpoint reads the workflow again after a wait that saw it
	// finish; the result endpoint never reads the steps.
	gets := f.Calls("GetWorkflow")
	if g := ts.do(t, "GET", "/api/v1/workflows/"+id+"?wait=5s", nil).json(t); g["state"] != "completed" || len(g["steps"].([]any)) != 3 {
		t.Fatalf("get with wait: %v", g)
	}
	if n := f.Calls("GetWorkflow") - gets; n != 0 {
		t.Fatalf("GET ?wait of a finished workflow called GetWorkflow %d times after AwaitWorkflow", n)
	}
	awaits, outcomes := f.Calls("AwaitWorkflowOutcome"), f.Calls("GetWorkflowOutcome")
	if g := ts.do(t, "GET", "/api/v1/workflows/"+id+"/result?wait=5s", nil).json(t); g["state"] != "completed" {
		t.Fatalf("result with wait: %v", g)
	}
	if ts.do(t, "GET", "/api/v1/workflows/"+id+"/result", nil).json(t)["state"] != "completed" {
		t.Fatal("result without wait")
	}
	if f.Calls("GetWorkflow") != gets || f.Calls("AwaitWorkflow") == 0 ||
		f.Calls("AwaitWorkflowOutcome") != awaits+1 || f.Calls("GetWorkflowOutcome") != outcomes+1 {
		t.Fatalf("calls: GetWorkflow %d (was %d), AwaitWorkflowOutcome %d (was %d), GetWorkflowOutcome %d (was %d)",
			f.Calls("GetWorkflow"), gets, f.Calls("AwaitWorkflowOutcome"), awaits, f.Calls("GetWorkflowOutcome"), outcomes)
	}

	// A failed workflow: its error, no result.
	id = create(`{"flow":{"chain":[{"task":{"kind":"a","max_retries":0}},{"task":{"kind":"b"}}]},"queue":"wf"}`)
	if err := f.Fail(ctx, broker.Failure{LeaseRef: fetch("wf", 1)[0].Ref(), Error: broker.AttemptError{Message: "boom"}, Dead: true}); err != nil {
		t.Fatal(err)
	}
	r = ts.do(t, "GET", "/api/v1/workflows/"+id+"/result?wait=5s", nil)
	full = ts.do(t, "GET", "/api/v1/workflows/"+id, nil).json(t)
	if g := r.json(t); r.status != 200 || g["state"] != "failed" || g["error"] == nil || g["error"] != full["error"] ||
		!slices.Equal(keys(g), []string{"error", "id", "state"}) {
		t.Fatalf("failed: %d %s (GET: %v)", r.status, r.body, full)
	}

	// Unknown workflows and bad waits.
	for _, path := range []string{"/api/v1/workflows/nope/result", "/api/v1/workflows/nope/result?wait=1s"} {
		if r := ts.do(t, "GET", path, nil); r.status != 404 || r.errCode(t) != "workflow_not_found" {
			t.Fatalf("%s: %d %s", path, r.status, r.body)
		}
	}
	for _, q := range []string{"wait=x", "wait=-1s", "wait=6m"} {
		if r := ts.do(t, "GET", "/api/v1/workflows/"+id+"/result?"+q, nil); r.status != 400 || r.errCode(t) != "invalid_argument" {
			t.Fatalf("%s: %d %s", q, r.status, r.body)
		}
	}
	if r := ts.do(t, "POST", "/api/v1/workflows/"+id+"/result", nil); r.status != 405 {
		t.Fatalf("POST result: %d %s", r.status, r.body)
	}
}
