package brokertest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// chordWorkflow is chord(header of n members, body) in queue q: members
// take no input; the body takes the list of their results.
func chordWorkflow(id, q string, n int, tolerant bool) *broker.Workflow {
	w := &broker.Workflow{ID: id}
	list := broker.Input{Step: -1}
	for i := range n {
		w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: id + "." + strconv.Itoa(i), Kind: "member", Queue: q, Payload: []byte("null"), Encoding: "json", MaxRetries: 0}})
		list.List = append(list.List, broker.Input{Step: i})
	}
	w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: id + ".body", Kind: "body", Queue: q, Encoding: "json"}, Input: &list, Tolerant: tolerant})
	w.Output = broker.Input{Step: n}
	return w
}

func testWorkflowChord(s *suite) {
	b, ctx := s.b, s.ctx
	if err := b.CreateWorkflow(ctx, chordWorkflow("wf1", "q", 3, false)); err != nil {
		s.t.Fatal(err)
	}
	ts := s.fetch(10, "q")
	if len(ts) != 3 {
		s.t.Fatalf("fetched %v, want the 3 members only", ids(ts))
	}
	for i, t := range ts {
		if t.Workflow != "wf1" {
			s.t.Fatalf("member task %s has Workflow %q", t.ID, t.Workflow)
		}
		if err := b.Complete(ctx, broker.Ack{LeaseRef: t.Ref(), Result: []byte(strconv.Itoa(t.Step * 10))}); err != nil {
			s.t.Fatal(err)
		}
		if i < 2 {
			if more := s.fetch(10, "q"); len(more) != 0 {
				s.t.Fatalf("body enqueued before every member completed: %v", ids(more))
			}
		}
	}
	body := s.fetch(10, "q")
	if len(body) != 1 || string(body[0].Payload) != "[0,10,20]" {
		s.t.Fatalf("body = %v", body)
	}
	// A stale lease of the body cannot advance the workflow.
	stale := body[0].Ref()
	stale.Token++
	if err := b.Complete(ctx, broker.Ack{LeaseRef: stale, Result: []byte("1")}); err == nil {
		s.t.Fatal("Complete with a wrong token succeeded")
	}
	if err := b.Complete(ctx, broker.Ack{LeaseRef: body[0].Ref(), Result: []byte("30")}); err != nil {
		s.t.Fatal(err)
	}
	w, err := b.AwaitWorkflow(ctx, "wf1")
	if err != nil || w.State != broker.WorkflowCompleted || string(w.Result) != "30" {
		s.t.Fatalf("AwaitWorkflow = %+v, %v", w, err)
	}
	if err := b.CreateWorkflow(ctx, chordWorkflow("wf1", "q", 1, false)); err == nil {
		s.t.Fatal("second CreateWorkflow with the same ID succeeded")
	}
}

func testWorkflowFailure(s *suite) {
	b, ctx := s.b, s.ctx
	for _, tolerant := range []bool{false, true} {
		id := fmt.Sprintf("wf-%v", tolerant)
		if err := b.CreateWorkflow(ctx, chordWorkflow(id, "q", 2, tolerant)); err != nil {
			s.t.Fatal(err)
		}
		ts := s.fetchN(2, "q")
		if err := b.Fail(ctx, broker.Failure{LeaseRef: ts[id+".0"].Ref(), Error: broker.AttemptError{Message: "boom"}, Dead: true}); err != nil {
			s.t.Fatal(err)
		}
		if err := b.Complete(ctx, broker.Ack{LeaseRef: ts[id+".1"].Ref(), Result: []byte(`"x"`)}); err != nil && !tolerant {
			// the member was cancelled with its workflow: a completion
			// may still land or be refused, either is fine.
			_ = err
		}
		if !tolerant {
			w, err := b.AwaitWorkflow(ctx, id)
			if err != nil || w.State != broker.WorkflowFailed || w.Steps[2].State != broker.StepCancelled {
				s.t.Fatalf("failed chord = %+v, %v", w, err)
			}
			if more := s.fetch(10, "q"); len(more) != 0 {
				s.t.Fatalf("body of a failed chord ran: %v", ids(more))
			}
			continue
		}
		body := s.fetch(10, "q")
		want := `[{"error":{"message":"boom","type":"StepFailed"},"ok":false},{"ok":true,"result":"x"}]`
		if len(body) != 1 || string(body[0].Payload) != want {
			s.t.Fatalf("tolerant body = %v, want payload %s", body, want)
		}
		if err := b.Complete(ctx, broker.Ack{LeaseRef: body[0].Ref()}); err != nil {
			s.t.Fatal(err)
		}
		if w, err := b.AwaitWorkflow(ctx, id); err != nil || w.State != broker.WorkflowCompleted {
			s.t.Fatalf("tolerant chord = %+v, %v", w, err)
		}
	}
	// Cancelling a workflow cancels its steps.
	if err := b.CreateWorkflow(ctx, chordWorkflow("wfc", "c", 2, false)); err != nil {
		s.t.Fatal(err)
	}
	if err := b.CancelWorkflow(ctx, "wfc"); err != nil {
		s.t.Fatal(err)
	}
	if w, err := b.GetWorkflow(ctx, "wfc"); err != nil || w.State != broker.WorkflowCancelled {
		s.t.Fatalf("cancelled workflow = %+v, %v", w, err)
	}
	if ts := s.fetch(10, "c"); len(ts) != 0 {
		s.t.Fatalf("steps of a cancelled workflow fetched: %v", ids(ts))
	}
}

// testWorkflowGroupRace completes 1,000 chords of 10 members with several
// workers at once: every body runs exactly once and every workflow ends.
func testWorkflowGroupRace(s *suite) {
	b, ctx := s.b, s.ctx
	const n, m, workers = 1000, 10, 8
	for i := range n {
		if err := b.CreateWorkflow(ctx, chordWorkflow("r"+strconv.Itoa(i), "race", m, false)); err != nil {
			s.t.Fatal(err)
		}
	}
	var bodies, total atomic.Int64
	seen := sync.Map{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for total.Load() < n*(m+1) {
				ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"race"}, Max: 7, Lease: lease})
				if err != nil {
					s.t.Error(err)
					return
				}
				for _, t := range ts {
					if t.Kind == "body" {
						bodies.Add(1)
						if _, dup := seen.LoadOrStore(t.ID, true); dup {
							s.t.Errorf("body %s ran twice", t.ID)
						}
					}
					if err := b.Complete(ctx, broker.Ack{LeaseRef: t.Ref(), Result: []byte("1")}); err != nil {
						s.t.Error(err)
					}
					total.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bodies.Load() != n {
		s.t.Fatalf("%d bodies ran, want %d", bodies.Load(), n)
	}
	for i := range n {
		w, err := b.GetWorkflow(ctx, "r"+strconv.Itoa(i))
		if err != nil || w.State != broker.WorkflowCompleted {
			s.t.Fatalf("workflow r%d = %v, %v", i, w.State, err)
		}
	}
}

// stepTask is a step's task template in queue q.
func stepTask(id, kind, q string, payload string, enc string) broker.Task {
	t := broker.Task{ID: id, Kind: kind, Queue: q, Encoding: enc, MaxRetries: 2}
	if payload != "" {
		t.Payload = []byte(payload)
	}
	return t
}

func in(step int) *broker.Input { return &broker.Input{Step: step} }

func list(xs ...broker.Input) broker.Input { return broker.Input{Step: -1, List: xs} }

func leaf(i int) broker.Input { return broker.Input{Step: i} }

// brokerResult reads step results as the broker recorded them.
func brokerResult(w *broker.Workflow) func(int) broker.StepResult {
	return func(i int) broker.StepResult {
		st := &w.Steps[i]
		return broker.StepResult{OK: st.State == broker.StepCompleted, Result: st.Result, Error: st.Error}
	}
}

// driveWorkflow runs w's steps in queue q as they come, finishing step i
// with outcome[i] ("!msg" fails it dead with msg, anything else completes
// it with that result); every payload must be what broker.InputValue and
// broker.StepPayload make of the step results the broker recorded, and the
// workflow's result what InputValue makes of its output. It returns the
// finished workflow.
func (s *suite) driveWorkflow(w *broker.Workflow, q string, outcome map[int]string) *broker.Workflow {
	s.t.Helper()
	b, ctx := s.b, s.ctx
	ran := map[int]bool{}
	for {
		ts := s.fetch(100, q)
		if len(ts) == 0 {
			break
		}
		for _, t := range ts {
			if t.Workflow != w.ID || ran[t.Step] {
				s.t.Fatalf("fetched %s (workflow %q step %d): not a step of %s still to run", t.ID, t.Workflow, t.Step, w.ID)
			}
			ran[t.Step] = true
			cur, err := b.GetWorkflow(ctx, w.ID)
			if err != nil {
				s.t.Fatal(err)
			}
			st := w.Steps[t.Step]
			want, enc := st.Task.Payload, st.Task.Encoding
			if st.Input != nil && !st.Immutable {
				want, enc, err = broker.StepPayload(&st.Task, broker.InputValue(*st.Input, st.Tolerant, brokerResult(cur)))
				if err != nil {
					s.t.Fatal(err)
				}
			}
			if string(t.Payload) != string(want) || t.Encoding != enc {
				s.t.Fatalf("step %d (%s) payload %q encoding %q, want %q %q", t.Step, t.Kind, t.Payload, t.Encoding, want, enc)
			}
			if o := outcome[t.Step]; len(o) > 0 && o[0] == '!' {
				err = b.Fail(ctx, broker.Failure{LeaseRef: t.Ref(), Error: broker.AttemptError{Message: o[1:]}, Dead: true})
			} else {
				err = b.Complete(ctx, broker.Ack{LeaseRef: t.Ref(), Result: []byte(o)})
			}
			if err != nil {
				s.t.Fatal(err)
			}
		}
	}
	got, err := b.AwaitWorkflow(ctx, w.ID)
	if err != nil {
		s.t.Fatal(err)
	}
	if got.State == broker.WorkflowCompleted {
		if want := broker.InputValue(w.Output, false, brokerResult(got)); string(got.Result) != string(want) {
			s.t.Fatalf("workflow result %q, want %q", got.Result, want)
		}
	}
	return got
}

// testWorkflowResultPassing: results of every form (JSON with spaces and
// HTML characters, not JSON, invalid UTF-8, empty) reach json and args
// steps, through nested lists, exactly as broker.InputValue builds them.
func testWorkflowResultPassing(s *suite) {
	const q = "rp"
	w := &broker.Workflow{ID: "rp1", Steps: []broker.WorkflowStep{
		{Task: stepTask("rp1.0", "a", q, "null", "json")},
		{Task: stepTask("rp1.1", "b", q, "", "json"), Input: in(0)},
		{Task: stepTask("rp1.2", "c", q, `{"args": [7, "z<"], "kwargs": {"k": 1, "a": "&"}}`, "args"), Input: &broker.Input{Step: -1, List: []broker.Input{leaf(0), leaf(1)}}},
		{Task: stepTask("rp1.3", "d", q, "", ""), Input: &broker.Input{Step: -1, List: []broker.Input{list(leaf(0), leaf(2)), leaf(1), list()}}},
		{Task: stepTask("rp1.4", "e", q, `{"args":[]}`, "args"), Input: in(0)},
		{Task: stepTask("rp1.5", "f", q, "", "raw"), Input: in(2)},
	}, Output: list(leaf(3), leaf(0), leaf(5), leaf(4))}
	if err := s.b.CreateWorkflow(s.ctx, w); err != nil {
		s.t.Fatal(err)
	}
	got := s.driveWorkflow(w, q, map[int]string{
		0: "  {\"x\": \"<b>&\u2028\",  \"y\":[1, 2]}\n",
		1: "not json \xff \"q\" <",
		2: "",
		3: `[1,2]`,
		4: "\"\xe2\x80\xa9\"",
		5: "3.5",
	})
	if got.State != broker.WorkflowCompleted {
		s.t.Fatalf("workflow = %s %q", got.State, got.Error)
	}
	for i, st := range got.Steps {
		if st.State != broker.StepCompleted || st.Task.ID != w.Steps[i].Task.ID || st.Task.Kind != w.Steps[i].Task.Kind {
			s.t.Fatalf("step %d = %+v", i, st)
		}
	}
	// A step with an empty input list starts at once, with input [].
	e := &broker.Workflow{ID: "rp2", Steps: []broker.WorkflowStep{
		{Task: stepTask("rp2.0", "a", q, "", "json"), Input: &broker.Input{Step: -1}},
	}, Output: leaf(0)}
	if err := s.b.CreateWorkflow(s.ctx, e); err != nil {
		s.t.Fatal(err)
	}
	if got := s.driveWorkflow(e, q, map[int]string{0: "1"}); got.State != broker.WorkflowCompleted || string(got.Result) != "1" {
		s.t.Fatalf("empty-input workflow = %s %q", got.State, got.Result)
	}
}

// testWorkflowNested: a chord whose header holds a chain and a group, a
// body, then a group after it; the workflow's output is a group.
func testWorkflowNested(s *suite) {
	const q = "nest"
	w := &broker.Workflow{ID: "n1", Steps: []broker.WorkflowStep{
		{Task: stepTask("n1.0", "chain.a", q, `{"args":[1]}`, "args")},
		{Task: stepTask("n1.1", "chain.b", q, `{"args":[]}`, "args"), Input: in(0)},
		{Task: stepTask("n1.2", "group.c", q, "", "json")},
		{Task: stepTask("n1.3", "group.d", q, "", "json")},
		{Task: stepTask("n1.4", "body", q, "", "json"), Input: &broker.Input{Step: -1, List: []broker.Input{leaf(1), list(leaf(2), leaf(3))}}},
		{Task: stepTask("n1.5", "after.x", q, `{"args":[0],"kwargs":{"b":2}}`, "args"), Input: in(4)},
		{Task: stepTask("n1.6", "after.y", q, "", "json"), Input: in(4)},
	}, Output: list(leaf(5), leaf(6))}
	if err := s.b.CreateWorkflow(s.ctx, w); err != nil {
		s.t.Fatal(err)
	}
	got := s.driveWorkflow(w, q, map[int]string{0: "10", 1: "11", 2: `"c"`, 3: `{"d": true}`, 4: "[4]", 5: "5", 6: "6"})
	if got.State != broker.WorkflowCompleted || string(got.Result) != "[5,6]" {
		s.t.Fatalf("nested workflow = %s %q %q", got.State, got.Result, got.Error)
	}
}

// testWorkflowDeadStep: a dead step cancels what follows it, each with
// the reason; a tolerant body gets the errors beside the results (a kind
// and a message with characters JSON escapes); the workflow fails with the
// reason of the failure that reached a step nothing depends on.
func testWorkflowDeadStep(s *suite) {
	b, ctx := s.b, s.ctx
	const q = "dead"
	w := &broker.Workflow{ID: "d1", Steps: []broker.WorkflowStep{
		{Task: stepTask("d1.0", "a", q, "", "json")},
		{Task: stepTask("d1.1", "b", q, "", "json"), Input: in(0)},
		{Task: stepTask("d1.2", "c", q, "", "json"), Input: in(1)},
	}, Output: leaf(2)}
	if err := b.CreateWorkflow(ctx, w); err != nil {
		s.t.Fatal(err)
	}
	got := s.driveWorkflow(w, q, map[int]string{0: "!boom"})
	r0 := "step 0 (a) failed: boom"
	r1 := "step 1 (b) cancelled: cancelled: " + r0
	r2 := "step 2 (c) cancelled: cancelled: " + r1
	if got.State != broker.WorkflowFailed || got.Error != r2 {
		s.t.Fatalf("workflow = %s %q, want failed %q", got.State, got.Error, r2)
	}
	for i, want := range []struct {
		st  broker.StepState
		err string
	}{{broker.StepFailed, "boom"}, {broker.StepCancelled, "cancelled: " + r0}, {broker.StepCancelled, "cancelled: " + r1}} {
		if st := got.Steps[i]; st.State != want.st || st.Error != want.err {
			s.t.Fatalf("step %d = %s %q, want %s %q", i, st.State, st.Error, want.st, want.err)
		}
	}

	kind := "k<&>\u2028\xff\"\\\t"
	t := &broker.Workflow{ID: "d2", Steps: []broker.WorkflowStep{
		{Task: stepTask("d2.0", kind, q, "", "json")},
		{Task: stepTask("d2.1", "m1", q, "", "json")},
		{Task: stepTask("d2.2", "after0", q, "", "json"), Input: in(0)},
		{Task: stepTask("d2.3", "after1", q, "", "json"), Input: in(1)},
		{Task: stepTask("d2.4", "body", q, `{"args":[]}`, "args"), Tolerant: true,
			Input: &broker.Input{Step: -1, List: []broker.Input{list(leaf(2), leaf(3)), leaf(1), leaf(0)}}},
	}, Output: leaf(4)}
	if err := b.CreateWorkflow(ctx, t); err != nil {
		s.t.Fatal(err)
	}
	got = s.driveWorkflow(t, q, map[int]string{0: "!bad <\"é\"> \u2028 \x01", 1: "[1, 2]", 3: "", 4: `"ok"`})
	if got.State != broker.WorkflowCompleted || string(got.Result) != `"ok"` {
		s.t.Fatalf("tolerant workflow = %s %q %q", got.State, got.Result, got.Error)
	}
	if st := got.Steps[2]; st.State != broker.StepCancelled || st.Error != "cancelled: step 0 ("+kind+") failed: bad <\"é\"> \u2028 \x01" {
		s.t.Fatalf("step 2 = %s %q", st.State, st.Error)
	}
}

// testWorkflowCancel: cancelling a workflow cancels its pending steps at
// once and flags its running ones, whose end then counts as cancelled.
func testWorkflowCancel(s *suite) {
	b, ctx := s.b, s.ctx
	const q = "wcancel"
	if err := b.CreateWorkflow(ctx, chordWorkflow("wc", q, 2, false)); err != nil {
		s.t.Fatal(err)
	}
	running := s.fetchOne(q)
	if err := b.CancelWorkflow(ctx, "wc"); err != nil {
		s.t.Fatal(err)
	}
	if err := b.CancelWorkflow(ctx, "wc"); !errors.Is(err, broker.ErrInvalidState) {
		s.t.Fatalf("second CancelWorkflow = %v, want ErrInvalidState", err)
	}
	if err := b.CancelWorkflow(ctx, "nope"); !errors.Is(err, broker.ErrTaskNotFound) {
		s.t.Fatalf("CancelWorkflow(unknown) = %v, want ErrTaskNotFound", err)
	}
	w, err := b.GetWorkflow(ctx, "wc")
	if err != nil || w.State != broker.WorkflowCancelled || w.Error != "workflow cancelled" {
		s.t.Fatalf("cancelled workflow = %+v, %v", w, err)
	}
	other := 1 - running.Step
	if st := w.Steps[other]; st.State != broker.StepCancelled || st.Error != "workflow cancelled: workflow cancelled" {
		s.t.Fatalf("pending step = %s %q", st.State, st.Error)
	}
	if st := w.Steps[2]; st.State != broker.StepCancelled || st.Error != "cancelled: workflow cancelled" {
		s.t.Fatalf("waiting step = %s %q", st.State, st.Error)
	}
	if st := w.Steps[running.Step]; st.State != broker.StepEnqueued || st.TaskState != broker.StateActive {
		s.t.Fatalf("running step = %s (task %s)", st.State, st.TaskState)
	}
	s.wantState(q, w.Steps[other].Task.ID, broker.StateDead)
	res, err := b.ExtendLeases(ctx, broker.ExtendParams{Leases: []broker.LeaseRef{running.Ref()}, Lease: lease})
	if err != nil || len(res.Cancelled) != 1 {
		s.t.Fatalf("ExtendLeases = %+v, %v; want the running step flagged", res, err)
	}
	if err := b.Fail(ctx, broker.Failure{LeaseRef: running.Ref(), Error: broker.AttemptError{Message: "stopped"}}); err != nil {
		s.t.Fatal(err)
	}
	w, err = b.GetWorkflow(ctx, "wc")
	if err != nil || w.Steps[running.Step].State != broker.StepCancelled {
		s.t.Fatalf("running step after its end = %+v, %v", w.Steps[running.Step], err)
	}
	if ts := s.fetch(10, q); len(ts) != 0 {
		s.t.Fatalf("fetched %v after the cancel", ids(ts))
	}
}

// testWorkflowStaleLease: a member whose lease expired and that runs
// again advances the workflow once, from its new lease only.
func testWorkflowStaleLease(s *suite) {
	b, ctx := s.b, s.ctx
	const q = "stale"
	w := chordWorkflow("st", q, 2, false)
	for i := range w.Steps {
		w.Steps[i].Task.MaxRetries = 3
	}
	if err := b.CreateWorkflow(ctx, w); err != nil {
		s.t.Fatal(err)
	}
	old := s.fetchN(2, q)
	s.clock.Advance(lease + time.Second)
	if n, err := b.Recover(ctx); err != nil || n != 2 {
		s.t.Fatalf("Recover = %d, %v", n, err)
	}
	fresh := s.fetchN(2, q)
	for id, t := range old {
		if err := b.Complete(ctx, broker.Ack{LeaseRef: t.Ref(), Result: []byte("0")}); !errors.Is(err, broker.ErrLeaseLost) {
			s.t.Fatalf("Complete with the lost lease of %s = %v, want ErrLeaseLost", id, err)
		}
	}
	if ts := s.fetch(10, q); len(ts) != 0 {
		s.t.Fatalf("stale completions advanced the workflow: fetched %v", ids(ts))
	}
	for _, t := range fresh {
		if err := b.Complete(ctx, broker.Ack{LeaseRef: t.Ref(), Result: []byte(strconv.Itoa(t.Step + 1))}); err != nil {
			s.t.Fatal(err)
		}
		if err := b.Complete(ctx, broker.Ack{LeaseRef: t.Ref(), Result: []byte("9")}); err == nil {
			s.t.Fatal("a second Complete of the same lease succeeded")
		}
	}
	body := s.fetch(10, q)
	if len(body) != 1 || string(body[0].Payload) != "[1,2]" {
		s.t.Fatalf("body = %v", body)
	}
	if got, err := b.GetWorkflow(ctx, "st"); err != nil || got.Steps[0].Attempts != 2 || got.Steps[1].Attempts != 2 {
		s.t.Fatalf("members after a lost lease: %+v, %v; want 2 attempts each", got, err)
	}
}

// testWorkflowDeleteStep: deleting a waiting step's task fails its step;
// a workflow that cannot progress is failed, never stuck.
func testWorkflowDeleteStep(s *suite) {
	b, ctx := s.b, s.ctx
	const q = "wdel"
	w := &broker.Workflow{ID: "del", Steps: []broker.WorkflowStep{
		{Task: stepTask("del.0", "a", q, "", "json")},
		{Task: stepTask("del.1", "b", q, "", "json"), Input: in(0)},
	}, Output: leaf(1)}
	if err := b.CreateWorkflow(ctx, w); err != nil {
		s.t.Fatal(err)
	}
	if err := b.DeleteTask(ctx, q, "del.0"); err != nil {
		s.t.Fatal(err)
	}
	got, err := b.AwaitWorkflow(ctx, "del")
	want := "step 1 (b) cancelled: cancelled: step 0 (a) failed: task deleted"
	if err != nil || got.State != broker.WorkflowFailed || got.Error != want {
		s.t.Fatalf("workflow = %+v, %v; want failed %q", got, err, want)
	}
}

// testWorkflowLargeGroup: a chord of 10,000 members, completed in
// batches; the body gets all 10,000 results in order.
func testWorkflowLargeGroup(s *suite) {
	b, ctx := s.b, s.ctx
	const q, n = "large", 10_000
	if err := b.CreateWorkflow(ctx, chordWorkflow("big", q, n, false)); err != nil {
		s.t.Fatal(err)
	}
	done := 0
	for done < n {
		ts := s.fetch(1000, q)
		if len(ts) == 0 {
			s.t.Fatalf("only %d members fetched", done)
		}
		acks := make([]broker.Ack, len(ts))
		for i, t := range ts {
			if t.Kind != "member" {
				s.t.Fatalf("fetched %s before every member completed", t.ID)
			}
			acks[i] = broker.Ack{LeaseRef: t.Ref(), Result: []byte(strconv.Itoa(t.Step))}
		}
		if err := b.Complete(ctx, acks...); err != nil {
			s.t.Fatal(err)
		}
		done += len(ts)
	}
	body := s.fetch(10, q)
	if len(body) != 1 {
		s.t.Fatalf("body fetched %d times", len(body))
	}
	var got []int
	if err := json.Unmarshal(body[0].Payload, &got); err != nil || len(got) != n || got[0] != 0 || got[n-1] != n-1 {
		s.t.Fatalf("body payload of %d bytes: %d results, %v", len(body[0].Payload), len(got), err)
	}
	if err := b.Complete(ctx, broker.Ack{LeaseRef: body[0].Ref(), Result: []byte("1")}); err != nil {
		s.t.Fatal(err)
	}
	if w, err := b.AwaitWorkflow(ctx, "big"); err != nil || w.State != broker.WorkflowCompleted {
		s.t.Fatalf("large chord = %v, %v", w.State, err)
	}
}

// testWorkflowRetention: a finished workflow is kept for its Retention,
// then Cleanup deletes it.
func testWorkflowRetention(s *suite) {
	b, ctx := s.b, s.ctx
	const q = "wret"
	w := chordWorkflow("ret", q, 1, false)
	w.Retention = time.Minute
	if err := b.CreateWorkflow(ctx, w); err != nil {
		s.t.Fatal(err)
	}
	if got := s.driveWorkflow(w, q, nil); got.State != broker.WorkflowCompleted {
		s.t.Fatalf("workflow = %s", got.State)
	}
	if _, err := b.Cleanup(ctx); err != nil {
		s.t.Fatal(err)
	}
	if _, err := b.GetWorkflow(ctx, "ret"); err != nil {
		s.t.Fatalf("workflow gone before its retention: %v", err)
	}
	s.clock.Advance(2 * time.Minute)
	if _, err := b.Cleanup(ctx); err != nil {
		s.t.Fatal(err)
	}
	if _, err := b.GetWorkflow(ctx, "ret"); !errors.Is(err, broker.ErrTaskNotFound) {
		s.t.Fatalf("GetWorkflow after retention and Cleanup = %v, want ErrTaskNotFound", err)
	}
	if _, err := b.GetWorkflowOutcome(ctx, "ret"); !errors.Is(err, broker.ErrTaskNotFound) {
		s.t.Fatalf("GetWorkflowOutcome after retention and Cleanup = %v, want ErrTaskNotFound", err)
	}
	// Its ID is free again.
	// In another queue (on Redis another shard, while the process may
	// still remember the first one's): it is found there.
	if err := b.CreateWorkflow(ctx, chordWorkflow("ret", q+"2", 1, false)); err != nil {
		s.t.Fatalf("CreateWorkflow with the ID of a cleaned-up workflow: %v", err)
	}
	if got, err := b.GetWorkflow(ctx, "ret"); err != nil || got.Steps[0].Task.Queue != q+"2" {
		s.t.Fatalf("GetWorkflow of the new workflow = %+v, %v; want its step in queue %s", got, err, q+"2")
	}
	if got, err := b.GetWorkflowOutcome(ctx, "ret"); err != nil || got.State != broker.WorkflowRunning {
		s.t.Fatalf("GetWorkflowOutcome of the new workflow = %+v, %v; want it running", got, err)
	}
	if got := s.driveWorkflow(chordWorkflow("ret", q+"2", 1, false), q+"2", nil); got.State != broker.WorkflowCompleted {
		s.t.Fatalf("new workflow = %s", got.State)
	}
	if got, err := b.AwaitWorkflowOutcome(ctx, "ret"); err != nil || got.State != broker.WorkflowCompleted {
		s.t.Fatalf("AwaitWorkflowOutcome of the new workflow = %+v, %v; want it completed", got, err)
	}
}

// testWorkflowFailBatch: in one Fail call, a dead step starts a tolerant
// follower and the next dead step fails the workflow, which cancels that
// follower at once (its task dead, never fetched).
func testWorkflowFailBatch(s *suite) {
	b, ctx := s.b, s.ctx
	const q = "fbatch"
	w := &broker.Workflow{ID: "fb", Steps: []broker.WorkflowStep{
		{Task: stepTask("fb.0", "a", q, "", "json")},
		{Task: stepTask("fb.1", "b", q, "", "json")},
		{Task: stepTask("fb.2", "t", q, "", "json"), Tolerant: true, Input: &broker.Input{Step: -1, List: []broker.Input{leaf(0)}}},
	}, Output: list(leaf(2), leaf(1))}
	if err := b.CreateWorkflow(ctx, w); err != nil {
		s.t.Fatal(err)
	}
	ts := s.fetchN(2, q)
	if err := b.Fail(ctx,
		broker.Failure{LeaseRef: ts["fb.0"].Ref(), Error: broker.AttemptError{Message: "boom0"}, Dead: true},
		broker.Failure{LeaseRef: ts["fb.1"].Ref(), Error: broker.AttemptError{Message: "boom1"}, Dead: true},
	); err != nil {
		s.t.Fatal(err)
	}
	got, err := b.AwaitWorkflow(ctx, "fb")
	reason := "step 1 (b) failed: boom1"
	if err != nil || got.State != broker.WorkflowFailed || got.Error != reason {
		s.t.Fatalf("workflow = %+v, %v; want failed %q", got, err, reason)
	}
	if st := got.Steps[2]; st.State != broker.StepCancelled || st.Error != "workflow failed: "+reason {
		s.t.Fatalf("tolerant step = %s %q", st.State, st.Error)
	}
	s.wantState(q, "fb.2", broker.StateDead)
	if ts := s.fetch(10, q); len(ts) != 0 {
		s.t.Fatalf("fetched %v from a failed workflow", ids(ts))
	}
}

// testWorkflowImmutable: an immutable step waits for what precedes it but
// runs with its own payload (args, JSON, none), in a chain and as a chord
// body, tolerant or not; a dead input still cancels a non-tolerant one.
func testWorkflowImmutable(s *suite) {
	const q = "imm"
	w := &broker.Workflow{ID: "im1", Steps: []broker.WorkflowStep{
		{Task: stepTask("im1.0", "a", q, `{"args":[1]}`, "args")},
		{Task: stepTask("im1.1", "b", q, `{"args":[5],"kwargs":{"k":"<&>"}}`, "args"), Input: in(0), Immutable: true},
		{Task: stepTask("im1.2", "c", q, `{"own": true}`, "json"), Input: in(1), Immutable: true},
		{Task: stepTask("im1.3", "d", q, "", "json"), Input: in(2), Immutable: true},
		{Task: stepTask("im1.4", "e", q, "", "json"), Input: in(3)},
	}, Output: list(leaf(4), leaf(1))}
	if err := s.b.CreateWorkflow(s.ctx, w); err != nil {
		s.t.Fatal(err)
	}
	got := s.driveWorkflow(w, q, map[int]string{0: "2", 1: "10", 2: `"c"`, 3: "[3]", 4: "4"})
	if got.State != broker.WorkflowCompleted || string(got.Result) != "[4,10]" {
		s.t.Fatalf("immutable chain = %s %q %q", got.State, got.Result, got.Error)
	}
	for i, st := range got.Steps {
		if st.Immutable != w.Steps[i].Immutable {
			s.t.Fatalf("step %d: GetWorkflow says Immutable %v, created %v", i, st.Immutable, w.Steps[i].Immutable)
		}
	}

	// Chord bodies: plain, and tolerant after a dead member.
	for _, tolerant := range []bool{false, true} {
		id := fmt.Sprintf("imc-%v", tolerant)
		c := chordWorkflow(id, q, 3, tolerant)
		body := &c.Steps[3]
		body.Immutable = true
		body.Task.Payload, body.Task.Encoding = []byte(`{"args":["body"]}`), "args"
		if err := s.b.CreateWorkflow(s.ctx, c); err != nil {
			s.t.Fatal(err)
		}
		outcome := map[int]string{0: "1", 1: "2", 2: "3", 3: `"done"`}
		if tolerant {
			outcome[1] = "!boom"
		}
		got := s.driveWorkflow(c, q, outcome)
		if got.State != broker.WorkflowCompleted || string(got.Result) != `"done"` || got.Steps[3].State != broker.StepCompleted {
			s.t.Fatalf("immutable chord body (tolerant %v) = %s %q %q", tolerant, got.State, got.Result, got.Error)
		}
	}

	// A dead step cancels the immutable step that waits for it.
	d := &broker.Workflow{ID: "imd", Steps: []broker.WorkflowStep{
		{Task: stepTask("imd.0", "a", q, "", "json")},
		{Task: stepTask("imd.1", "b", q, `{"args":[]}`, "args"), Input: in(0), Immutable: true},
	}, Output: leaf(1)}
	if err := s.b.CreateWorkflow(s.ctx, d); err != nil {
		s.t.Fatal(err)
	}
	got = s.driveWorkflow(d, q, map[int]string{0: "!boom"})
	if got.State != broker.WorkflowFailed || got.Steps[1].State != broker.StepCancelled {
		s.t.Fatalf("immutable step after a dead one = %s, step %s", got.State, got.Steps[1].State)
	}
}

// listAll pages through ListWorkflows with p (its Cursor ignored) and
// returns the IDs in order, checking that no page repeats one.
func (s *suite) listAll(p broker.WorkflowListParams) ([]string, map[string]broker.WorkflowSummary) {
	s.t.Helper()
	var out []string
	seen := map[string]broker.WorkflowSummary{}
	p.Cursor = ""
	for range 100 {
		page, err := s.b.ListWorkflows(s.ctx, p)
		if err != nil {
			s.t.Fatalf("ListWorkflows(%+v): %v", p, err)
		}
		if p.Limit > 0 && len(page.Workflows) > p.Limit {
			s.t.Fatalf("ListWorkflows(%+v) returned %d workflows", p, len(page.Workflows))
		}
		for _, w := range page.Workflows {
			if _, dup := seen[w.ID]; dup {
				s.t.Fatalf("ListWorkflows(%+v): %s listed twice (so far %v)", p, w.ID, out)
			}
			seen[w.ID] = w
			out = append(out, w.ID)
		}
		if page.Next == "" {
			return out, seen
		}
		p.Cursor = page.Next
	}
	s.t.Fatalf("ListWorkflows(%+v): more than 100 pages", p)
	return nil, nil
}

// testWorkflowList: ListWorkflows lists newest first (ties by ID,
// descending) across queues and shards, pages by cursor without gaps or
// repeats, filters by state, summarizes each workflow as GetWorkflow shows
// it, refuses bad parameters, and forgets what Cleanup deleted.
func testWorkflowList(s *suite) {
	b, ctx := s.b, s.ctx
	if page, err := b.ListWorkflows(ctx, broker.WorkflowListParams{}); err != nil || len(page.Workflows) != 0 || page.Next != "" {
		s.t.Fatalf("ListWorkflows on an empty broker = %+v, %v", page, err)
	}
	if b.Capabilities().Has(broker.CapShards) {
		s.setShards("wlb", 3)
	}
	var all []string
	for i := range 12 {
		if i < 5 || i > 7 { // 5, 6 and 7 are created at the same instant
			s.clock.Advance(time.Second)
		}
		id := fmt.Sprintf("wl%02d", i)
		q := []string{"wla", "wlb"}[i%2]
		w := &broker.Workflow{ID: id, Retention: time.Hour, Steps: []broker.WorkflowStep{
			{Task: stepTask(id+".0", "a", q, "", "json")},
			{Task: stepTask(id+".1", "b", q, "", "json"), Input: in(0)},
		}, Output: leaf(1)}
		if err := b.CreateWorkflow(ctx, w); err != nil {
			s.t.Fatal(err)
		}
		all = append([]string{id}, all...)
	}
	first := map[string]*broker.Task{}
	for _, t := range append(s.fetch(100, "wla"), s.fetch(100, "wlb")...) {
		first[t.ID] = t
	}
	complete := func(t *broker.Task) {
		if err := b.Complete(ctx, broker.Ack{LeaseRef: t.Ref(), Result: []byte("1")}); err != nil {
			s.t.Fatal(err)
		}
	}
	complete(first["wl00.0"])
	complete(first["wl03.0"])
	if err := b.Fail(ctx, broker.Failure{LeaseRef: first["wl01.0"].Ref(), Error: broker.AttemptError{Message: "boom"}, Dead: true}); err != nil {
		s.t.Fatal(err)
	}
	if err := b.CancelWorkflow(ctx, "wl02"); err != nil {
		s.t.Fatal(err)
	}
	for _, t := range append(s.fetch(100, "wla"), s.fetch(100, "wlb")...) {
		if t.ID == "wl00.1" {
			complete(t)
		}
	}

	for _, limit := range []int{0, 1, 2, 5, 12, 100} {
		got, sums := s.listAll(broker.WorkflowListParams{Limit: limit})
		if fmt.Sprint(got) != fmt.Sprint(all) {
			s.t.Fatalf("ListWorkflows, limit %d: %v, want %v", limit, got, all)
		}
		if limit != 0 {
			continue
		}
		for _, id := range all {
			w, err := b.GetWorkflow(ctx, id)
			if err != nil {
				s.t.Fatal(err)
			}
			done := 0
			for _, st := range w.Steps {
				switch st.State {
				case broker.StepCompleted, broker.StepFailed, broker.StepCancelled:
					done++
				}
			}
			want := broker.WorkflowSummary{ID: id, Queue: w.Steps[0].Task.Queue, State: w.State, Steps: 2, Done: done,
				Error: w.Error, CreatedAt: w.CreatedAt, FinishedAt: w.FinishedAt}
			if got := sums[id]; got.ID != want.ID || got.Queue != want.Queue || got.State != want.State || got.Steps != want.Steps ||
				got.Done != want.Done || got.Error != want.Error || !got.CreatedAt.Equal(want.CreatedAt) || !got.FinishedAt.Equal(want.FinishedAt) {
				s.t.Fatalf("summary of %s = %+v, want %+v", id, got, want)
			}
		}
		if d := sums["wl00"].Done; d != 2 {
			s.t.Fatalf("completed workflow: %d steps done, want 2", d)
		}
		if d := sums["wl03"].Done; d != 1 {
			s.t.Fatalf("half-done workflow: %d steps done, want 1", d)
		}
	}
	for state, want := range map[broker.WorkflowState][]string{
		broker.WorkflowRunning:   all[:9],
		broker.WorkflowCompleted: {"wl00"},
		broker.WorkflowFailed:    {"wl01"},
		broker.WorkflowCancelled: {"wl02"},
	} {
		for _, limit := range []int{0, 1, 4} {
			if got, _ := s.listAll(broker.WorkflowListParams{State: state, Limit: limit}); fmt.Sprint(got) != fmt.Sprint(want) {
				s.t.Fatalf("ListWorkflows(%s, limit %d) = %v, want %v", state, limit, got, want)
			}
		}
	}
	for _, p := range []broker.WorkflowListParams{
		{State: "stuck"}, {Limit: -1}, {Limit: broker.MaxWorkflowListLimit + 1}, {Cursor: "not a cursor"},
	} {
		if _, err := b.ListWorkflows(ctx, p); !errors.Is(err, broker.ErrBadListParams) {
			s.t.Fatalf("ListWorkflows(%+v) = %v, want ErrBadListParams", p, err)
		}
	}
	// Cleanup forgets finished workflows past their retention; the list
	// follows.
	s.clock.Advance(2 * time.Hour)
	if _, err := b.Cleanup(ctx); err != nil {
		s.t.Fatal(err)
	}
	if got, _ := s.listAll(broker.WorkflowListParams{Limit: 4}); fmt.Sprint(got) != fmt.Sprint(all[:9]) {
		s.t.Fatalf("ListWorkflows after Cleanup = %v, want the running %v", got, all[:9])
	}
}

// wantOutcome checks that o is what GetWorkflow says of the workflow, w,
// without its steps: ID, State, Result, Error, Retention, CreatedAt and
// FinishedAt equal, Steps nil, Output zero.
func (s *suite) wantOutcome(call string, o, w *broker.Workflow) {
	s.t.Helper()
	switch {
	case o == nil:
		s.t.Fatalf("%s = nil", call)
	case o.Steps != nil || o.Output.Step != 0 || o.Output.List != nil:
		s.t.Fatalf("%s has steps %v, output %+v: want none", call, o.Steps, o.Output)
	case o.ID != w.ID || o.State != w.State || !bytes.Equal(o.Result, w.Result) || o.Error != w.Error ||
		o.Retention != w.Retention || !o.CreatedAt.Equal(w.CreatedAt) || !o.FinishedAt.Equal(w.FinishedAt):
		s.t.Fatalf("%s = %+v\nGetWorkflow has id %s state %s result %q error %q retention %v created %v finished %v",
			call, o, w.ID, w.State, w.Result, w.Error, w.Retention, w.CreatedAt, w.FinishedAt)
	}
}

// outcomes checks GetWorkflowOutcome and AwaitWorkflowOutcome of the
// finished workflow id against GetWorkflow; it returns the workflow.
func (s *suite) outcomes(id string) *broker.Workflow {
	s.t.Helper()
	b, ctx := s.b, s.ctx
	w, err := b.GetWorkflow(ctx, id)
	if err != nil {
		s.t.Fatal(err)
	}
	o, err := b.GetWorkflowOutcome(ctx, id)
	if err != nil {
		s.t.Fatalf("GetWorkflowOutcome(%s): %v", id, err)
	}
	s.wantOutcome("GetWorkflowOutcome("+id+")", o, w)
	o, err = b.AwaitWorkflowOutcome(ctx, id)
	if err != nil {
		s.t.Fatalf("AwaitWorkflowOutcome(%s): %v", id, err)
	}
	s.wantOutcome("AwaitWorkflowOutcome("+id+")", o, w)
	return w
}

// testWorkflowOutcome: GetWorkflowOutcome and AwaitWorkflowOutcome answer
// what GetWorkflow does of a workflow, without its steps, whether it
// completed, failed, was cancelled or runs (also when its last step is in
// another queue); AwaitWorkflowOutcome waits for the end and honours its
// context.
func testWorkflowOutcome(s *suite) {
	b, ctx := s.b, s.ctx
	const q = "outcome"
	for _, call := range []func(context.Context, string) (*broker.Workflow, error){b.GetWorkflowOutcome, b.AwaitWorkflowOutcome} {
		if _, err := call(ctx, "nope"); !errors.Is(err, broker.ErrTaskNotFound) {
			s.t.Fatalf("outcome of an unknown workflow = %v, want ErrTaskNotFound", err)
		}
	}

	// Running, then completed while AwaitWorkflowOutcome waits.
	w := chordWorkflow("oc", q, 2, false)
	w.Retention = time.Hour
	if err := b.CreateWorkflow(ctx, w); err != nil {
		s.t.Fatal(err)
	}
	cur, err := b.GetWorkflow(ctx, "oc")
	if err != nil {
		s.t.Fatal(err)
	}
	o, err := b.GetWorkflowOutcome(ctx, "oc")
	if err != nil {
		s.t.Fatal(err)
	}
	s.wantOutcome("GetWorkflowOutcome of a running workflow", o, cur)
	if o.State != broker.WorkflowRunning || o.Result != nil || o.Error != "" || !o.FinishedAt.IsZero() || o.Retention != time.Hour {
		s.t.Fatalf("running outcome = %+v", o)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	_, err = b.AwaitWorkflowOutcome(short, "oc")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		s.t.Fatalf("AwaitWorkflowOutcome past its deadline = %v, want DeadlineExceeded", err)
	}
	type reply struct {
		w   *broker.Workflow
		err error
	}
	wctx, wcancel := context.WithCancel(ctx)
	cancelled := make(chan reply, 1)
	go func() {
		w, err := b.AwaitWorkflowOutcome(wctx, "oc")
		cancelled <- reply{w, err}
	}()
	waited := make(chan reply, 1)
	go func() {
		w, err := b.AwaitWorkflowOutcome(ctx, "oc")
		waited <- reply{w, err}
	}()
	time.Sleep(10 * time.Millisecond)
	wcancel()
	select {
	case r := <-cancelled:
		if !errors.Is(r.err, context.Canceled) {
			s.t.Fatalf("AwaitWorkflowOutcome after its context's cancel = %+v, %v; want context.Canceled", r.w, r.err)
		}
	case <-time.After(5 * time.Second):
		s.t.Fatal("AwaitWorkflowOutcome did not return after its context's cancel")
	}
	s.driveWorkflow(w, q, map[int]string{0: "1", 1: `"two"`, 2: `[1,"two"]`})
	var r reply
	select {
	case r = <-waited:
	case <-time.After(10 * time.Second):
		s.t.Fatal("AwaitWorkflowOutcome did not return once the workflow completed")
	}
	if r.err != nil {
		s.t.Fatal(r.err)
	}
	got := s.outcomes("oc")
	s.wantOutcome("AwaitWorkflowOutcome waiting for the end", r.w, got)
	if got.State != broker.WorkflowCompleted || string(r.w.Result) != `[1,"two"]` || r.w.FinishedAt.IsZero() {
		s.t.Fatalf("completed outcome = %+v", r.w)
	}

	// Failed.
	if err := b.CreateWorkflow(ctx, chordWorkflow("of", q, 2, false)); err != nil {
		s.t.Fatal(err)
	}
	ts := s.fetchN(2, q)
	if err := b.Fail(ctx, broker.Failure{LeaseRef: ts["of.0"].Ref(), Error: broker.AttemptError{Message: "boom"}, Dead: true}); err != nil {
		s.t.Fatal(err)
	}
	if o, err := b.AwaitWorkflowOutcome(ctx, "of"); err != nil || o.State != broker.WorkflowFailed || o.Error == "" || o.Result != nil {
		s.t.Fatalf("failed outcome = %+v, %v", o, err)
	}
	s.outcomes("of")
	_ = b.Complete(ctx, broker.Ack{LeaseRef: ts["of.1"].Ref(), Result: []byte("1")}) // cancelled with its workflow: either answer

	// Cancelled.
	if err := b.CreateWorkflow(ctx, chordWorkflow("ox", q, 2, false)); err != nil {
		s.t.Fatal(err)
	}
	if err := b.CancelWorkflow(ctx, "ox"); err != nil {
		s.t.Fatal(err)
	}
	if w := s.outcomes("ox"); w.State != broker.WorkflowCancelled || w.Error != "workflow cancelled" {
		s.t.Fatalf("cancelled workflow = %+v", w)
	}

	// A chain whose last step is in another queue: the outcome is the
	// workflow's, wherever its steps ran.
	xw := &broker.Workflow{ID: "oq", Steps: []broker.WorkflowStep{
		{Task: stepTask("oq.0", "a", "oqa", `1`, "json")},
		{Task: stepTask("oq.1", "b", "oqb", `{"args":[]}`, "args"), Input: in(0)},
	}, Output: leaf(1)}
	if err := b.CreateWorkflow(ctx, xw); err != nil {
		s.t.Fatal(err)
	}
	xwaited := make(chan reply, 1)
	go func() {
		w, err := b.AwaitWorkflowOutcome(ctx, "oq")
		xwaited <- reply{w, err}
	}()
	if err := b.Complete(ctx, broker.Ack{LeaseRef: s.fetchWait(1, "oqa")["oq.0"].Ref(), Result: []byte("2")}); err != nil {
		s.t.Fatal(err)
	}
	if err := b.Complete(ctx, broker.Ack{LeaseRef: s.fetchWait(1, "oqb")["oq.1"].Ref(), Result: []byte(`{"x": 3}`)}); err != nil {
		s.t.Fatal(err)
	}
	select {
	case r = <-xwaited:
	case <-time.After(xWait):
		s.t.Fatal("AwaitWorkflowOutcome did not return once the cross-queue chain completed")
	}
	if r.err != nil || r.w.State != broker.WorkflowCompleted || string(r.w.Result) != `{"x": 3}` {
		s.t.Fatalf("cross-queue outcome = %+v, %v", r.w, r.err)
	}
	s.wantOutcome("AwaitWorkflowOutcome of a cross-queue chain", r.w, s.outcomes("oq"))
}

// testWorkflowStepRecords: a step keeps its state, attempts and result in
// its workflow after its task is deleted or its retention ends (the Redis
// broker reads a completed step's state from its task while the task is
// kept); a dead member of a tolerant chord that is retried and completes
// does not end its step a second time.
func testWorkflowStepRecords(s *suite) {
	b, ctx := s.b, s.ctx
	const q = "wrec"
	w := chordWorkflow("rec", q, 4, true)
	// The workflow's retention counts from its end, its tasks' (at least
	// as long) from theirs: a member's task can go while its workflow runs.
	w.Retention = time.Minute
	for i := range w.Steps {
		w.Steps[i].Task.MaxRetries = 1
	}
	if err := b.CreateWorkflow(ctx, w); err != nil {
		s.t.Fatal(err)
	}
	m := s.fetchN(4, q)
	// Member 0 fails once, then completes: two attempts.
	if err := b.Fail(ctx, broker.Failure{LeaseRef: ref(m["rec.0"]), Error: broker.AttemptError{Attempt: 1, Message: "again"}, RetryAt: s.clock.Now().Add(time.Second)}); err != nil {
		s.t.Fatal(err)
	}
	// While it waits to retry, its step says why (a workflow that looks
	// stuck has a reason to show).
	if got, err := b.GetWorkflow(ctx, "rec"); err != nil {
		s.t.Fatal(err)
	} else if st := got.Steps[0]; st.State != broker.StepEnqueued || st.TaskState != broker.StateRetry || st.Error != "again" || st.Attempts != 1 {
		s.t.Fatalf("step waiting to retry = %s/%s, %d attempts, error %q; want enqueued/retry, 1, %q", st.State, st.TaskState, st.Attempts, st.Error, "again")
	} else if st := got.Steps[1]; st.Error != "" {
		s.t.Fatalf("running step's error = %q", st.Error)
	}
	s.clock.Advance(2 * time.Second)
	if _, err := b.Forward(ctx); err != nil {
		s.t.Fatal(err)
	}
	again := s.fetchOne(q)
	if again.ID != "rec.0" {
		s.t.Fatalf("fetched %s, want rec.0 again", again.ID)
	}
	complete := func(t *broker.Task, res string) {
		s.t.Helper()
		if err := b.Complete(ctx, broker.Ack{LeaseRef: ref(t), Result: []byte(res)}); err != nil {
			s.t.Fatal(err)
		}
	}
	complete(again, "0")
	complete(m["rec.1"], "10")
	if err := b.Fail(ctx, broker.Failure{LeaseRef: ref(m["rec.2"]), Error: broker.AttemptError{Attempt: 1, Message: "no"}, Dead: true}); err != nil {
		s.t.Fatal(err)
	}
	type want struct {
		st       broker.StepState
		attempts int
		res, err string
	}
	check := func(when string, wants ...want) {
		s.t.Helper()
		got, err := b.GetWorkflow(ctx, "rec")
		if err != nil {
			s.t.Fatalf("%s: GetWorkflow: %v", when, err)
		}
		for i, x := range wants {
			st := got.Steps[i]
			if st.State != x.st || st.Attempts != x.attempts || string(st.Result) != x.res || st.Error != x.err {
				s.t.Fatalf("%s: step %d = %s, %d attempts, result %q, error %q; want %s, %d, %q, %q",
					when, i, st.State, st.Attempts, st.Result, st.Error, x.st, x.attempts, x.res, x.err)
			}
		}
	}
	done0, done1 := want{broker.StepCompleted, 2, "0", ""}, want{broker.StepCompleted, 1, "10", ""}
	dead2 := want{broker.StepFailed, 1, "", "no"}
	check("running", done0, done1, dead2, want{broker.StepEnqueued, 0, "", ""}, want{broker.StepWaiting, 0, "", ""})

	// The dead member, retried by hand, completes: its step stays failed
	// and the body still waits for member 3.
	if err := b.RetryTask(ctx, q, "rec.2"); err != nil {
		s.t.Fatal(err)
	}
	complete(s.fetchOne(q), "20")
	if more := s.fetch(10, q); len(more) != 0 {
		s.t.Fatalf("after a retried dead member completed, fetched %v; the body must wait for member 3", ids(more))
	}
	// Deleting a completed member's task leaves its step as it was.
	if err := b.DeleteTask(ctx, q, "rec.1"); err != nil {
		s.t.Fatal(err)
	}
	check("member 1's task deleted", done0, done1, dead2)

	complete(m["rec.3"], "30")
	body := s.fetchOne(q)
	var in []struct {
		OK     bool            `json:"ok"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(body.Payload, &in); err != nil || len(in) != 4 || !in[0].OK || string(in[0].Result) != "0" ||
		string(in[1].Result) != "10" || in[2].OK || string(in[3].Result) != "30" {
		s.t.Fatalf("body payload %s (%v)", body.Payload, err)
	}
	// The members' tasks pass their retention and go: their steps stay.
	s.clock.Advance(2 * time.Minute)
	if _, err := b.Cleanup(ctx); err != nil {
		s.t.Fatal(err)
	}
	if _, err := b.GetTask(ctx, q, "rec.0"); !errors.Is(err, broker.ErrTaskNotFound) {
		s.t.Fatalf("GetTask of a member past its retention = %v, want ErrTaskNotFound", err)
	}
	done3 := want{broker.StepCompleted, 1, "30", ""}
	check("members' tasks cleaned up", done0, done1, dead2, done3, want{broker.StepEnqueued, 0, "", ""})
	complete(body, "60")
	got, err := b.AwaitWorkflow(ctx, "rec")
	if err != nil || got.State != broker.WorkflowCompleted || string(got.Result) != "60" {
		s.t.Fatalf("workflow = %+v, %v", got, err)
	}
	check("completed", done0, done1, dead2, done3, want{broker.StepCompleted, 1, "60", ""})
}
