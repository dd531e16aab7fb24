package memory

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// TestWorkflowTooLarge: a workflow above MaxWorkflowSteps is refused with
// an error naming its size and the limit; nothing is stored.
func TestWorkflowTooLarge(t *testing.T) {
	b := New(Config{MaxWorkflowSteps: 3})
	w := &broker.Workflow{ID: "w"}
	for i := range 4 {
		w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: "w." + strconv.Itoa(i), Kind: "k", Queue: "q"}})
	}
	err := b.CreateWorkflow(context.Background(), w)
	if !errors.Is(err, broker.ErrWorkflowTooLarge) || !strings.Contains(err.Error(), "4 steps") || !strings.Contains(err.Error(), "limit of 3") {
		t.Fatalf("CreateWorkflow = %v", err)
	}
	if _, err := b.GetWorkflow(context.Background(), "w"); !errors.Is(err, broker.ErrTaskNotFound) {
		t.Fatalf("GetWorkflow = %v", err)
	}
	if qs, _ := b.Queues(context.Background()); len(qs) != 0 {
		t.Fatalf("queues %v after a refused workflow", qs)
	}
}

// TestWorkflowMemory measures the memory broker's heap per workflow
// member (for docs/workflows.md), as TestWorkflowMemory in the Redis
// broker does. Run with CONQ_MEASURE=1.
func TestWorkflowMemory(t *testing.T) {
	if os.Getenv("CONQ_MEASURE") == "" {
		t.Skip("a measurement: run with CONQ_MEASURE=1")
	}
	ctx := context.Background()
	heap := func() uint64 {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	const n = 10_000
	b := New(Config{})
	before := heap()
	w := &broker.Workflow{ID: "mem"}
	list := broker.Input{Step: -1}
	for i := range n {
		w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: "mem." + strconv.Itoa(i), Kind: "m", Queue: "mq", Encoding: "json", Payload: []byte(`"abcdefgh"`)}})
		list.List = append(list.List, broker.Input{Step: i})
	}
	w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: "mem.body", Kind: "body", Queue: "mq", Encoding: "json"}, Input: &list})
	w.Output = broker.Input{Step: n}
	if err := b.CreateWorkflow(ctx, w); err != nil {
		t.Fatal(err)
	}
	w = nil
	pending := heap()
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
	finished := heap()
	t.Logf("memory: %d members: %.0f bytes/member with every member pending (workflow + tasks), %.0f bytes/member once the members completed",
		n, float64(int64(pending)-int64(before))/n, float64(int64(finished)-int64(before))/n)
	runtime.KeepAlive(b)
}
