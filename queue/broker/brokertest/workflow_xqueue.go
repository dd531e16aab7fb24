package brokertest

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Workflows whose steps are in several queues. A broker may carry a step
// to another queue, and a step's end back to its workflow, a moment after
// the call that started or ended it (the Redis broker does when the
// queues are in different slots), so these cases wait for what follows a
// step instead of expecting it at once; what must never happen (a body
// early or twice, a step of a stopped workflow running) they check once
// the workflow has recorded what it would follow from.

// xWait bounds every wait of these cases.
const xWait = 10 * time.Second

// fetchWait fetches from queue until n tasks came (or the case fails).
func (s *suite) fetchWait(n int, queue string) map[string]*broker.Task {
	s.t.Helper()
	out := map[string]*broker.Task{}
	deadline := time.Now().Add(xWait)
	for len(out) < n {
		for _, t := range s.fetch(n-len(out), queue) {
			out[t.ID] = t
		}
		if len(out) >= n {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("fetched %d tasks of %s in %v, want %d", len(out), queue, xWait, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return out
}

// waitStep waits until step i of workflow id is in state st; it returns
// the workflow.
func (s *suite) waitStep(id string, i int, st broker.StepState) *broker.Workflow {
	s.t.Helper()
	deadline := time.Now().Add(xWait)
	for {
		w, err := s.b.GetWorkflow(s.ctx, id)
		if err != nil {
			s.t.Fatal(err)
		}
		if w.Steps[i].State == st {
			return w
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("workflow %s step %d is %s after %v, want %s (%+v)", id, i, w.Steps[i].State, xWait, st, w.Steps[i])
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// none checks that queues have nothing to fetch.
func (s *suite) none(queues ...string) {
	s.t.Helper()
	if ts := s.fetch(10, queues...); len(ts) != 0 {
		s.t.Fatalf("fetched %v from %v, want nothing", ids(ts), queues)
	}
}

// testWorkflowCrossQueueChain: a chain whose two steps are in two queues
// (chain(download.s(url).set(queue="io"), resize.s().set(queue="cpu"))).
func testWorkflowCrossQueueChain(s *suite) {
	b, ctx := s.b, s.ctx
	w := &broker.Workflow{ID: "xc", Steps: []broker.WorkflowStep{
		{Task: stepTask("xc.0", "download", "xio", `"url"`, "json")},
		{Task: stepTask("xc.1", "resize", "xcpu", `{"args":[],"kwargs":{"size":2}}`, "args"), Input: in(0)},
	}, Output: leaf(1)}
	if err := b.CreateWorkflow(ctx, w); err != nil {
		s.t.Fatal(err)
	}
	s.none("xcpu")
	first := s.fetchWait(1, "xio")["xc.0"]
	if first == nil || first.Workflow != "xc" || first.Step != 0 || first.Queue != "xio" {
		s.t.Fatalf("first step = %+v", first)
	}
	if err := b.Complete(ctx, broker.Ack{LeaseRef: first.Ref(), Result: []byte(`{"path": "/tmp/x"}`)}); err != nil {
		s.t.Fatal(err)
	}
	second := s.fetchWait(1, "xcpu")["xc.1"]
	if second == nil || second.Workflow != "xc" || second.Step != 1 || second.Queue != "xcpu" {
		s.t.Fatalf("second step = %+v", second)
	}
	cur, err := b.GetWorkflow(ctx, "xc")
	if err != nil {
		s.t.Fatal(err)
	}
	want, enc, err := broker.StepPayload(&w.Steps[1].Task, broker.InputValue(*w.Steps[1].Input, false, brokerResult(cur)))
	if err != nil || string(second.Payload) != string(want) || second.Encoding != enc {
		s.t.Fatalf("second step payload %q %q, want %q %q (%v)", second.Payload, second.Encoding, want, enc, err)
	}
	if st := cur.Steps[1]; st.Task.Queue != "xcpu" || st.State != broker.StepEnqueued || st.TaskState != broker.StateActive {
		s.t.Fatalf("running foreign step = %+v", st)
	}
	s.none("xio")
	// A stale lease of the foreign step cannot advance the workflow.
	stale := second.Ref()
	stale.Token++
	if err := b.Complete(ctx, broker.Ack{LeaseRef: stale, Result: []byte("1")}); err == nil {
		s.t.Fatal("Complete with a wrong token succeeded")
	}
	if err := b.Complete(ctx, broker.Ack{LeaseRef: second.Ref(), Result: []byte(`"done"`)}); err != nil {
		s.t.Fatal(err)
	}
	got, err := b.AwaitWorkflow(ctx, "xc")
	if err != nil || got.State != broker.WorkflowCompleted || string(got.Result) != `"done"` {
		s.t.Fatalf("AwaitWorkflow = %+v, %v", got, err)
	}
	if got.Steps[0].Task.Queue != "xio" || got.Steps[1].Task.Queue != "xcpu" || got.Steps[1].State != broker.StepCompleted || got.Steps[1].Attempts != 1 {
		s.t.Fatalf("finished steps = %+v", got.Steps)
	}
	s.none("xio", "xcpu")
}

// xChord is chord(members in queues[i%len], body in bodyQueue).
func xChord(id string, n int, queues []string, bodyQueue string) *broker.Workflow {
	w := chordWorkflow(id, queues[0], n, false)
	for i := range n {
		w.Steps[i].Task.Queue = queues[i%len(queues)]
	}
	w.Steps[n].Task.Queue = bodyQueue
	return w
}

// testWorkflowCrossQueueChord: members on 3 queues, the body on a 4th; the
// body starts once, with every result, after the last member only.
func testWorkflowCrossQueueChord(s *suite) {
	b, ctx := s.b, s.ctx
	qs := []string{"xh1", "xh2", "xh3"}
	if err := b.CreateWorkflow(ctx, xChord("xk", 3, qs, "xbody")); err != nil {
		s.t.Fatal(err)
	}
	var members []*broker.Task
	for i, q := range qs {
		t := s.fetchWait(1, q)["xk."+strconv.Itoa(i)]
		if t == nil || t.Workflow != "xk" || t.Step != i {
			s.t.Fatalf("member %d = %+v", i, t)
		}
		members = append(members, t)
	}
	for k, i := range []int{2, 0, 1} {
		if err := b.Complete(ctx, broker.Ack{LeaseRef: members[i].Ref(), Result: []byte(strconv.Itoa(i * 10))}); err != nil {
			s.t.Fatal(err)
		}
		s.waitStep("xk", i, broker.StepCompleted)
		if k < 2 {
			s.none("xbody")
		}
	}
	body := s.fetchWait(1, "xbody")["xk.body"]
	if body == nil || string(body.Payload) != "[0,10,20]" {
		s.t.Fatalf("body = %+v", body)
	}
	if err := b.Complete(ctx, broker.Ack{LeaseRef: body.Ref(), Result: []byte("30")}); err != nil {
		s.t.Fatal(err)
	}
	w, err := b.AwaitWorkflow(ctx, "xk")
	if err != nil || w.State != broker.WorkflowCompleted || string(w.Result) != "30" {
		s.t.Fatalf("AwaitWorkflow = %+v, %v", w, err)
	}
	s.none("xh1", "xh2", "xh3", "xbody")
}

// testWorkflowCrossQueueFailure: a step failing in another queue than the
// workflow's fails the workflow, which cancels its steps in every queue.
func testWorkflowCrossQueueFailure(s *suite) {
	b, ctx := s.b, s.ctx
	qs := []string{"xf1", "xf2", "xf3"}
	if err := b.CreateWorkflow(ctx, xChord("xf", 3, qs, "xf4")); err != nil {
		s.t.Fatal(err)
	}
	m1 := s.fetchWait(1, "xf2")["xf.1"]
	if m1 == nil {
		s.t.Fatal("member 1 not fetched")
	}
	s.waitStep("xf", 2, broker.StepEnqueued)
	// Its first attempt fails and waits to retry: the step, at home, says
	// why, read where its task runs.
	if err := b.Fail(ctx, broker.Failure{LeaseRef: m1.Ref(), Error: broker.AttemptError{Attempt: 1, Message: "first"}, RetryAt: s.clock.Now().Add(time.Second)}); err != nil {
		s.t.Fatal(err)
	}
	if w, err := b.GetWorkflow(ctx, "xf"); err != nil {
		s.t.Fatal(err)
	} else if st := w.Steps[1]; st.State != broker.StepEnqueued || st.TaskState != broker.StateRetry || st.Error != "first" {
		s.t.Fatalf("foreign step waiting to retry = %s/%s, error %q; want enqueued/retry, %q", st.State, st.TaskState, st.Error, "first")
	}
	s.clock.Advance(2 * time.Second)
	if _, err := b.Forward(ctx); err != nil {
		s.t.Fatal(err)
	}
	if m1 = s.fetchWait(1, "xf2")["xf.1"]; m1 == nil {
		s.t.Fatal("member 1 not fetched again after its retry")
	}
	if err := b.Fail(ctx, broker.Failure{LeaseRef: m1.Ref(), Error: broker.AttemptError{Message: "boom"}, Dead: true}); err != nil {
		s.t.Fatal(err)
	}
	w, err := b.AwaitWorkflow(ctx, "xf")
	if err != nil || w.State != broker.WorkflowFailed {
		s.t.Fatalf("AwaitWorkflow = %+v, %v", w, err)
	}
	if st := w.Steps[1]; st.State != broker.StepFailed || st.Error != "boom" {
		s.t.Fatalf("failed step = %+v", st)
	}
	if st := w.Steps[3]; st.State != broker.StepCancelled {
		s.t.Fatalf("body = %+v", st)
	}
	// The pending members, at home and in a third queue, end cancelled:
	// nothing of the workflow runs any more.
	s.waitStep("xf", 0, broker.StepCancelled)
	w = s.waitStep("xf", 2, broker.StepCancelled)
	if w.Steps[2].Error != w.Steps[0].Error || w.Steps[0].Error == "" {
		s.t.Fatalf("cancelled members' errors %q and %q", w.Steps[0].Error, w.Steps[2].Error)
	}
	s.wantState("xf1", "xf.0", broker.StateDead)
	s.wantState("xf3", "xf.2", broker.StateDead)
	s.none("xf1", "xf2", "xf3", "xf4")
}

// testWorkflowCrossQueueCancel: cancelling a workflow whose running step is
// in another queue flags that step; its end then counts as cancelled.
func testWorkflowCrossQueueCancel(s *suite) {
	b, ctx := s.b, s.ctx
	if err := b.CreateWorkflow(ctx, xChord("xx", 2, []string{"xx1", "xx2"}, "xx3")); err != nil {
		s.t.Fatal(err)
	}
	running := s.fetchWait(1, "xx2")["xx.1"]
	if running == nil {
		s.t.Fatal("foreign member not fetched")
	}
	if err := b.CancelWorkflow(ctx, "xx"); err != nil {
		s.t.Fatal(err)
	}
	w, err := b.GetWorkflow(ctx, "xx")
	if err != nil || w.State != broker.WorkflowCancelled || w.Error != "workflow cancelled" {
		s.t.Fatalf("cancelled workflow = %+v, %v", w, err)
	}
	if st := w.Steps[0]; st.State != broker.StepCancelled || st.Error != "workflow cancelled: workflow cancelled" {
		s.t.Fatalf("pending step = %s %q", st.State, st.Error)
	}
	if st := w.Steps[2]; st.State != broker.StepCancelled || st.Error != "cancelled: workflow cancelled" {
		s.t.Fatalf("waiting step = %s %q", st.State, st.Error)
	}
	if st := w.Steps[1]; st.State != broker.StepEnqueued || st.TaskState != broker.StateActive {
		s.t.Fatalf("running step = %s (task %s)", st.State, st.TaskState)
	}
	// The flag reaches the running task's lease.
	deadline := time.Now().Add(xWait)
	for {
		res, err := b.ExtendLeases(ctx, broker.ExtendParams{Leases: []broker.LeaseRef{running.Ref()}, Lease: lease})
		if err != nil {
			s.t.Fatal(err)
		}
		if len(res.Cancelled) == 1 {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("running foreign step not flagged for cancellation after %v", xWait)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := b.Fail(ctx, broker.Failure{LeaseRef: running.Ref(), Error: broker.AttemptError{Message: "stopped"}}); err != nil {
		s.t.Fatal(err)
	}
	s.waitStep("xx", 1, broker.StepCancelled)
	s.wantState("xx2", "xx.1", broker.StateDead)
	if w, err := b.GetWorkflow(ctx, "xx"); err != nil || w.State != broker.WorkflowCancelled {
		s.t.Fatalf("workflow after the end of its step = %+v, %v", w, err)
	}
	s.none("xx1", "xx2", "xx3")
}

// testWorkflowCrossQueueRace completes many chords whose members are on 3
// queues and bodies on a 4th, with several workers at once: every body
// runs exactly once and every workflow completes.
func testWorkflowCrossQueueRace(s *suite) {
	b, ctx := s.b, s.ctx
	const n, m, workers = 150, 5, 6
	qs := []string{"xr1", "xr2", "xr3"}
	all := append(append([]string{}, qs...), "xr4")
	for i := range n {
		if err := b.CreateWorkflow(ctx, xChord("xr"+strconv.Itoa(i), m, qs, "xr4")); err != nil {
			s.t.Fatal(err)
		}
	}
	var bodies, total atomic.Int64
	seen := sync.Map{}
	var wg sync.WaitGroup
	deadline := time.Now().Add(25 * time.Second)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for total.Load() < n*(m+1) && time.Now().Before(deadline) {
				ts, err := b.Fetch(ctx, broker.FetchParams{Queues: all, Max: 7, Lease: lease})
				if err != nil {
					s.t.Error(err)
					return
				}
				if len(ts) == 0 {
					time.Sleep(time.Millisecond)
				}
				for _, t := range ts {
					if t.Kind == "body" {
						bodies.Add(1)
						if _, dup := seen.LoadOrStore(t.ID, true); dup {
							s.t.Errorf("body %s ran twice", t.ID)
						}
						if t.Queue != "xr4" {
							s.t.Errorf("body %s fetched from %s", t.ID, t.Queue)
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
	if bodies.Load() != n || total.Load() != n*(m+1) {
		s.t.Fatalf("%d bodies and %d tasks ran, want %d and %d", bodies.Load(), total.Load(), n, n*(m+1))
	}
	for i := range n {
		w, err := b.AwaitWorkflow(ctx, "xr"+strconv.Itoa(i))
		if err != nil || w.State != broker.WorkflowCompleted || string(w.Result) != "1" {
			s.t.Fatalf("workflow xr%d = %v, %v", i, w.State, err)
		}
	}
	s.none(all...)
}
