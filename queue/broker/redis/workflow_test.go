package redis_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue/broker"
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
	w := chord("two", "q", 2)
	w.Steps[1].Task.Queue = "other"
	if err := b.CreateWorkflow(ctx, w); !errors.Is(err, redisbroker.ErrWorkflowQueues) || !strings.Contains(err.Error(), "q, other") {
		t.Fatalf("CreateWorkflow(two queues) = %v", err)
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
