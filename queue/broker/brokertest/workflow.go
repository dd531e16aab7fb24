package brokertest

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"

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
