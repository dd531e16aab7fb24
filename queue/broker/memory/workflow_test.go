package memory

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

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
