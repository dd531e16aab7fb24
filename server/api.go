package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/spec"
)

// apiTask is a task as the API shows it. Payload and result are inlined
// when they are JSON, else base64-encoded in the *_base64 field.
type apiTask struct {
	ID            string               `json:"id"`
	Kind          string               `json:"kind"`
	Queue         string               `json:"queue"`
	State         queue.State          `json:"state"`
	Payload       json.RawMessage      `json:"payload,omitempty"`
	PayloadBase64 string               `json:"payload_base64,omitempty"`
	Encoding      string               `json:"encoding"`
	MaxRetries    int                  `json:"max_retries"`
	Timeout       string               `json:"timeout,omitempty"`
	Deadline      *time.Time           `json:"deadline,omitempty"`
	Retention     string               `json:"retention,omitempty"`
	EnqueuedAt    time.Time            `json:"enqueued_at"`
	ProcessAt     *time.Time           `json:"process_at,omitempty"`
	Attempts      int                  `json:"attempts"`
	Errors        []queue.AttemptError `json:"errors,omitempty"`
	Result        json.RawMessage      `json:"result,omitempty"`
	ResultBase64  string               `json:"result_base64,omitempty"`
	StartedAt     *time.Time           `json:"started_at,omitempty"`
	CompletedAt   *time.Time           `json:"completed_at,omitempty"`
	LeaseUntil    *time.Time           `json:"lease_until,omitempty"`
	WorkerID      string               `json:"worker_id,omitempty"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func durString(d time.Duration) string {
	if d == 0 {
		return ""
	}
	return d.String()
}

// jsonOrBase64 returns b as raw JSON if it is valid JSON, else base64.
func jsonOrBase64(b []byte) (json.RawMessage, string) {
	if len(b) == 0 {
		return nil, ""
	}
	if json.Valid(b) {
		return json.RawMessage(b), ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}

func viewTask(t *queue.TaskInfo) *apiTask {
	v := &apiTask{
		ID: t.ID, Kind: t.Kind, Queue: t.Queue, State: t.State, Encoding: cmp.Or(t.Encoding, queue.EncodingRaw), MaxRetries: t.MaxRetries,
		Timeout: durString(t.Timeout), Deadline: timePtr(t.Deadline), Retention: durString(t.Retention),
		EnqueuedAt: t.EnqueuedAt, ProcessAt: timePtr(t.ProcessAt), Attempts: t.Attempts, Errors: t.Errors,
		StartedAt: timePtr(t.StartedAt), CompletedAt: timePtr(t.CompletedAt), WorkerID: t.WorkerID,
	}
	if t.State == queue.StateActive {
		v.LeaseUntil = timePtr(t.LeaseUntil)
	}
	v.Payload, v.PayloadBase64 = jsonOrBase64(t.Payload)
	v.Result, v.ResultBase64 = jsonOrBase64(t.Result)
	return v
}

// apiError is the body of every error response.
type apiError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		fmt.Fprintf(&buf, `{"error":{"code":"internal","message":%q}}`+"\n", "encode response: "+err.Error())
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// writeMinimal answers a request that preferred return=minimal: compact
// JSON, saying the preference was applied.
func writeMinimal(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Preference-Applied", "return=minimal")
	writeCompactJSON(w, status, v)
}

// writeCompactJSON is writeJSON without the indentation, for answers
// that programs read (Prefer: return=minimal).
func writeCompactJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeJSON(w, status, v) // the same error answer as writeJSON's
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]apiError{"error": {Code: code, Message: msg}})
}

// classify maps an error to an HTTP status and an error code.
func classify(err error) (int, string) {
	var mbe *http.MaxBytesError
	var ptl *queue.PayloadTooLargeError
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, "body_too_large"
	case errors.As(err, &ptl):
		return http.StatusRequestEntityTooLarge, "payload_too_large"
	case errors.Is(err, errMediaType):
		return http.StatusUnsupportedMediaType, "unsupported_media_type"
	case errors.Is(err, queue.ErrInvalidOption), errors.Is(err, errBadRequest):
		return http.StatusBadRequest, "invalid_argument"
	case errors.Is(err, queue.ErrTaskNotFound):
		return http.StatusNotFound, "task_not_found"
	case errors.Is(err, queue.ErrQueueNotFound):
		return http.StatusNotFound, "queue_not_found"
	case errors.Is(err, queue.ErrTaskIDConflict):
		return http.StatusConflict, "duplicate_id"
	case errors.Is(err, queue.ErrDuplicateTask):
		return http.StatusConflict, "duplicate_task"
	case errors.Is(err, queue.ErrInvalidState):
		return http.StatusConflict, "invalid_state"
	case errors.Is(err, queue.ErrUnsupported):
		return http.StatusNotImplemented, "not_supported"
	}
	// Anything else comes from the broker's storage: unreachable, closed,
	// timing out.
	return http.StatusServiceUnavailable, "broker_unavailable"
}

// errMediaType: a request body that is not JSON.
var errMediaType = errors.New("unsupported media type")

// errBadRequest marks malformed requests (bad JSON, bad parameters).
var errBadRequest = errors.New("bad request")

func badRequest(format string, a ...any) error {
	return fmt.Errorf("%s: %w", fmt.Sprintf(format, a...), errBadRequest)
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := classify(err)
	msg := err.Error()
	if errors.Is(err, errBadRequest) {
		msg = strings.TrimSuffix(msg, ": "+errBadRequest.Error())
	}
	if status >= 500 && status != http.StatusNotImplemented {
		s.log.Error("server: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "broker unavailable: " + msg
	}
	writeError(w, status, code, msg)
}

// enqueueRequest is the body of POST /api/v1/tasks: one task
// specification (spec.Task), or many in "tasks" with the top-level
// options as the defaults of each.
type enqueueRequest struct {
	single   *spec.Task
	defaults spec.Task
	tasks    []spec.Task
	built    []*queue.Task // tasks as validated and built, one per element of tasks
}

// batchOnlyPerTask are the fields a batch gives per task, not as defaults.
var batchOnlyPerTask = []string{"kind", "payload", "payload_base64", "payload_text", "args", "kwargs", "id"}

// parseEnqueue decodes an enqueue body (one JSON value, already read
// through the size limit).
func parseEnqueue(body []byte) (*enqueueRequest, error) {
	var top map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&top); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, badRequest("empty request body: send a JSON object")
		}
		return nil, badRequest("malformed JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, badRequest("malformed JSON body: more than one JSON value")
	}
	if top == nil {
		return nil, badRequest("malformed JSON body: want a JSON object, not null")
	}
	raw, batch := top["tasks"]
	if !batch {
		var spec spec.Task
		if err := json.Unmarshal(body, &spec); err != nil {
			return nil, err
		}
		if err := spec.Validate(); err != nil {
			return nil, err
		}
		return &enqueueRequest{single: &spec}, nil
	}
	for _, f := range batchOnlyPerTask {
		if _, ok := top[f]; ok {
			return nil, badRequest("a batch gives kind, payload and id per task, inside \"tasks\" (%q is at the top)", f)
		}
	}
	// Errors in the order they always came: the list's shape, the
	// defaults, then the first bad task.
	tasks, bad, listErr := spec.ParseList(raw)
	switch {
	case listErr != nil && bad < 0:
		return nil, badRequest("\"tasks\": want a JSON array of task objects")
	case listErr == nil && len(tasks) == 0:
		return nil, badRequest("empty \"tasks\" list")
	}
	delete(top, "tasks")
	rest, err := json.Marshal(top)
	if err != nil {
		return nil, badRequest("malformed JSON body: %v", err)
	}
	req := &enqueueRequest{tasks: tasks}
	if err := json.Unmarshal(rest, &req.defaults); err != nil {
		return nil, err
	}
	if listErr != nil {
		return nil, fmt.Errorf("tasks[%d]: %w", bad, listErr)
	}
	for i := range req.tasks {
		req.tasks[i] = req.tasks[i].WithDefaults(req.defaults)
	}
	req.built = make([]*queue.Task, len(req.tasks))
	for i := range req.tasks {
		t, err := req.tasks[i].Task() // validates
		if err != nil {
			return nil, fmt.Errorf("tasks[%d]: %w", i, err)
		}
		req.built[i] = t
	}
	return req, nil
}

// readJSONBody reads a JSON request body through the size limit. The body
// must be declared JSON: Content-Type application/json (any parameters),
// anything else or nothing is 415.
func (s *Server) readJSONBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if ct == "" {
		return nil, fmt.Errorf("no Content-Type: send the body as application/json: %w", errMediaType)
	}
	if err != nil || mt != "application/json" {
		return nil, fmt.Errorf("Content-Type %q: send application/json: %w", ct, errMediaType)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, fmt.Errorf("request body is over the limit of %d bytes: %w", s.cfg.MaxBodyBytes, err)
		}
		return nil, badRequest("reading the request body: %v", err)
	}
	return body, nil
}

// apiEnqueue: POST /api/v1/tasks.
func (s *Server) apiEnqueue(w http.ResponseWriter, r *http.Request) {
	body, err := s.readJSONBody(w, r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	req, err := parseEnqueue(body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if req.single != nil {
		task, err := req.single.Task()
		if err != nil {
			s.fail(w, r, err)
			return
		}
		info, err := s.client.Enqueue(r.Context(), task)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		s.enqueued.Observe(info)
		if preferMinimal(r) {
			writeMinimal(w, http.StatusCreated, idView{ID: info.ID, Queue: info.Queue})
			return
		}
		writeJSON(w, http.StatusCreated, viewTask(info))
		return
	}
	tasks := req.built
	infos, err := s.client.EnqueueMany(r.Context(), tasks)
	var be *queue.BatchError
	if err != nil && (!errors.As(err, &be) || len(be.Errs) != len(tasks)) {
		s.fail(w, r, err)
		return
	}
	s.enqueued.Observe(infos...)
	out := struct {
		Error  *apiError   `json:"error,omitempty"`
		Tasks  []any       `json:"tasks"`
		Errors []*apiError `json:"errors,omitempty"`
	}{Tasks: make([]any, len(tasks))}
	status := http.StatusCreated
	minimal := preferMinimal(r)
	for i, info := range infos {
		switch {
		case info == nil:
			out.Tasks[i] = nil
		case minimal:
			out.Tasks[i] = idView{ID: info.ID, Queue: info.Queue}
		default:
			out.Tasks[i] = viewTask(info)
		}
	}
	if be != nil {
		out.Errors = make([]*apiError, len(tasks))
		failed := 0
		for i, e := range be.Errs {
			if e == nil {
				continue
			}
			st, code := classify(e)
			if failed == 0 {
				status = st
			}
			failed++
			out.Errors[i] = &apiError{Code: code, Message: e.Error()}
		}
		first := out.Errors[0]
		for _, e := range out.Errors {
			if e != nil {
				first = e
				break
			}
		}
		out.Error = &apiError{Code: first.Code, Message: fmt.Sprintf("%d of %d tasks failed; first: %s", failed, len(tasks), first.Message)}
	}
	if minimal {
		writeMinimal(w, status, out)
		return
	}
	writeJSON(w, status, out)
}

// idView is an enqueued task answered with Prefer: return=minimal: its
// ID and queue (where a client waits for it).
type idView struct {
	ID    string `json:"id"`
	Queue string `json:"queue"`
}

// preferMinimal reports whether the request asks for a minimal answer
// (RFC 7240 "Prefer: return=minimal"): an enqueue then answers each
// task with its ID and queue only, compact. A client enqueueing
// thousands of calls a second reads nothing else, and encoding (and
// decoding) every task's full view was a fifth of the server's cost of a
// batch.
func preferMinimal(r *http.Request) bool {
	for _, h := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(h, ",") {
			if strings.EqualFold(strings.TrimSpace(p), "return=minimal") {
				return true
			}
		}
	}
	return false
}

// apiGetTask: GET /api/v1/tasks/{id}[?queue=Q].
func (s *Server) apiGetTask(w http.ResponseWriter, r *http.Request) {
	t, err := s.insp.Task(r.Context(), r.URL.Query().Get("queue"), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewTask(t))
}

// resultView is the body of GET /api/v1/tasks/{id}/result.
type resultView struct {
	ID           string               `json:"id"`
	Queue        string               `json:"queue"`
	Kind         string               `json:"kind"`
	State        queue.State          `json:"state"`
	Done         bool                 `json:"done"`
	Result       json.RawMessage      `json:"result,omitempty"`
	ResultBase64 string               `json:"result_base64,omitempty"`
	Attempts     int                  `json:"attempts"`
	LastError    *queue.AttemptError  `json:"last_error,omitempty"`
	Errors       []queue.AttemptError `json:"errors,omitempty"`
}

// apiResult: GET /api/v1/tasks/{id}/result[?wait=10s&queue=Q]. 200 when
// the task is done (completed or dead), 202 when the wait ran out first.
func (s *Server) apiResult(w http.ResponseWriter, r *http.Request) {
	id, qname := r.PathValue("id"), r.URL.Query().Get("queue")
	var wait time.Duration
	if v := r.URL.Query().Get("wait"); v != "" {
		d, err := spec.ParseDuration(v)
		if err != nil || d < 0 {
			s.fail(w, r, badRequest("wait=%q: want a duration like 10s or a number of seconds, 0 or more (capped at %v)", v, s.cfg.MaxWait))
			return
		}
		wait = min(d, s.cfg.MaxWait)
	}
	t, err := s.insp.Task(r.Context(), qname, id)
	if err == nil && !done(t) && wait > 0 {
		ctx, cancel := context.WithTimeout(r.Context(), wait)
		var at *queue.TaskInfo
		at, err = s.insp.Await(ctx, qname, id)
		cancel()
		switch {
		case err == nil:
			t = at
		case ctx.Err() != nil && r.Context().Err() == nil:
			// The wait ran out: report the task as it is now.
			t, err = s.insp.Task(r.Context(), qname, id)
		}
	}
	if err != nil {
		if errors.Is(err, queue.ErrTaskNotFound) {
			writeError(w, http.StatusNotFound, "task_not_found", fmt.Sprintf(
				"task %s not found: never enqueued, deleted, or completed without retention (enqueue with \"retention\" to keep results)", id))
			return
		}
		s.fail(w, r, err)
		return
	}
	v := viewResult(t)
	status := http.StatusOK
	if !v.Done {
		status = http.StatusAccepted
	}
	writeJSON(w, status, v)
}

// viewResult is a task as a result answer.
func viewResult(t *queue.TaskInfo) resultView {
	v := resultView{ID: t.ID, Queue: t.Queue, Kind: t.Kind, State: t.State, Done: done(t), Attempts: t.Attempts, Errors: t.Errors}
	if t.State == queue.StateCompleted {
		v.Result, v.ResultBase64 = jsonOrBase64(t.Result)
	}
	if n := len(t.Errors); n > 0 && t.State == queue.StateDead {
		v.LastError = &t.Errors[n-1]
	}
	return v
}

func done(t *queue.TaskInfo) bool {
	return t.State == queue.StateCompleted || t.State == queue.StateDead
}

// apiRetryTask: POST /api/v1/tasks/{id}/retry[?queue=Q].
func (s *Server) apiRetryTask(w http.ResponseWriter, r *http.Request) {
	id, qname := r.PathValue("id"), r.URL.Query().Get("queue")
	t, err := s.insp.Task(r.Context(), qname, id)
	if err == nil {
		err = s.insp.RetryTask(r.Context(), t.Queue, id)
	}
	if err == nil {
		t, err = s.insp.Task(r.Context(), t.Queue, id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, viewTask(t))
}

// cancelView is the body of POST /api/v1/tasks/{id}/cancel.
type cancelView struct {
	// Was is the state the task was in: "active" means the cancellation
	// was requested and the worker ends the attempt at its next lease
	// renewal; any other state means the task is dead already.
	Was  queue.State `json:"was"`
	Task *apiTask    `json:"task"`
}

// apiCancelTask: POST /api/v1/tasks/{id}/cancel[?queue=Q].
func (s *Server) apiCancelTask(w http.ResponseWriter, r *http.Request) {
	id, qname := r.PathValue("id"), r.URL.Query().Get("queue")
	t, err := s.insp.Task(r.Context(), qname, id)
	var was queue.State
	if err == nil {
		was, err = s.insp.CancelTask(r.Context(), t.Queue, id)
	}
	if err == nil {
		t, err = s.insp.Task(r.Context(), t.Queue, id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cancelView{Was: was, Task: viewTask(t)})
}

// apiWorkers: GET /api/v1/workers.
func (s *Server) apiWorkers(w http.ResponseWriter, r *http.Request) {
	ws, err := s.insp.Workers(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if ws == nil {
		ws = []queue.WorkerInfo{}
	}
	for i := range ws {
		if ws[i].Running == nil {
			ws[i].Running = []queue.RunningTask{}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"workers": ws})
}

// apiSchedules: GET /api/v1/schedules.
func (s *Server) apiSchedules(w http.ResponseWriter, r *http.Request) {
	es, err := s.insp.Schedules(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"schedules": es})
}

// apiDeleteTask: DELETE /api/v1/tasks/{id}[?queue=Q].
func (s *Server) apiDeleteTask(w http.ResponseWriter, r *http.Request) {
	id, qname := r.PathValue("id"), r.URL.Query().Get("queue")
	t, err := s.insp.Task(r.Context(), qname, id)
	if err == nil {
		err = s.insp.DeleteTask(r.Context(), t.Queue, id)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// apiQueues: GET /api/v1/queues.
func (s *Server) apiQueues(w http.ResponseWriter, r *http.Request) {
	qs, err := s.insp.Queues(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if qs == nil {
		qs = []queue.QueueInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"queues": qs})
}

// apiQueue: GET /api/v1/queues/{queue}.
func (s *Server) apiQueue(w http.ResponseWriter, r *http.Request) {
	q, err := s.insp.Queue(r.Context(), r.PathValue("queue"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

// pageParams reads state, offset and limit of a task list.
func pageParams(r *http.Request) (queue.State, int, int, error) {
	q := r.URL.Query()
	state := queue.StatePending
	if v := q.Get("state"); v != "" {
		st, err := queue.ParseState(v)
		if err != nil {
			return "", 0, 0, badRequest("%v", err)
		}
		state = st
	}
	offset, limit := 0, DefaultPageSize
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > queue.MaxListOffset {
			return "", 0, 0, badRequest("offset=%q: want a number in 0..%d", v, queue.MaxListOffset)
		}
		offset = n
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return "", 0, 0, badRequest("limit=%q: want a number in 1..1000", v)
		}
		limit = n
	}
	return state, offset, limit, nil
}

// apiQueueTasks: GET /api/v1/queues/{queue}/tasks?state=S&offset=N&limit=M.
func (s *Server) apiQueueTasks(w http.ResponseWriter, r *http.Request) {
	state, offset, limit, err := pageParams(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	info, err := s.insp.Queue(r.Context(), r.PathValue("queue"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ts, err := s.insp.Tasks(r.Context(), info.Name, state, offset, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	views := make([]*apiTask, len(ts))
	for i, t := range ts {
		views[i] = viewTask(t)
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"queue": info.Name, "state": state, "offset": offset, "limit": limit,
		"total": info.Counts[state], "tasks": views,
	})
}

// apiPause and apiResume: POST /api/v1/queues/{queue}/pause|resume.
func (s *Server) apiPause(w http.ResponseWriter, r *http.Request)  { s.apiSetPaused(w, r, true) }
func (s *Server) apiResume(w http.ResponseWriter, r *http.Request) { s.apiSetPaused(w, r, false) }

func (s *Server) apiSetPaused(w http.ResponseWriter, r *http.Request, paused bool) {
	name := r.PathValue("queue")
	var err error
	if paused {
		err = s.insp.PauseQueue(r.Context(), name)
	} else {
		err = s.insp.ResumeQueue(r.Context(), name)
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	q, err := s.insp.Queue(r.Context(), name)
	if errors.Is(err, queue.ErrQueueNotFound) {
		// Pausing a queue before it has tasks is allowed.
		q, err = queue.QueueInfo{Name: name, Paused: paused, Counts: map[queue.State]int64{}}, nil
	}
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, q)
}

// apiThroughput: GET /api/v1/throughput[?queue=Q&minutes=N]: the broker's
// counters when it keeps them, else the sampler's estimate.
func (s *Server) apiThroughput(w http.ResponseWriter, r *http.Request) {
	if s.stats {
		v, err := s.exactThroughput(r)
		if err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, v)
		return
	}
	if s.tp == nil {
		writeError(w, http.StatusNotFound, "not_enabled", "the broker keeps no throughput counters and sampling is off (SampleInterval < 0)")
		return
	}
	if r.URL.Query().Get("queue") != "" {
		s.fail(w, r, badRequest("queue=: per-queue throughput needs a broker that keeps counters"))
		return
	}
	writeJSON(w, http.StatusOK, s.tp.snapshot())
}

// apiNotFound answers unknown /api/ paths.
func (s *Server) apiNotFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no API route %s %s (see docs/http-api.md)", r.Method, r.URL.Path))
}

// healthz: GET /healthz — 200 if the broker answers, else 503.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	if _, err := s.insp.Queues(ctx); err != nil {
		// Unauthenticated: the cause (addresses, names) goes to the log only.
		s.log.Warn("server: health check: broker unavailable", "err", err)
		writeError(w, http.StatusServiceUnavailable, "broker_unavailable", "broker unavailable")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
