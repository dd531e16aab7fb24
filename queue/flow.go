package queue

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Flow is a shape of tasks: a step (one task), a chain, a group or a
// chord. Build it with Step, Chain, Group and Chord; enqueue it with
// Client.EnqueueFlow. Result passing (docs/workflows.md): a step's input
// is the result of what precedes it (a chain's previous node; a group's
// list of member results in member order). An "args" step gets the input
// prepended to its positional arguments; a step with no payload (or JSON
// null) gets it as its JSON payload; a step with its own other payload
// after another step is rejected, unless it is Immutable.
type Flow struct {
	kind      string // "task", "chain", "group", "chord"
	task      *Task
	nodes     []Flow
	body      *Flow
	tolerate  bool
	immutable bool
}

// Step is a flow of one task.
func Step(t *Task) Flow { return Flow{kind: "task", task: t} }

// Chain runs nodes one after the other, each getting the previous result.
func Chain(nodes ...Flow) Flow { return Flow{kind: "chain", nodes: nodes} }

// Group runs nodes in parallel; its result is the list of their results.
func Group(nodes ...Flow) Flow { return Flow{kind: "group", nodes: nodes} }

// Chord runs body once every header member has completed, with the list
// of their results. If a member dies the body does not run, unless
// TolerateFailures was called.
func Chord(header []Flow, body Flow) Flow {
	return Flow{kind: "chord", nodes: header, body: &body}
}

// Immutable makes a step ignore its input (Celery's .si()): it still runs
// only after what precedes it has completed (and is cancelled if that
// fails, unless it is a tolerant chord's body), but with exactly its own
// payload, which may then be of any encoding. Only a step can be
// immutable: EnqueueFlow refuses a chain, group or chord marked so, as
// "ignore the input" would be ambiguous for their inner steps.
func (f Flow) Immutable() Flow { f.immutable = true; return f }

// TolerateFailures makes a chord run its body even if members die; the
// body then gets {"ok": true, "result": V} / {"ok": false, "error": {...}}
// elements.
func (f Flow) TolerateFailures() Flow { f.tolerate = true; return f }

// DefaultMaxFlowSteps caps the steps of one flow (ClientConfig has no
// field yet: EnqueueFlow uses this).
const DefaultMaxFlowSteps = 100_000

// DefaultFlowRetention is how long a finished workflow (and its steps'
// tasks) is kept when no step asks for longer.
const DefaultFlowRetention = 24 * time.Hour

type flowBuilder struct {
	c    *Client
	w    *broker.Workflow
	opts []Option
	now  time.Time
}

func (fb *flowBuilder) add(f Flow, pred *broker.Input, tolerant bool) (broker.Input, error) {
	if f.immutable && f.kind != "task" {
		return broker.Input{}, invalid("flow: a %s cannot be immutable, only a step", f.kind)
	}
	switch f.kind {
	case "task":
		if len(fb.w.Steps) >= DefaultMaxFlowSteps {
			return broker.Input{}, invalid("flow has more than %d steps", DefaultMaxFlowSteps)
		}
		// The step's task is built in place (no copy of a *broker.Task).
		i := len(fb.w.Steps)
		fb.w.Steps = append(fb.w.Steps, broker.WorkflowStep{Input: pred, Tolerant: tolerant && pred != nil, Immutable: f.immutable && pred != nil})
		t := &fb.w.Steps[i].Task
		if _, err := fb.c.buildTask(t, f.task, fb.opts, fb.now); err != nil {
			return broker.Input{}, err
		}
		if pred != nil && !f.immutable && t.Encoding != EncodingArgs && len(t.Payload) > 0 && string(t.Payload) != "null" {
			return broker.Input{}, invalid("flow step %d (kind %q) follows another step but has its own %s payload: give it args or no payload", i, t.Kind, t.Encoding)
		}
		t.ID = fb.w.ID + "." + strconv.Itoa(i)
		fb.w.Retention = max(fb.w.Retention, t.Retention)
		return broker.Input{Step: i}, nil
	case "chain":
		if len(f.nodes) == 0 {
			return broker.Input{}, invalid("flow has an empty chain")
		}
		for j, n := range f.nodes {
			out, err := fb.add(n, pred, tolerant && j == 0)
			if err != nil {
				return out, err
			}
			pred = &out
		}
		return *pred, nil
	case "group", "chord":
		if len(f.nodes) == 0 {
			return broker.Input{}, invalid("flow has an empty %s", f.kind)
		}
		list := broker.Input{Step: -1, List: make([]broker.Input, 0, len(f.nodes))}
		for _, n := range f.nodes {
			out, err := fb.add(n, pred, tolerant)
			if err != nil {
				return out, err
			}
			list.List = append(list.List, out)
		}
		if f.kind == "group" {
			return list, nil
		}
		return fb.add(*f.body, &list, f.tolerate)
	}
	return broker.Input{}, invalid("flow node of unknown shape %q", f.kind)
}

// steps counts f's task nodes (the steps EnqueueFlow stores, if f is
// valid), so the workflow's steps are allocated once.
func (f Flow) steps() int {
	if f.kind == "task" {
		return 1
	}
	n := 0
	for _, x := range f.nodes {
		n += x.steps()
	}
	if f.body != nil {
		n += f.body.steps()
	}
	return n
}

// FlowHandle is an enqueued workflow.
type FlowHandle struct {
	ID string
	b  Broker
}

// WorkflowInfo is a workflow as the broker keeps it.
type WorkflowInfo = broker.Workflow

// FlowError is the error of a workflow that failed or was cancelled.
type FlowError struct {
	ID    string
	State broker.WorkflowState
	Msg   string
}

func (e *FlowError) Error() string { return fmt.Sprintf("workflow %s %s: %s", e.ID, e.State, e.Msg) }

// EnqueueFlow validates f, then stores it and enqueues its first steps in
// one broker call; nothing is enqueued if f is invalid. opts apply to
// every step. The broker must have broker.CapWorkflows.
func (c *Client) EnqueueFlow(ctx context.Context, f Flow, opts ...Option) (*FlowHandle, error) {
	if !c.b.Capabilities().Has(broker.CapWorkflows) {
		return nil, fmt.Errorf("queue: EnqueueFlow: %w", broker.ErrUnsupported)
	}
	fb := &flowBuilder{c: c, w: &broker.Workflow{ID: "wf_" + rand.Text()}, opts: opts, now: c.b.Clock().Now()}
	fb.w.Steps = make([]broker.WorkflowStep, 0, min(f.steps(), DefaultMaxFlowSteps+1))
	out, err := fb.add(f, nil, false)
	if err != nil {
		return nil, err
	}
	fb.w.Output = out
	if fb.w.Retention == 0 {
		fb.w.Retention = DefaultFlowRetention
	}
	if err := c.b.CreateWorkflow(ctx, fb.w); err != nil {
		return nil, fmt.Errorf("queue: enqueue flow: %w", err)
	}
	return &FlowHandle{ID: fb.w.ID, b: c.b}, nil
}

// Result waits for the workflow to finish and returns its result (the
// last step's, or the list of a group's), or a *FlowError. It reads the
// workflow's outcome only (broker AwaitWorkflowOutcome), never its steps.
func (h *FlowHandle) Result(ctx context.Context) ([]byte, error) {
	w, err := h.b.AwaitWorkflowOutcome(ctx, h.ID)
	if err != nil {
		return nil, err
	}
	if w.State != broker.WorkflowCompleted {
		return nil, &FlowError{ID: w.ID, State: w.State, Msg: w.Error}
	}
	return w.Result, nil
}

// Workflow returns a workflow with each step's state, attempts, result or
// error.
func (i *Inspector) Workflow(ctx context.Context, id string) (*WorkflowInfo, error) {
	return i.b.GetWorkflow(ctx, id)
}

// WorkflowListParams, WorkflowPage and WorkflowSummary are the broker's:
// what Inspector.Workflows takes and returns.
type (
	WorkflowListParams = broker.WorkflowListParams
	WorkflowPage       = broker.WorkflowPage
	WorkflowSummary    = broker.WorkflowSummary
)

// Workflows lists workflows newest first, a page at a time: p.State
// filters ("" any), p.Limit caps the page (0: 100, at most
// broker.MaxWorkflowListLimit), p.Cursor is the previous page's Next. A
// page may be short while Next is set (see broker.WorkflowPage). Bad
// parameters are ErrInvalidOption (and broker.ErrBadListParams).
func (i *Inspector) Workflows(ctx context.Context, p WorkflowListParams) (WorkflowPage, error) {
	page, err := i.b.ListWorkflows(ctx, p)
	switch {
	case errors.Is(err, broker.ErrBadListParams):
		return page, fmt.Errorf("queue: list workflows: %w (%w)", err, ErrInvalidOption)
	case err != nil:
		return page, fmt.Errorf("queue: list workflows: %w", err)
	}
	return page, nil
}

// CancelWorkflow cancels a workflow's pending and running steps.
func (i *Inspector) CancelWorkflow(ctx context.Context, id string) error {
	return i.b.CancelWorkflow(ctx, id)
}

// AwaitWorkflow waits until the workflow is completed, failed or cancelled.
func (i *Inspector) AwaitWorkflow(ctx context.Context, id string) (*WorkflowInfo, error) {
	return i.b.AwaitWorkflow(ctx, id)
}

// WorkflowOutcome returns a workflow without its steps: ID, State, Result
// (when completed), Error, Retention, CreatedAt and FinishedAt; Steps is
// nil. Its cost does not grow with the number of steps, unlike
// Workflow's: it is what to read for a workflow's state or result.
func (i *Inspector) WorkflowOutcome(ctx context.Context, id string) (*WorkflowInfo, error) {
	return i.b.GetWorkflowOutcome(ctx, id)
}

// AwaitWorkflowOutcome waits until the workflow is completed, failed or
// cancelled, as AwaitWorkflow does, and returns its outcome, as
// WorkflowOutcome does.
func (i *Inspector) AwaitWorkflowOutcome(ctx context.Context, id string) (*WorkflowInfo, error) {
	return i.b.AwaitWorkflowOutcome(ctx, id)
}
