package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Workflower stores workflows: steps (tasks) that wait for other steps and
// receive their results (CapWorkflows). A step's completion and the
// enqueueing of what follows it are one atomic broker operation: the
// broker advances the workflow inside Complete, Fail, Recover, CancelTask
// and Requeue themselves, for tasks that carry Task.Workflow.
type Workflower interface {
	// CreateWorkflow validates w (ValidateWorkflow), stores it and enqueues
	// its steps without inputs, in one atomic step. ErrTaskIDConflict if a
	// workflow with w.ID exists.
	CreateWorkflow(ctx context.Context, w *Workflow) error
	// GetWorkflow returns the workflow with its steps' states;
	// ErrTaskNotFound if absent.
	GetWorkflow(ctx context.Context, id string) (*Workflow, error)
	// AwaitWorkflow waits until the workflow is completed, failed or
	// cancelled and returns it.
	AwaitWorkflow(ctx context.Context, id string) (*Workflow, error)
	// GetWorkflowOutcome returns the workflow without its steps: ID,
	// State, Result (when completed), Error, Retention, CreatedAt and
	// FinishedAt, with Steps nil and Output zero; ErrTaskNotFound if
	// absent. Its cost does not grow with the number of steps: it is what
	// to read for a workflow's state or result.
	GetWorkflowOutcome(ctx context.Context, id string) (*Workflow, error)
	// AwaitWorkflowOutcome waits as AwaitWorkflow does until the workflow
	// is completed, failed or cancelled and returns its outcome, as
	// GetWorkflowOutcome does.
	AwaitWorkflowOutcome(ctx context.Context, id string) (*Workflow, error)
	// CancelWorkflow cancels the workflow: waiting steps are marked
	// cancelled, enqueued ones are cancelled as by CancelTask. A finished
	// workflow fails with ErrInvalidState.
	CancelWorkflow(ctx context.Context, id string) error
	// ListWorkflows lists stored workflows, newest first (by CreatedAt,
	// then ID, both descending), as p says. Bad parameters (an unknown
	// state, a negative limit, a cursor this broker did not make) are
	// ErrBadListParams.
	ListWorkflows(ctx context.Context, p WorkflowListParams) (WorkflowPage, error)
}

// WorkflowListParams selects the workflows ListWorkflows returns.
type WorkflowListParams struct {
	State  WorkflowState // "" any
	Limit  int           // most per page; 0 means DefaultListLimit, at most MaxWorkflowListLimit
	Cursor string        // "" the newest; else a previous page's Next (opaque, per broker)
}

// MaxWorkflowListLimit caps WorkflowListParams.Limit: a page is a summary
// per workflow, read in one call per shard.
const MaxWorkflowListLimit = 1000

// WorkflowPage is one page of ListWorkflows. Next is the cursor of the
// page after it, "" when there is none. A page may hold fewer than Limit
// workflows while Next is set: a broker that filters by state may stop
// after scanning a bounded number of workflows, so one call never blocks
// its storage for long.
type WorkflowPage struct {
	Workflows []WorkflowSummary
	Next      string
}

// WorkflowSummary is what a list shows of a workflow: no steps, so that a
// page costs the same for a 100,000-step workflow as for a small one.
type WorkflowSummary struct {
	ID         string        `json:"id"`
	Queue      string        `json:"queue"` // its first step's
	State      WorkflowState `json:"state"`
	Steps      int           `json:"steps"`
	Done       int           `json:"done"` // steps finished (completed, failed or cancelled)
	Error      string        `json:"error,omitempty"`
	CreatedAt  time.Time     `json:"created_at"`
	FinishedAt time.Time     `json:"finished_at,omitzero"`
}

// ErrBadListParams is returned by ListWorkflows for bad parameters.
var ErrBadListParams = errors.New("bad workflow list parameters")

// CheckWorkflowList validates p and returns its limit (0 becomes
// DefaultListLimit): what both brokers check first.
func CheckWorkflowList(p WorkflowListParams) (int, error) {
	if p.State != "" && !p.State.Known() {
		return 0, fmt.Errorf("unknown workflow state %q (want running, completed, failed or cancelled): %w", p.State, ErrBadListParams)
	}
	switch {
	case p.Limit < 0 || p.Limit > MaxWorkflowListLimit:
		return 0, fmt.Errorf("limit %d: want 0..%d: %w", p.Limit, MaxWorkflowListLimit, ErrBadListParams)
	case p.Limit == 0:
		return DefaultListLimit, nil
	}
	return p.Limit, nil
}

// CapWorkflows marks Workflower. It is not in CapAll (a broker of the
// core contract need not store workflows); the memory and Redis brokers
// both list it.
const CapWorkflows Capability = CapShards << 1

// DefaultMaxWorkflowSteps is the default cap on the steps of one workflow
// (the memory and Redis brokers' Config.MaxWorkflowSteps).
const DefaultMaxWorkflowSteps = 100_000

// ErrWorkflowTooLarge is returned by CreateWorkflow for a workflow with
// more steps than the broker's limit; nothing is stored.
var ErrWorkflowTooLarge = errors.New("workflow too large")

func init() { capNames = append(capNames, "workflows") }

// WorkflowState is where a workflow is in its life.
type WorkflowState string

const (
	WorkflowRunning   WorkflowState = "running"
	WorkflowCompleted WorkflowState = "completed"
	WorkflowFailed    WorkflowState = "failed"
	WorkflowCancelled WorkflowState = "cancelled"
)

// Known reports whether s is one of the states above.
func (s WorkflowState) Known() bool {
	switch s {
	case WorkflowRunning, WorkflowCompleted, WorkflowFailed, WorkflowCancelled:
		return true
	}
	return false
}

// StepState is where a step is: waiting for its inputs, enqueued (its task
// has the detail), or finished.
type StepState string

const (
	StepWaiting   StepState = "waiting"
	StepEnqueued  StepState = "enqueued"
	StepCompleted StepState = "completed"
	StepFailed    StepState = "failed"
	StepCancelled StepState = "cancelled"
)

// Input says how a step's input is built from other steps' results: the
// result of step Step, or (Step < 0) the JSON list of List's values.
type Input struct {
	Step int     `json:"step"`
	List []Input `json:"list,omitempty"`
}

// Deps returns the steps in, in order.
func (in Input) Deps(out []int) []int {
	if in.Step >= 0 {
		return append(out, in.Step)
	}
	for _, x := range in.List {
		out = x.Deps(out)
	}
	return out
}

// WorkflowStep is one step. Task is the task to enqueue when its input is
// ready (its ID is fixed at creation); the broker fills the rest.
type WorkflowStep struct {
	Task     Task   `json:"task"`
	Input    *Input `json:"input,omitempty"`    // nil: starts at creation
	Tolerant bool   `json:"tolerant,omitempty"` // failed inputs become {"ok": false, "error": ...} elements
	// Immutable: the step waits for Input like any other but runs with its
	// task's own payload and encoding, never the input (Celery's .si()).
	// Input still orders it and carries failures (a non-tolerant immutable
	// step after a dead one is cancelled).
	Immutable bool `json:"immutable,omitempty"`

	State     StepState `json:"state"`
	TaskState State     `json:"task_state,omitempty"` // while enqueued
	Attempts  int       `json:"attempts"`
	Result    []byte    `json:"result,omitempty"`
	// Error says why the step failed or was cancelled; while its task
	// waits to retry (TaskState StateRetry), it is the last attempt's
	// error, so a workflow that looks stuck says why.
	Error string `json:"error,omitempty"`
}

// Workflow is a workflow as stored. Output is the workflow's result.
type Workflow struct {
	ID         string         `json:"id"`
	Steps      []WorkflowStep `json:"steps"`
	Output     Input          `json:"output"`
	Retention  time.Duration  `json:"retention"`
	State      WorkflowState  `json:"state"`
	Result     []byte         `json:"result,omitempty"`
	Error      string         `json:"error,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
	FinishedAt time.Time      `json:"finished_at,omitempty"`
}

// ValidateWorkflow checks what a broker relies on: an ID, at least one
// step, inputs that name earlier steps only (so there is no cycle), and
// tasks with ID, queue and kind.
func ValidateWorkflow(w *Workflow) error {
	if w == nil || w.ID == "" {
		return fmt.Errorf("workflow has no ID")
	}
	if len(w.Steps) == 0 {
		return fmt.Errorf("workflow %s has no steps", w.ID)
	}
	var check func(i int, in Input) error
	check = func(i int, in Input) error {
		if in.Step >= 0 {
			if in.Step >= i {
				return fmt.Errorf("workflow %s: step %d takes the result of step %d, not an earlier one", w.ID, i, in.Step)
			}
			return nil
		}
		for _, x := range in.List {
			if err := check(i, x); err != nil {
				return err
			}
		}
		return nil
	}
	for i, s := range w.Steps {
		if s.Task.ID == "" || s.Task.Queue == "" || s.Task.Kind == "" {
			return fmt.Errorf("workflow %s: step %d needs a task ID, queue and kind", w.ID, i)
		}
		if s.Input != nil {
			if err := check(i, *s.Input); err != nil {
				return err
			}
		}
	}
	return check(len(w.Steps), w.Output)
}

// StepResult is what InputValue reads of a finished step.
type StepResult struct {
	OK     bool
	Result []byte
	Error  string
}

// jsonValue is r as a JSON value: itself if valid JSON, null if empty,
// else a JSON string of its bytes.
func jsonValue(r []byte) json.RawMessage {
	if len(r) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(r) {
		return r
	}
	b, _ := json.Marshal(string(r))
	return b
}

// InputValue builds the JSON value of in. If tolerant, the elements of a
// top-level list are {"ok": true, "result": V} or {"ok": false, "error":
// {"type": "StepFailed", "message": M}}.
func InputValue(in Input, tolerant bool, res func(step int) StepResult) json.RawMessage {
	var val func(in Input) (json.RawMessage, string)
	val = func(in Input) (json.RawMessage, string) {
		if in.Step >= 0 {
			r := res(in.Step)
			if !r.OK {
				return json.RawMessage("null"), r.Error
			}
			return jsonValue(r.Result), ""
		}
		elems := make([]json.RawMessage, len(in.List))
		var first string
		for i, x := range in.List {
			v, e := val(x)
			if tolerant && in.Step < 0 {
				if e != "" {
					b, _ := json.Marshal(map[string]any{"ok": false, "error": map[string]string{"type": "StepFailed", "message": e}})
					v = b
				} else {
					b, _ := json.Marshal(map[string]any{"ok": true, "result": v})
					v = b
				}
				e = ""
			}
			elems[i] = v
			if first == "" {
				first = e
			}
		}
		b, _ := json.Marshal(elems)
		return b, first
	}
	if tolerant && in.Step >= 0 {
		tolerant = false
	}
	top := in
	if tolerant {
		// Only the top-level list is wrapped.
		elems := make([]json.RawMessage, len(top.List))
		for i, x := range top.List {
			v, e := val(x)
			var b []byte
			if e != "" {
				b, _ = json.Marshal(map[string]any{"ok": false, "error": map[string]string{"type": "StepFailed", "message": e}})
			} else {
				b, _ = json.Marshal(map[string]any{"ok": true, "result": v})
			}
			elems[i] = b
		}
		b, _ := json.Marshal(elems)
		return b
	}
	v, _ := val(in)
	return v
}

// StepPayload is the payload and encoding of a step's task given its
// input value: an "args" payload gets the input prepended to its args;
// any other gets the input as a JSON payload.
func StepPayload(t *Task, input json.RawMessage) ([]byte, string, error) {
	if t.Encoding != "args" {
		return input, "json", nil
	}
	var ca struct {
		Args   []json.RawMessage          `json:"args"`
		Kwargs map[string]json.RawMessage `json:"kwargs"`
	}
	if err := json.Unmarshal(t.Payload, &ca); err != nil {
		return nil, "", fmt.Errorf("step task %s: args payload: %w", t.ID, err)
	}
	if ca.Kwargs == nil {
		ca.Kwargs = map[string]json.RawMessage{}
	}
	ca.Args = append([]json.RawMessage{input}, ca.Args...)
	b, err := json.Marshal(ca)
	return b, "args", err
}
