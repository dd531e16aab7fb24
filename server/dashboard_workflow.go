package server

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
)

// stepView is one workflow step as the workflow page shows it.
type stepView struct {
	Index    int
	TaskID   string
	Kind     string
	Queue    string
	State    string // the task's while enqueued, else the step's
	Attempts int
	Inputs   []int
	Result   []byte
	Error    string
	// HasTask: the step's task was enqueued at some point (it may have
	// expired since); a waiting step has none yet.
	HasTask bool
}

func workflowSteps(wf *queue.WorkflowInfo) []stepView {
	out := make([]stepView, len(wf.Steps))
	for i, st := range wf.Steps {
		v := stepView{Index: i, TaskID: st.Task.ID, Kind: st.Task.Kind, Queue: st.Task.Queue, State: string(st.State),
			Attempts: st.Attempts, Result: st.Result, Error: st.Error, HasTask: st.State != broker.StepWaiting}
		if st.State == broker.StepEnqueued && st.TaskState != "" {
			v.State = string(st.TaskState)
		}
		if st.Input != nil {
			v.Inputs = st.Input.Deps(nil)
		}
		out[i] = v
	}
	return out
}

// dashWorkflow: GET /workflows/{id} — a workflow and its steps.
func (s *Server) dashWorkflow(w http.ResponseWriter, r *http.Request) {
	wf, err := s.insp.Workflow(r.Context(), r.PathValue("id"))
	if errors.Is(err, broker.ErrTaskNotFound) {
		err = errWorkflowNotFound{r.PathValue("id"), err}
	}
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	counts := map[string]int{}
	steps := workflowSteps(wf)
	for _, st := range steps {
		counts[st.State]++
	}
	s.render(w, r, http.StatusOK, "workflow", "Workflow "+wf.ID, map[string]any{
		"Workflow": wf, "Steps": steps, "Counts": counts, "Running": wf.State == broker.WorkflowRunning,
	})
}

// errWorkflowNotFound names the workflow and says why one may be gone.
type errWorkflowNotFound struct {
	id  string
	err error
}

func (e errWorkflowNotFound) Error() string {
	return "no workflow " + strconv.Quote(e.id) + " (a finished workflow is kept for its retention, 24h by default)"
}
func (e errWorkflowNotFound) Unwrap() error { return e.err }

// workflowStates are the state filter's tabs, "" (all) first.
var workflowStates = []broker.WorkflowState{"", broker.WorkflowRunning, broker.WorkflowCompleted, broker.WorkflowFailed, broker.WorkflowCancelled}

// dashWorkflows: GET /workflows[?state=S&cursor=C] — recent workflows,
// newest first, a page of DefaultPageSize; ?id=ID opens one by ID.
func (s *Server) dashWorkflows(w http.ResponseWriter, r *http.Request) {
	if id := strings.TrimSpace(r.URL.Query().Get("id")); id != "" {
		http.Redirect(w, r, "/workflows/"+url.PathEscape(id), http.StatusSeeOther)
		return
	}
	supported := s.cfg.Broker.Capabilities().Has(broker.CapWorkflows)
	data := map[string]any{"Supported": supported, "States": workflowStates}
	if supported {
		p, err := workflowListParams(r)
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		page, err := s.insp.Workflows(r.Context(), p)
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		data["State"], data["Cursor"], data["Workflows"], data["Next"] = p.State, p.Cursor, page.Workflows, page.Next
	}
	s.render(w, r, http.StatusOK, "workflows", "Workflows", data)
}

// workflowOfTask is the workflow ID of a step's task ID (wf_X.N), or "".
func workflowOfTask(id string) string {
	i := strings.LastIndexByte(id, '.')
	if !strings.HasPrefix(id, "wf_") || i < 0 {
		return ""
	}
	if _, err := strconv.Atoi(id[i+1:]); err != nil {
		return ""
	}
	return id[:i]
}
