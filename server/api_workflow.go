package server

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/spec"
)

// maxFlowBody caps a workflow request: a 10,000-member group of small
// tasks fits.
const maxFlowBody = 32 << 20

// apiCreateWorkflow: POST /api/v1/workflows {"flow": NODE, "queue", "retention"}.
func (s *Server) apiCreateWorkflow(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxFlowBody))
	if err != nil {
		st, code := classify(err)
		writeError(w, st, code, err.Error())
		return
	}
	f, err := spec.ParseFlowWith(body, spec.FlowOptions{MaxSteps: s.cfg.MaxFlowSteps})
	if errors.Is(err, spec.ErrFlowTooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "flow_too_large", err.Error())
		return
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	// Every producer of the API gets the kind check: a step no worker
	// serves would wait for ever, holding the rest of its workflow.
	if err := s.checkKinds(r.Context(), &f); err != nil {
		if errors.Is(err, spec.ErrUnknownKind) {
			writeError(w, http.StatusBadRequest, "unknown_kind", err.Error())
			return
		}
		st, code := classify(err)
		writeError(w, st, code, err.Error())
		return
	}
	// The file's queue and retention are already the steps' defaults.
	h, err := s.client.EnqueueFlow(r.Context(), f.Flow)
	if err != nil {
		st, code := classify(err)
		switch {
		case errors.Is(err, broker.ErrUnsupported):
			st, code = http.StatusNotImplemented, "unsupported"
		case errors.Is(err, broker.ErrWorkflowTooLarge):
			// The broker's own limit (e.g. redis Config.MaxWorkflowSteps).
			st, code = http.StatusRequestEntityTooLarge, "flow_too_large"
		}
		writeError(w, st, code, err.Error())
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": h.ID})
}

// workerListTTL is how long the workflow kind check may reuse a list of
// the live workers.
const workerListTTL = time.Second

// workerList caches the live workers for the kind check of POST
// /api/v1/workflows: on the Redis broker listing them is a script call
// and a round trip, a fifth of a small chord's creation.
type workerList struct {
	list func(context.Context) ([]queue.WorkerInfo, error)
	mu   sync.Mutex
	at   time.Time
	ws   []queue.WorkerInfo // nil: none fetched
}

// recent is the last list fetched, if it is younger than workerListTTL.
func (l *workerList) recent() ([]queue.WorkerInfo, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ws, l.ws != nil && time.Since(l.at) < workerListTTL
}

// fresh lists the live workers now and keeps the list.
func (l *workerList) fresh(ctx context.Context) ([]queue.WorkerInfo, error) {
	ws, err := l.list(ctx)
	if err != nil {
		return nil, err
	}
	if ws == nil {
		ws = []queue.WorkerInfo{}
	}
	l.mu.Lock()
	l.ws, l.at = ws, time.Now()
	l.mu.Unlock()
	return ws, nil
}

// checkKinds is the kind check of a flow. A recent list is trusted only
// to confirm: when live workers of every step's queue publish their kinds
// and list the step's, the flow is accepted without asking the broker. A
// flow the recent list does not confirm (an unknown kind, a queue whose
// workers it does not know) is checked against a fresh list, so a stale
// list never refuses a kind a new worker serves nor accepts one because
// it has not seen the workers that came since.
func (s *Server) checkKinds(ctx context.Context, f *spec.Flow) error {
	if ws, ok := s.workers.recent(); ok && kindsConfirmed(f, spec.LiveKinds(ws)) {
		return nil
	}
	return f.CheckWorkers(ctx, s.workers.fresh)
}

// kindsConfirmed: every step's kind is among those its queue's live
// workers publish (served as spec.LiveKinds answers).
func kindsConfirmed(f *spec.Flow, served func(queue string) []string) bool {
	sets := map[string]map[string]bool{}
	for _, st := range f.Tasks {
		set, seen := sets[st.Queue]
		if !seen {
			ks := served(st.Queue)
			if ks == nil {
				return false
			}
			set = make(map[string]bool, len(ks))
			for _, k := range ks {
				set[k] = true
			}
			sets[st.Queue] = set
		}
		if !set[st.Kind] {
			return false
		}
	}
	return true
}

type apiStep struct {
	ID       string `json:"id"`
	TaskID   string `json:"task_id"`
	Kind     string `json:"kind"`
	Queue    string `json:"queue"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	// Immutable: the step ignores its input and runs with its own payload.
	Immutable bool   `json:"immutable,omitempty"`
	Result    any    `json:"result,omitempty"`
	Error     string `json:"error,omitempty"`
}

func jsonOrString(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	if json.Valid(b) {
		return json.RawMessage(b)
	}
	return string(b)
}

// readWorkflow reads workflow {id} of r with get, after waiting up to the
// request's wait parameter for its end with await: the workflow await
// returned if it finished in time, else (the wait ran out, or none) get's,
// so a finished workflow is read once. On a bad wait (400) or an error
// (404 workflow_not_found for an unknown workflow) it writes the answer
// and returns nil.
func readWorkflow(w http.ResponseWriter, r *http.Request,
	await, get func(context.Context, string) (*queue.WorkflowInfo, error)) *queue.WorkflowInfo {
	var wait time.Duration
	if ws := r.URL.Query().Get("wait"); ws != "" {
		d, err := spec.ParseDuration(ws)
		if err != nil || d < 0 || d > 5*time.Minute {
			writeError(w, http.StatusBadRequest, "invalid_argument", "wait: want a duration up to 5m")
			return nil
		}
		wait = d
	}
	ctx, id := r.Context(), r.PathValue("id")
	var wf *queue.WorkflowInfo
	err := context.DeadlineExceeded // no wait: read now, as when it runs out
	if wait > 0 {
		wctx, cancel := context.WithTimeout(ctx, wait)
		wf, err = await(wctx, id)
		cancel()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		wf, err = get(ctx, id)
	}
	if err != nil {
		st, code := classify(err)
		if errors.Is(err, broker.ErrTaskNotFound) {
			code = "workflow_not_found"
		}
		writeError(w, st, code, err.Error())
		return nil
	}
	return wf
}

// apiGetWorkflow: GET /api/v1/workflows/{id}[?wait=30s].
func (s *Server) apiGetWorkflow(w http.ResponseWriter, r *http.Request) {
	wf := readWorkflow(w, r, s.insp.AwaitWorkflow, s.insp.Workflow)
	if wf == nil {
		return
	}
	steps := make([]apiStep, len(wf.Steps))
	for i, st := range wf.Steps {
		state := string(st.State)
		if st.State == broker.StepEnqueued && st.TaskState != "" {
			state = string(st.TaskState)
		}
		steps[i] = apiStep{ID: st.Task.ID, TaskID: st.Task.ID, Kind: st.Task.Kind, Queue: st.Task.Queue, State: state,
			Attempts: st.Attempts, Immutable: st.Immutable, Result: jsonOrString(st.Result), Error: st.Error}
	}
	out := outcomeJSON(wf)
	out["steps"] = steps
	writeJSON(w, http.StatusOK, out)
}

// outcomeJSON is what GET /api/v1/workflows/{id} and its /result answer
// of every workflow: id, state, result (when completed), error (when any).
func outcomeJSON(wf *queue.WorkflowInfo) map[string]any {
	out := map[string]any{"id": wf.ID, "state": wf.State}
	if wf.State == broker.WorkflowCompleted {
		out["result"] = jsonOrString(wf.Result)
	}
	if wf.Error != "" {
		out["error"] = wf.Error
	}
	return out
}

// apiWorkflowResult: GET /api/v1/workflows/{id}/result[?wait=30s]: the
// workflow's id, state, result (when completed) and error (when any),
// read from its outcome (no steps: the cost does not grow with them).
// The wait and the errors are GET /api/v1/workflows/{id}'s.
func (s *Server) apiWorkflowResult(w http.ResponseWriter, r *http.Request) {
	wf := readWorkflow(w, r, s.insp.AwaitWorkflowOutcome, s.insp.WorkflowOutcome)
	if wf == nil {
		return
	}
	writeJSON(w, http.StatusOK, outcomeJSON(wf))
}

// workflowListParams reads state, limit and cursor of a workflow list.
func workflowListParams(r *http.Request) (queue.WorkflowListParams, error) {
	q := r.URL.Query()
	p := queue.WorkflowListParams{State: broker.WorkflowState(q.Get("state")), Cursor: q.Get("cursor"), Limit: DefaultPageSize}
	if p.State != "" && !p.State.Known() {
		return p, badRequest("state=%q: want running, completed, failed or cancelled", p.State)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > broker.MaxWorkflowListLimit {
			return p, badRequest("limit=%q: want a number in 1..%d", v, broker.MaxWorkflowListLimit)
		}
		p.Limit = n
	}
	return p, nil
}

// apiListWorkflows: GET /api/v1/workflows?state=S&limit=N&cursor=C, newest
// first; "next" is the cursor of the following page (absent on the last).
func (s *Server) apiListWorkflows(w http.ResponseWriter, r *http.Request) {
	p, err := workflowListParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, err := s.insp.Workflows(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	out := map[string]any{"workflows": page.Workflows, "limit": p.Limit}
	if page.Workflows == nil {
		out["workflows"] = []queue.WorkflowSummary{}
	}
	if p.State != "" {
		out["state"] = p.State
	}
	if page.Next != "" {
		out["next"] = page.Next
	}
	writeJSON(w, http.StatusOK, out)
}

// apiCancelWorkflow: POST /api/v1/workflows/{id}/cancel.
func (s *Server) apiCancelWorkflow(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.insp.CancelWorkflow(r.Context(), id); err != nil {
		st, code := classify(err)
		writeError(w, st, code, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "state": "cancelled"})
}
