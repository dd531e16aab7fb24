package memory

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// wfState is a stored workflow. Every transition happens under the
// broker's mutex, inside the call that settles the step's task, so a
// step's completion and the enqueueing of its followers are one step.
type wfState struct {
	w          broker.Workflow
	remaining  []int   // unfinished inputs per step
	dependents [][]int // steps taking each step's result
	open       int     // steps not finished
	done       chan struct{}
}

func (b *Broker) wf(id string) *wfState {
	if b.workflows == nil {
		b.workflows = make(map[string]*wfState)
	}
	return b.workflows[id]
}

// CreateWorkflow implements broker.Workflower.
func (b *Broker) CreateWorkflow(ctx context.Context, w *broker.Workflow) error {
	if err := broker.ValidateWorkflow(w); err != nil {
		return err
	}
	if n := len(w.Steps); n > b.maxSteps {
		return fmt.Errorf("workflow %s has %d steps, above the limit of %d (memory Config.MaxWorkflowSteps): %w", w.ID, n, b.maxSteps, broker.ErrWorkflowTooLarge)
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if b.wf(w.ID) != nil {
		return fmt.Errorf("workflow %q: %w", w.ID, broker.ErrTaskIDConflict)
	}
	for _, s := range w.Steps {
		if q := b.queues[s.Task.Queue]; q != nil && q.tasks[s.Task.ID] != nil {
			return fmt.Errorf("workflow %q: step task %q: %w", w.ID, s.Task.ID, broker.ErrTaskIDConflict)
		}
	}
	now := b.clock.Now()
	st := &wfState{w: *w, done: make(chan struct{})}
	st.w.Steps = slices.Clone(w.Steps)
	st.w.State, st.w.CreatedAt = broker.WorkflowRunning, now
	st.remaining = make([]int, len(w.Steps))
	st.dependents = make([][]int, len(w.Steps))
	st.open = len(w.Steps)
	for i := range st.w.Steps {
		s := &st.w.Steps[i]
		s.State = broker.StepWaiting
		s.Task.Payload = slices.Clone(s.Task.Payload)
		if s.Input != nil {
			deps := s.Input.Deps(nil)
			st.remaining[i] = len(deps)
			for _, d := range deps {
				st.dependents[d] = append(st.dependents[d], i)
			}
		}
	}
	b.workflows[w.ID] = st
	for i := range st.w.Steps {
		// A step whose input names no step (nil, or an empty list) starts
		// now: nothing would ever start it later.
		if st.w.Steps[i].Input == nil || st.remaining[i] == 0 {
			if st.w.Steps[i].State == broker.StepWaiting && st.w.State == broker.WorkflowRunning {
				b.startStep(st, i, now)
			}
		}
	}
	return nil
}

func (st *wfState) result(i int) broker.StepResult {
	s := &st.w.Steps[i]
	return broker.StepResult{OK: s.State == broker.StepCompleted, Result: s.Result, Error: s.Error}
}

// startStep enqueues step i with its input (an immutable step with its
// own payload).
func (b *Broker) startStep(st *wfState, i int, now time.Time) {
	s := &st.w.Steps[i]
	t := s.Task
	if s.Input != nil && !s.Immutable {
		p, enc, err := broker.StepPayload(&t, broker.InputValue(*s.Input, s.Tolerant, st.result))
		if err != nil {
			b.stepEnded(st, i, broker.StepFailed, nil, err.Error(), now)
			return
		}
		t.Payload, t.Encoding = p, enc
	}
	t.Workflow, t.Step = st.w.ID, i
	t.Retention = max(t.Retention, st.w.Retention)
	t.ProcessAt = time.Time{}
	if err := b.enqueue(&t, now); err != nil {
		b.stepEnded(st, i, broker.StepFailed, nil, "enqueue: "+err.Error(), now)
		return
	}
	s.State = broker.StepEnqueued
}

// ended reports whether a step in state s has finished.
func ended(s broker.StepState) bool {
	return s == broker.StepCompleted || s == broker.StepFailed || s == broker.StepCancelled
}

// stepEnded records the end of step i and moves the workflow on.
func (b *Broker) stepEnded(st *wfState, i int, state broker.StepState, result []byte, msg string, now time.Time) {
	s := &st.w.Steps[i]
	if ended(s.State) {
		return
	}
	s.State, s.Result, s.Error = state, slices.Clone(result), msg
	st.open--
	running := st.w.State == broker.WorkflowRunning
	if state == broker.StepCompleted {
		if running {
			for _, d := range st.dependents[i] {
				st.remaining[d]--
				if st.remaining[d] == 0 && st.w.Steps[d].State == broker.StepWaiting {
					b.startStep(st, d, now)
				}
			}
		}
	} else if running {
		reason := fmt.Sprintf("step %d (%s) %s: %s", i, s.Task.Kind, state, msg)
		if len(st.dependents[i]) == 0 {
			b.finishWorkflow(st, broker.WorkflowFailed, reason, now)
		}
		for _, d := range st.dependents[i] {
			if st.w.State != broker.WorkflowRunning {
				break
			}
			ds := &st.w.Steps[d]
			if ds.State != broker.StepWaiting {
				continue
			}
			if ds.Tolerant {
				st.remaining[d]--
				if st.remaining[d] == 0 {
					b.startStep(st, d, now)
				}
				continue
			}
			b.stepEnded(st, d, broker.StepCancelled, nil, "cancelled: "+reason, now)
		}
	}
	if st.w.State == broker.WorkflowRunning && st.open == 0 {
		st.w.Result = broker.InputValue(st.w.Output, false, st.result)
		b.finishWorkflow(st, broker.WorkflowCompleted, "", now)
	}
}

// finishWorkflow ends the workflow; a failed or cancelled one cancels its
// unfinished steps.
func (b *Broker) finishWorkflow(st *wfState, state broker.WorkflowState, reason string, now time.Time) {
	if st.w.State != broker.WorkflowRunning {
		return
	}
	st.w.State, st.w.Error, st.w.FinishedAt = state, reason, now
	heap.Push(&b.wfExpiring, wfItem{at: now.Add(st.w.Retention), id: st.w.ID})
	if state != broker.WorkflowCompleted {
		for i := range st.w.Steps {
			s := &st.w.Steps[i]
			switch s.State {
			case broker.StepWaiting:
				s.State, s.Error = broker.StepCancelled, "cancelled: "+reason
				st.open--
			case broker.StepEnqueued:
				if q := b.queues[s.Task.Queue]; q != nil {
					if e := q.tasks[s.Task.ID]; e != nil {
						switch e.t.State {
						case broker.StatePending, broker.StateScheduled, broker.StateRetry:
							e.t.Errors = append(e.t.Errors, cancelError(e.t.Attempts, now, "workflow "+string(state)+": "+reason))
							b.setState(e, broker.StateDead, now)
						case broker.StateActive:
							e.cancel = true
						}
					}
				}
			}
		}
	}
	close(st.done)
}

// taskEnded is called by setState and remove for workflow tasks.
func (b *Broker) taskEnded(e *entry, st broker.State, now time.Time) {
	w := b.workflows[e.t.Workflow]
	if w == nil || e.t.Step >= len(w.w.Steps) {
		return
	}
	// A step ends once: a task that ends again (a dead step's task
	// retried by hand) changes nothing of it, its attempts included.
	if s := &w.w.Steps[e.t.Step]; !ended(s.State) {
		s.Attempts = e.t.Attempts
	}
	switch st {
	case broker.StateCompleted:
		b.stepEnded(w, e.t.Step, broker.StepCompleted, e.t.Result, "", now)
	case broker.StateDead:
		msg, state := "dead", broker.StepFailed
		if n := len(e.t.Errors); n > 0 {
			msg = e.t.Errors[n-1].Message
			if e.t.Errors[n-1].Kind == broker.ErrorKindCancelled {
				state = broker.StepCancelled
			}
		}
		b.stepEnded(w, e.t.Step, state, nil, msg, now)
	default: // removed
		b.stepEnded(w, e.t.Step, broker.StepFailed, nil, "task deleted", now)
	}
}

func (b *Broker) workflowCopy(st *wfState) *broker.Workflow {
	w := st.w
	w.Steps = slices.Clone(st.w.Steps)
	w.Result = slices.Clone(st.w.Result)
	for i := range w.Steps {
		s := &w.Steps[i]
		if s.State == broker.StepEnqueued {
			if q := b.queues[s.Task.Queue]; q != nil {
				if e := q.tasks[s.Task.ID]; e != nil {
					s.TaskState, s.Attempts = e.t.State, e.t.Attempts
					if e.t.State == broker.StateRetry && len(e.t.Errors) > 0 {
						s.Error = e.t.Errors[len(e.t.Errors)-1].Message
					}
				}
			}
		}
	}
	return &w
}

// GetWorkflow implements broker.Workflower.
func (b *Broker) GetWorkflow(ctx context.Context, id string) (*broker.Workflow, error) {
	return b.getWorkflow(ctx, id, b.workflowCopy)
}

// getWorkflow returns what read makes of workflow id.
func (b *Broker) getWorkflow(ctx context.Context, id string, read func(*wfState) *broker.Workflow) (*broker.Workflow, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	st := b.wf(id)
	if st == nil {
		return nil, fmt.Errorf("workflow %q: %w", id, broker.ErrTaskNotFound)
	}
	return read(st), nil
}

// AwaitWorkflow implements broker.Workflower.
func (b *Broker) AwaitWorkflow(ctx context.Context, id string) (*broker.Workflow, error) {
	return b.awaitWorkflow(ctx, id, b.workflowCopy)
}

// workflowOutcome is st's workflow without its steps (GetWorkflowOutcome).
func (b *Broker) workflowOutcome(st *wfState) *broker.Workflow {
	w := &st.w
	out := &broker.Workflow{ID: w.ID, State: w.State, Error: w.Error,
		Retention: w.Retention, CreatedAt: w.CreatedAt, FinishedAt: w.FinishedAt}
	if w.State == broker.WorkflowCompleted {
		out.Result = slices.Clone(w.Result)
	}
	return out
}

// GetWorkflowOutcome implements broker.Workflower.
func (b *Broker) GetWorkflowOutcome(ctx context.Context, id string) (*broker.Workflow, error) {
	return b.getWorkflow(ctx, id, b.workflowOutcome)
}

// AwaitWorkflowOutcome implements broker.Workflower.
func (b *Broker) AwaitWorkflowOutcome(ctx context.Context, id string) (*broker.Workflow, error) {
	return b.awaitWorkflow(ctx, id, b.workflowOutcome)
}

// awaitWorkflow waits for workflow id to finish and returns what read
// makes of it.
func (b *Broker) awaitWorkflow(ctx context.Context, id string, read func(*wfState) *broker.Workflow) (*broker.Workflow, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	st := b.wf(id)
	b.mu.Unlock()
	if st == nil {
		return nil, fmt.Errorf("workflow %q: %w", id, broker.ErrTaskNotFound)
	}
	select {
	case <-st.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-b.closedCh:
		return nil, broker.ErrClosed
	}
	// st, not the map: Cleanup may have dropped it since it finished.
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	return read(st), nil
}

// cleanupWorkflows forgets finished workflows whose retention has passed
// (their steps' tasks follow their own retention).
func (b *Broker) cleanupWorkflows(now time.Time) {
	for len(b.wfExpiring) > 0 && !b.wfExpiring[0].at.After(now) {
		it := heap.Pop(&b.wfExpiring).(wfItem)
		if st := b.workflows[it.id]; st != nil && st.w.State != broker.WorkflowRunning {
			delete(b.workflows, it.id)
		}
	}
}

type wfItem struct {
	at time.Time
	id string
}

// wfHeap orders finished workflows by the end of their retention.
type wfHeap []wfItem

func (h wfHeap) Len() int           { return len(h) }
func (h wfHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h wfHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *wfHeap) Push(x any)        { *h = append(*h, x.(wfItem)) }
func (h *wfHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	*h = old[:len(old)-1]
	return it
}

// CancelWorkflow implements broker.Workflower.
func (b *Broker) CancelWorkflow(ctx context.Context, id string) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	st := b.wf(id)
	if st == nil {
		return fmt.Errorf("workflow %q: %w", id, broker.ErrTaskNotFound)
	}
	if st.w.State != broker.WorkflowRunning {
		return fmt.Errorf("cancel workflow %q: it is %s: %w", id, st.w.State, broker.ErrInvalidState)
	}
	b.finishWorkflow(st, broker.WorkflowCancelled, "workflow cancelled", b.clock.Now())
	return nil
}

// ListWorkflows implements broker.Workflower. The broker keeps no index:
// each call sorts the stored workflows (O(n log n) under the mutex), which
// is fine for the sizes a memory broker holds. The cursor is
// "<CreatedAt unix ns>:<ID>" of the last workflow of the page.
func (b *Broker) ListWorkflows(ctx context.Context, p broker.WorkflowListParams) (broker.WorkflowPage, error) {
	limit, err := broker.CheckWorkflowList(p)
	if err != nil {
		return broker.WorkflowPage{}, err
	}
	var after wfPos
	if p.Cursor != "" {
		if after, err = parseWfCursor(p.Cursor); err != nil {
			return broker.WorkflowPage{}, err
		}
	}
	if err := b.lock(ctx); err != nil {
		return broker.WorkflowPage{}, err
	}
	defer b.mu.Unlock()
	var match []*wfState
	for _, st := range b.workflows {
		if p.State != "" && st.w.State != p.State {
			continue
		}
		if p.Cursor != "" && !posOf(st).older(after) {
			continue
		}
		match = append(match, st)
	}
	slices.SortFunc(match, func(x, y *wfState) int {
		if posOf(y).older(posOf(x)) {
			return -1
		}
		return 1
	})
	var page broker.WorkflowPage
	if len(match) > limit {
		match = match[:limit]
		last := posOf(match[limit-1])
		page.Next = strconv.FormatInt(last.at, 10) + ":" + last.id
	}
	page.Workflows = make([]broker.WorkflowSummary, len(match))
	for i, st := range match {
		page.Workflows[i] = broker.WorkflowSummary{ID: st.w.ID, Queue: st.w.Steps[0].Task.Queue, State: st.w.State,
			Steps: len(st.w.Steps), Done: len(st.w.Steps) - st.open, Error: st.w.Error,
			CreatedAt: st.w.CreatedAt, FinishedAt: st.w.FinishedAt}
	}
	return page, nil
}

// wfPos is a workflow's place in the listing order.
type wfPos struct {
	at int64 // CreatedAt, unix ns
	id string
}

func posOf(st *wfState) wfPos { return wfPos{st.w.CreatedAt.UnixNano(), st.w.ID} }

// older reports whether p comes after q in the listing.
func (p wfPos) older(q wfPos) bool { return p.at < q.at || (p.at == q.at && p.id < q.id) }

func parseWfCursor(c string) (wfPos, error) {
	at, id, ok := strings.Cut(c, ":")
	n, err := strconv.ParseInt(at, 10, 64)
	if !ok || err != nil || id == "" {
		return wfPos{}, fmt.Errorf("cursor %q: not one of this broker's: %w", c, broker.ErrBadListParams)
	}
	return wfPos{n, id}, nil
}
