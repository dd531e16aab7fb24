package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/spec"
)

// MaxBatchIDs bounds the ids of one batched wait or cancel: each costs a
// broker read (and, while waiting, a waiter), so a request stays bounded.
const MaxBatchIDs = 10000

// batchIDsRequest is the body of POST /api/v1/results:wait and
// POST /api/v1/tasks:cancel.
type batchIDsRequest struct {
	IDs   []string `json:"ids"`
	Queue string   `json:"queue"`
	// results:wait only.
	Wait json.RawMessage `json:"wait"`
	Min  *int            `json:"min"`
}

// parseBatchIDs decodes and checks a batch body; wait says whether the
// wait fields are allowed.
func (s *Server) parseBatchIDs(w http.ResponseWriter, r *http.Request, wait bool) (*batchIDsRequest, error) {
	body, err := s.readJSONBody(w, r)
	if err != nil {
		return nil, err
	}
	var req batchIDsRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return nil, badRequest("body: %v (want {\"ids\": [\"...\"]%s})", err, map[bool]string{true: ", \"wait\": \"5s\", \"min\": 1", false: ""}[wait])
	}
	if !wait && (req.Wait != nil || req.Min != nil) {
		return nil, badRequest("body: wait and min are fields of results:wait, not of tasks:cancel")
	}
	if len(req.IDs) == 0 {
		return nil, badRequest("body: ids is required and must not be empty")
	}
	if len(req.IDs) > MaxBatchIDs {
		return nil, badRequest("body: %d ids, at most %d per request", len(req.IDs), MaxBatchIDs)
	}
	seen := make(map[string]struct{}, len(req.IDs))
	for i, id := range req.IDs {
		if id == "" {
			return nil, badRequest("body: ids[%d] is empty", i)
		}
		if _, dup := seen[id]; dup {
			return nil, badRequest("body: ids[%d] %q is given twice", i, id)
		}
		seen[id] = struct{}{}
	}
	return &req, nil
}

// waitResultsView is the body of POST /api/v1/results:wait.
type waitResultsView struct {
	// Results holds the tasks that are done (completed or dead), in the
	// order of the request's ids.
	Results []resultView `json:"results"`
	// Pending holds the ids not done yet, NotFound those the broker does
	// not know (never enqueued, deleted, or completed without retention).
	Pending  []string `json:"pending"`
	NotFound []string `json:"not_found"`
}

// apiWaitResults: POST /api/v1/results:wait {"ids": [...], "wait": "5s",
// "min": N, "queue": Q}. Waits up to wait (capped at MaxWait) until at
// least min (default 1, at most the number of ids) of the tasks are done
// or unknown, then answers 200 with every one done by then. It is
// GET /tasks/{id}/result for many tasks in one request: a client waiting
// for a thousand results makes one request, not a thousand.
func (s *Server) apiWaitResults(w http.ResponseWriter, r *http.Request) {
	req, err := s.parseBatchIDs(w, r, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	wait, err := s.batchWait(req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	minDone := 1
	if req.Min != nil {
		if *req.Min < 0 {
			s.fail(w, r, badRequest("min %d: want 0 or more", *req.Min))
			return
		}
		minDone = *req.Min
	}
	minDone = min(minDone, len(req.IDs))

	ctx := r.Context()
	tasks := make([]*queue.TaskInfo, len(req.IDs))
	missing := make([]bool, len(req.IDs))
	finished := 0
	var pending []int
	for i, id := range req.IDs {
		t, err := s.insp.Task(ctx, req.Queue, id)
		switch {
		case errors.Is(err, queue.ErrTaskNotFound):
			missing[i] = true
			finished++
		case err != nil:
			s.fail(w, r, err)
			return
		case done(t):
			tasks[i] = t
			finished++
		default:
			pending = append(pending, i)
		}
	}
	if finished < minDone && wait > 0 && len(pending) > 0 {
		if err := s.awaitSome(ctx, req.Queue, req.IDs, pending, minDone-finished, wait, tasks, missing); err != nil {
			s.fail(w, r, err)
			return
		}
	}
	out := waitResultsView{Results: []resultView{}, Pending: []string{}, NotFound: []string{}}
	for i, id := range req.IDs {
		switch {
		case missing[i]:
			out.NotFound = append(out.NotFound, id)
		case tasks[i] != nil:
			out.Results = append(out.Results, viewResult(tasks[i]))
		default:
			out.Pending = append(out.Pending, id)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// batchWait is the request's wait field as a duration capped at MaxWait
// (0 when absent).
func (s *Server) batchWait(req *batchIDsRequest) (time.Duration, error) {
	if len(req.Wait) == 0 || string(req.Wait) == "null" {
		return 0, nil
	}
	var v any
	_ = json.Unmarshal(req.Wait, &v)
	var str string
	switch x := v.(type) {
	case string:
		str = x
	case float64:
		str = string(req.Wait)
	}
	d, err := spec.ParseDuration(str)
	if str == "" || err != nil || d < 0 {
		return 0, badRequest("wait %s: want a duration like \"10s\" or a number of seconds, 0 or more (capped at %v)", req.Wait, s.cfg.MaxWait)
	}
	return min(d, s.cfg.MaxWait), nil
}

// awaitSome waits on the pending tasks until need of them are done (or
// unknown) or wait runs out, filling tasks and missing. One waiter per
// task; the brokers' AwaitTask is what the single-task wait uses too.
func (s *Server) awaitSome(ctx context.Context, qname string, ids []string, pending []int, need int, wait time.Duration,
	tasks []*queue.TaskInfo, missing []bool) error {
	wctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	type res struct {
		i   int
		t   *queue.TaskInfo
		err error
	}
	ch := make(chan res, len(pending))
	var wg sync.WaitGroup
	for _, i := range pending {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t, err := s.insp.Await(wctx, qname, ids[i])
			ch <- res{i, t, err}
		}()
	}
	var firstErr error
	got := 0
	for range pending {
		x := <-ch
		switch {
		case x.err == nil:
			tasks[x.i] = x.t
			got++
		case errors.Is(x.err, queue.ErrTaskNotFound):
			missing[x.i] = true
			got++
		case wctx.Err() != nil:
			// Ran out of time (or the client left): the task stays pending.
		case firstErr == nil:
			firstErr = x.err
			cancel()
		}
		if got >= need {
			// Enough: stop the other waiters, but keep what they found
			// before they saw the cancel.
			cancel()
		}
	}
	wg.Wait()
	if firstErr != nil && ctx.Err() == nil {
		return firstErr
	}
	return nil
}

// cancelTasksView is the body of POST /api/v1/tasks:cancel.
type cancelTasksView struct {
	Results []cancelResult `json:"results"`
}

// cancelResult is the outcome of cancelling one task: Was is the state it
// was in (as POST /tasks/{id}/cancel), or Error says why it was not
// cancelled (invalid_state for a finished task, task_not_found).
type cancelResult struct {
	ID    string      `json:"id"`
	Was   queue.State `json:"was,omitempty"`
	Error *apiError   `json:"error,omitempty"`
}

// apiCancelTasks: POST /api/v1/tasks:cancel {"ids": [...], "queue": Q}.
// Cancels each task as POST /tasks/{id}/cancel does (waiting ones are dead
// at once, running ones are asked to stop) and answers 200 with one result
// per id, in order; per-task failures are in the results, not the status.
func (s *Server) apiCancelTasks(w http.ResponseWriter, r *http.Request) {
	req, err := s.parseBatchIDs(w, r, false)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ctx := r.Context()
	out := cancelTasksView{Results: make([]cancelResult, len(req.IDs))}
	for i, id := range req.IDs {
		out.Results[i].ID = id
		qname := req.Queue
		if qname == "" {
			t, err := s.insp.Task(ctx, "", id)
			if err != nil {
				if !errors.Is(err, queue.ErrTaskNotFound) && !errors.Is(err, queue.ErrInvalidOption) {
					s.fail(w, r, err)
					return
				}
				out.Results[i].Error = errorBody(err)
				continue
			}
			qname = t.Queue
		}
		was, err := s.insp.CancelTask(ctx, qname, id)
		if err != nil {
			if status, _ := classify(err); status >= 500 {
				s.fail(w, r, err)
				return
			}
			out.Results[i].Error = errorBody(err)
			continue
		}
		out.Results[i].Was = was
	}
	writeJSON(w, http.StatusOK, out)
}

// errorBody is an error in the API's form, for per-item results.
func errorBody(err error) *apiError {
	_, code := classify(err)
	return &apiError{Code: code, Message: err.Error()}
}
