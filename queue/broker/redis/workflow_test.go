package redis_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

func chord(id, q string, n int) *broker.Workflow {
	w := &broker.Workflow{ID: id}
	list := broker.Input{Step: -1}
	for i := range n {
		w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: id + "." + strconv.Itoa(i), Kind: "m", Queue: q, Encoding: "json"}})
		list.List = append(list.List, broker.Input{Step: i})
	}
	w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: id + ".body", Kind: "body", Queue: q, Encoding: "json"}, Input: &list})
	w.Output = broker.Input{Step: n}
	return w
}

// TestWorkflowLimits: a workflow above MaxWorkflowSteps, or with steps in
// two queues, is refused with an error naming the problem, and nothing is
// stored.
func TestWorkflowLimits(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	c := testClient(t)
	b, err := redisbroker.New(redisbroker.Config{Client: c, Prefix: testenv.UniquePrefix(t, c), MaxWorkflowSteps: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = b.CreateWorkflow(ctx, chord("big", "q", 5))
	if !errors.Is(err, broker.ErrWorkflowTooLarge) || !strings.Contains(err.Error(), "6 steps") || !strings.Contains(err.Error(), "limit of 5") {
		t.Fatalf("CreateWorkflow(6 steps, limit 5) = %v", err)
	}
	if _, err := b.GetWorkflow(ctx, "big"); !errors.Is(err, broker.ErrTaskNotFound) {
		t.Fatalf("GetWorkflow of a refused workflow = %v", err)
	}
	if n, _ := c.Keys(ctx, b.Prefix()+":*").Result(); len(n) != 0 {
		t.Fatalf("a refused workflow left keys %v", n)
	}
	// Steps in two queues are accepted (the conformance suite runs them,
	// brokertest WorkflowCrossQueue*); a bad queue name is still refused.
	w := chord("two", "q", 2)
	w.Steps[1].Task.Queue = "other"
	if err := b.CreateWorkflow(ctx, w); err != nil {
		t.Fatalf("CreateWorkflow(two queues) = %v", err)
	}
	w = chord("bad", "q", 2)
	w.Steps[1].Task.Queue = "a{b"
	if err := b.CreateWorkflow(ctx, w); err == nil {
		t.Fatal("CreateWorkflow with a queue named a{b succeeded")
	}
	if err := b.CreateWorkflow(ctx, chord("ok", "q", 4)); err != nil {
		t.Fatal(err)
	}
	// The same ID again, in another queue: a conflict.
	if err := b.CreateWorkflow(ctx, chord("ok", "q2", 1)); !errors.Is(err, broker.ErrTaskIDConflict) {
		t.Fatalf("CreateWorkflow(same ID, other queue) = %v", err)
	}
}

// TestWorkflowJSONStrings: error messages and kinds of every byte (invalid
// UTF-8, controls, HTML, U+2028) reach a tolerant body as json.Marshal
// writes them: the Lua encoder matches Go's.
func TestWorkflowJSONStrings(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	b, _ := newTestBroker(t, nil)
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "é", "\u2028", "\u2029", "\xff", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x00", "\x1f", "\x7f",
		"<", ">", "&", "\"", "\\", "\n", "\t", "\b", "\f", "\U0001F600", "\xef\xbf\xbd", "\xc0\xaf", "\xe0\x9f\xbf"}
	for n := range 60 {
		var kb strings.Builder
		for range r.IntN(12) {
			kb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		kind := "k" + kb.String()
		id := "js" + strconv.Itoa(n)
		w := &broker.Workflow{ID: id, Steps: []broker.WorkflowStep{
			{Task: broker.Task{ID: id + ".0", Kind: kind, Queue: "js", Encoding: "json"}},
			{Task: broker.Task{ID: id + ".1", Kind: "after", Queue: "js", Encoding: "json"}, Input: &broker.Input{Step: 0}},
			{Task: broker.Task{ID: id + ".2", Kind: "body", Queue: "js", Encoding: "json"}, Tolerant: true,
				Input: &broker.Input{Step: -1, List: []broker.Input{{Step: 1}}}},
		}, Output: broker.Input{Step: 2}}
		if err := b.CreateWorkflow(ctx, w); err != nil {
			t.Fatal(err)
		}
		ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"js"}, Max: 1, Lease: time.Minute})
		if err != nil || len(ts) != 1 {
			t.Fatalf("Fetch = %v, %v", ts, err)
		}
		if err := b.Fail(ctx, broker.Failure{LeaseRef: ts[0].Ref(), Error: broker.AttemptError{Message: "boom " + kb.String()}, Dead: true}); err != nil {
			t.Fatal(err)
		}
		ts, err = b.Fetch(ctx, broker.FetchParams{Queues: []string{"js"}, Max: 1, Lease: time.Minute})
		if err != nil || len(ts) != 1 {
			t.Fatalf("Fetch body = %v, %v", ts, err)
		}
		got, err := b.GetWorkflow(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := broker.InputValue(*w.Steps[2].Input, true, func(i int) broker.StepResult {
			s := got.Steps[i]
			return broker.StepResult{OK: s.State == broker.StepCompleted, Result: s.Result, Error: s.Error}
		})
		if string(ts[0].Payload) != string(want) {
			t.Fatalf("kind %q: body payload\n %q\nwant\n %q", kind, ts[0].Payload, want)
		}
		if !strings.Contains(got.Steps[1].Error, kind) {
			t.Fatalf("step 1 error %q does not name kind %q", got.Steps[1].Error, kind)
		}
	}
}

// TestWorkflowMemory measures Redis memory per workflow member (for
// docs/workflows.md): a chord of 10,000 members with a 10-byte payload,
// while every member is pending, then after every member completed with
// a 1-byte result (tasks without retention are gone; the workflow keeps
// each result). Run with CONQ_MEASURE=1.
func TestWorkflowMemory(t *testing.T) {
	if os.Getenv("CONQ_MEASURE") == "" {
		t.Skip("a measurement: run with CONQ_MEASURE=1")
	}
	testenv.RedisURL(t)
	ctx := context.Background()
	b, c := newTestBroker(t, nil)
	used := func() int64 {
		s, err := c.Info(ctx, "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(s, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no used_memory")
		return 0
	}
	const n = 10_000
	w := chord("mem", "mq", n)
	for i := range n {
		w.Steps[i].Task.Payload = []byte(`"abcdefgh"`)
	}
	before := used()
	if err := b.CreateWorkflow(ctx, w); err != nil {
		t.Fatal(err)
	}
	pending := used()
	for done := 0; done < n; {
		ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"mq"}, Max: 1000, Lease: time.Minute})
		if err != nil || len(ts) == 0 {
			t.Fatal(err)
		}
		acks := make([]broker.Ack, len(ts))
		for i, tk := range ts {
			acks[i] = broker.Ack{LeaseRef: tk.Ref(), Result: []byte("1")}
		}
		if err := b.Complete(ctx, acks...); err != nil {
			t.Fatal(err)
		}
		done += len(ts)
	}
	finished := used()
	wf, _ := c.MemoryUsage(ctx, b.Prefix()+":{mq}:wf", 0).Result()
	t.Logf("redis: %d members: %.0f bytes/member with every member pending (workflow + tasks), %.0f bytes/member once the members completed (workflow records, results kept); MEMORY USAGE of the wf hash %d bytes",
		n, float64(pending-before)/n, float64(finished-before)/n, wf)
}

// TestWorkflowConcurrentCreate: concurrent creates are combined into
// shared script calls, and still each decided as if alone: of 20 creates
// of one ID exactly one wins, and of workflows sharing a step task ID
// exactly one is stored.
func TestWorkflowConcurrentCreate(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	b, _ := newTestBroker(t, nil)
	for round := range 5 {
		id := "same" + strconv.Itoa(round)
		errs := make(chan error, 20)
		for range 20 {
			go func() { errs <- b.CreateWorkflow(ctx, chord(id, "cc", 3)) }()
		}
		wins := 0
		for range 20 {
			err := <-errs
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, broker.ErrTaskIDConflict):
				t.Fatalf("CreateWorkflow: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d creates of one ID succeeded", round, wins)
		}
		// Different workflow IDs, the same step task IDs.
		for k := range 20 {
			go func() {
				w := chord("other"+strconv.Itoa(round)+"_"+strconv.Itoa(k), "cc", 2)
				for i := range w.Steps {
					w.Steps[i].Task.ID = "shared" + strconv.Itoa(round) + "." + strconv.Itoa(i)
				}
				errs <- b.CreateWorkflow(ctx, w)
			}()
		}
		wins = 0
		for range 20 {
			err := <-errs
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, broker.ErrTaskIDConflict):
				t.Fatalf("CreateWorkflow: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d workflows with the same step task IDs were stored", round, wins)
		}
	}
}

// TestListWorkflowsScanCap: with a state filter that matches few
// workflows, each wf_list call stops after a few index entries; paging
// still lists every match once, newest first, across three shards.
func TestListWorkflowsScanCap(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	defer redisbroker.SetWorkflowListScan(redisbroker.SetWorkflowListScan(3))
	clock := brokertest.NewManualClock(time.Time{})
	b, _ := newTestBroker(t, clock)
	if err := b.SetShards(ctx, broker.ShardParams{Queue: "sc", Shards: 3}); err != nil {
		t.Fatal(err)
	}
	var all, cancelled []string
	for i := range 30 {
		clock.Advance(time.Millisecond)
		id := "sc" + strconv.Itoa(100+i)
		if err := b.CreateWorkflow(ctx, chord(id, "sc", 1)); err != nil {
			t.Fatal(err)
		}
		all = append([]string{id}, all...)
		if i%5 == 0 {
			if err := b.CancelWorkflow(ctx, id); err != nil {
				t.Fatal(err)
			}
			cancelled = append([]string{id}, cancelled...)
		}
	}
	list := func(p broker.WorkflowListParams) []string {
		var out []string
		for range 100 {
			page, err := b.ListWorkflows(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range page.Workflows {
				out = append(out, w.ID)
			}
			if page.Next == "" {
				return out
			}
			p.Cursor = page.Next
		}
		t.Fatal("more than 100 pages")
		return nil
	}
	for _, limit := range []int{1, 2, 7, 100} {
		if got := list(broker.WorkflowListParams{State: broker.WorkflowCancelled, Limit: limit}); strings.Join(got, " ") != strings.Join(cancelled, " ") {
			t.Fatalf("cancelled, limit %d: %v, want %v", limit, got, cancelled)
		}
		if got := list(broker.WorkflowListParams{Limit: limit}); strings.Join(got, " ") != strings.Join(all, " ") {
			t.Fatalf("all, limit %d: %v, want %v", limit, got, all)
		}
	}
}
