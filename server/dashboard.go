package server

import (
	"bytes"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/conqhq/conq/queue"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// templates holds one template set per page, each with the layout.
type templates struct{ pages map[string]*template.Template }

var pageNames = []string{"queues", "queue", "task", "workers", "schedules", "workflow", "workflows", "login", "error"}

func parseTemplates() (*templates, error) {
	funcs := template.FuncMap{
		"pathEscape": url.PathEscape,
		"pretty":     prettyBytes,
		"preview":    previewBytes,
		"since":      since,
		"ts":         formatTime,
		"iso":        func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
		"canRetry": func(st queue.State) bool {
			return st == queue.StateDead || st == queue.StateRetry || st == queue.StateScheduled
		},
		"canDelete": func(st queue.State) bool { return st != queue.StateActive },
		"canCancel": func(st queue.State) bool {
			return st == queue.StatePending || st == queue.StateScheduled || st == queue.StateRetry || st == queue.StateActive
		},
		"join":     strings.Join,
		"truncate": truncate,
		"lastError": func(t *queue.TaskInfo) string {
			if n := len(t.Errors); n > 0 {
				return truncate(t.Errors[n-1].Message, 160)
			}
			return ""
		},
		"add": func(a, b int) int { return a + b },
		"dict": func(kv ...any) (map[string]any, error) {
			if len(kv)%2 != 0 {
				return nil, fmt.Errorf("dict: odd number of arguments")
			}
			m := make(map[string]any, len(kv)/2)
			for i := 0; i < len(kv); i += 2 {
				k, ok := kv[i].(string)
				if !ok {
					return nil, fmt.Errorf("dict: key %v is not a string", kv[i])
				}
				m[k] = kv[i+1]
			}
			return m, nil
		},
	}
	ts := &templates{pages: make(map[string]*template.Template)}
	for _, name := range pageNames {
		t, err := template.New(name).Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		ts.pages[name] = t
	}
	return ts, nil
}

// page is what every template gets.
type page struct {
	Title    string
	CSRF     string
	Auth     string // "session" shows a log-out button
	Notice   string
	States   []queue.State
	Data     any
	Nav      string
	Path     string // this page's URI, for form redirects
	Interval int    // auto-refresh period in ms
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	p := page{
		Title: title, CSRF: s.csrfToken(w, r), States: queue.States, Data: data, Nav: name,
		Path: r.URL.RequestURI(), Interval: 2000, Notice: notices[r.URL.Query().Get("done")],
	}
	if kind, ok := s.authenticate(r); ok && kind == authSession {
		p.Auth = "session"
	}
	var buf bytes.Buffer
	if err := s.tmpl.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		s.log.Error("server: render page", "page", name, "err", err)
		http.Error(w, "500 internal error rendering the page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// notices are the messages shown after an action (fixed texts: nothing
// from the URL is reflected).
var notices = map[string]string{
	"retried":          "Task moved to pending.",
	"cancelled":        "Task cancelled: it is dead, with error kind \"cancelled\".",
	"cancel-requested": "Cancellation requested: the worker stops the task at its next lease renewal, and it ends dead with error kind \"cancelled\".",
	"deleted":          "Task deleted.",
	"wf-cancelled":     "Workflow cancelled: its waiting steps are cancelled, and its running ones asked to stop.",
	"paused":           "Queue paused: workers take none of its tasks until it is resumed.",
	"resumed":          "Queue resumed.",
}

func (s *Server) renderError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := classify(err)
	if status >= 500 {
		s.log.Error("server: dashboard request failed", "path", r.URL.Path, "err", err)
	}
	s.render(w, r, status, "error", http.StatusText(status), map[string]any{
		"Status": status, "Code": code, "Message": err.Error(),
	})
}

// dashQueues: GET / — every queue with its counts, and the throughput chart.
func (s *Server) dashQueues(w http.ResponseWriter, r *http.Request) {
	qs, err := s.insp.Queues(r.Context())
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	totals := map[queue.State]int64{}
	for _, q := range qs {
		for st, n := range q.Counts {
			totals[st] += n
		}
	}
	note := throughputNote
	if s.stats {
		note = exactNote
	}
	s.render(w, r, http.StatusOK, "queues", "Queues", map[string]any{
		"Queues": qs, "Totals": totals, "Chart": s.tp != nil || s.stats, "ChartNote": note,
	})
}

// dashQueue: GET /queues/{queue}?state=S&offset=N — one queue's tasks.
func (s *Server) dashQueue(w http.ResponseWriter, r *http.Request) {
	state, offset, limit, err := pageParams(r)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	info, err := s.insp.Queue(r.Context(), r.PathValue("queue"))
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	ts, err := s.insp.Tasks(r.Context(), info.Name, state, offset, limit)
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	prev := -1
	if offset > 0 {
		prev = max(offset-limit, 0)
	}
	next := -1
	if int64(offset+limit) < info.Counts[state] {
		next = offset + limit
	}
	s.render(w, r, http.StatusOK, "queue", "Queue "+info.Name, map[string]any{
		"Queue": info, "State": state, "Tasks": ts, "Offset": offset, "Limit": limit, "Prev": prev, "Next": next,
	})
}

// dashTask: GET /queues/{queue}/tasks/{id} — one task in full.
func (s *Server) dashTask(w http.ResponseWriter, r *http.Request) {
	t, err := s.insp.Task(r.Context(), r.PathValue("queue"), r.PathValue("id"))
	if err != nil {
		if wf := workflowOfTask(r.PathValue("id")); wf != "" && errors.Is(err, queue.ErrTaskNotFound) {
			// A step cancelled before its inputs were ready never had a
			// task; the workflow page says what became of it.
			s.render(w, r, http.StatusNotFound, "error", http.StatusText(http.StatusNotFound), map[string]any{
				"Status": http.StatusNotFound, "Code": "task_not_found", "Message": err.Error(),
				"Hint": "This is a step of workflow " + wf + ": a step that was cancelled before its inputs were ready never had a task, and a finished workflow's tasks expire with it.",
				"Link": "/workflows/" + url.PathEscape(wf), "LinkText": "Open workflow " + wf,
			})
			return
		}
		s.renderError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "task", "Task "+t.ID, map[string]any{"Task": t})
}

// dashWorkers: GET /workers — the live workers and what they run.
func (s *Server) dashWorkers(w http.ResponseWriter, r *http.Request) {
	ws, err := s.insp.Workers(r.Context())
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	running := 0
	for _, wk := range ws {
		running += len(wk.Running)
	}
	s.render(w, r, http.StatusOK, "workers", "Workers", map[string]any{"Workers": ws, "Running": running})
}

// dashSchedules: GET /schedules — the periodic entries of running schedulers.
func (s *Server) dashSchedules(w http.ResponseWriter, r *http.Request) {
	es, err := s.insp.Schedules(r.Context())
	if err != nil {
		s.renderError(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "schedules", "Scheduled", map[string]any{"Entries": es})
}

// dashAction runs a form action and redirects back to the page in "next".
func (s *Server) dashAction(done string, fn func(r *http.Request) error) http.HandlerFunc {
	return s.dashActionNotice(func(r *http.Request) (string, error) { return done, fn(r) })
}

// dashActionNotice is dashAction whose notice depends on the outcome.
func (s *Server) dashActionNotice(fn func(r *http.Request) (string, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		done, err := fn(r)
		if err != nil {
			s.renderError(w, r, err)
			return
		}
		fallback := "/queues/" + url.PathEscape(r.PathValue("queue"))
		if id := r.PathValue("id"); r.PathValue("queue") == "" && id != "" {
			fallback = "/workflows/" + url.PathEscape(id)
		}
		back := localPath(r.PostFormValue("next"), fallback)
		u, err := url.Parse(back)
		if err != nil {
			u = &url.URL{Path: "/"}
		}
		q := u.Query()
		q.Set("done", done)
		u.RawQuery = q.Encode()
		http.Redirect(w, r, u.RequestURI(), http.StatusSeeOther)
	}
}

func (s *Server) routesDashboard(mux *http.ServeMux, guard func(http.Handler) http.Handler) {
	handle := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, guard(h)) }
	handle("GET /{$}", s.dashQueues)
	handle("GET /queues/{queue}", s.dashQueue)
	handle("GET /queues/{queue}/tasks/{id}", s.dashTask)
	handle("POST /queues/{queue}/tasks/{id}/retry", s.dashAction("retried", func(r *http.Request) error {
		return s.insp.RetryTask(r.Context(), r.PathValue("queue"), r.PathValue("id"))
	}))
	handle("GET /workers", s.dashWorkers)
	handle("GET /workflows", s.dashWorkflows)
	handle("GET /workflows/{id}", s.dashWorkflow)
	handle("POST /workflows/{id}/cancel", s.dashActionNotice(func(r *http.Request) (string, error) {
		return "wf-cancelled", s.insp.CancelWorkflow(r.Context(), r.PathValue("id"))
	}))
	handle("GET /schedules", s.dashSchedules)
	handle("POST /queues/{queue}/tasks/{id}/cancel", s.dashActionNotice(func(r *http.Request) (string, error) {
		was, err := s.insp.CancelTask(r.Context(), r.PathValue("queue"), r.PathValue("id"))
		if was == queue.StateActive {
			return "cancel-requested", err
		}
		return "cancelled", err
	}))
	handle("POST /queues/{queue}/tasks/{id}/delete", s.dashAction("deleted", func(r *http.Request) error {
		return s.insp.DeleteTask(r.Context(), r.PathValue("queue"), r.PathValue("id"))
	}))
	handle("POST /queues/{queue}/pause", s.dashAction("paused", func(r *http.Request) error {
		return s.insp.PauseQueue(r.Context(), r.PathValue("queue"))
	}))
	handle("POST /queues/{queue}/resume", s.dashAction("resumed", func(r *http.Request) error {
		return s.insp.ResumeQueue(r.Context(), r.PathValue("queue"))
	}))
	static, _ := fs.Sub(staticFS, "static")
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(filesOnly{static})))
	mux.HandleFunc("GET /login", s.loginPage)
	mux.HandleFunc("POST /login", s.login)
	mux.HandleFunc("POST /logout", s.logout)
}

// loginPage: GET /login — asks for the auth token (token auth only).
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AuthToken == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", "Log in", map[string]any{
		"Next": localPath(r.URL.Query().Get("next"), "/"), "Failed": r.URL.Query().Get("failed") != "",
	})
}

// login: POST /login — checks the token and sets the session cookie.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if s.cfg.AuthToken == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if !s.validCSRF(r, r.PostFormValue(csrfField)) {
		http.Error(w, "403 forbidden: missing or wrong CSRF token; reload the page and try again", http.StatusForbidden)
		return
	}
	next := localPath(r.PostFormValue("next"), "/")
	if !equal(r.PostFormValue("token"), s.cfg.AuthToken) {
		s.log.Warn("server: failed dashboard login", "remote", r.RemoteAddr)
		time.Sleep(500 * time.Millisecond) // slows guessing down
		http.Redirect(w, r, "/login?failed=1&next="+url.QueryEscape(next), http.StatusSeeOther)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: s.newSession(s.clock.Now()), Path: "/",
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode, MaxAge: int(sessionTTL / time.Second)})
	http.Redirect(w, r, next, http.StatusSeeOther)
}

// filesOnly serves the files of an fs.FS and nothing for its directories,
// so /static/ lists nothing.
type filesOnly struct{ fs.FS }

func (f filesOnly) Open(name string) (fs.File, error) {
	file, err := f.FS.Open(name)
	if err != nil {
		return nil, err
	}
	if st, err := file.Stat(); err != nil || st.IsDir() {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return file, nil
}

// logout: POST /logout — ends the session server-side and drops its
// cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if !s.validCSRF(r, r.PostFormValue(csrfField)) {
		http.Error(w, "403 forbidden: missing or wrong CSRF token", http.StatusForbidden)
		return
	}
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.endSession(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// prettyBytes shows a payload or result as text: indented if JSON, as is
// if UTF-8, else base64. The template escapes it.
func prettyBytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if json.Valid(b) {
		var buf bytes.Buffer
		if json.Indent(&buf, b, "", "  ") == nil {
			return buf.String()
		}
	}
	if utf8.Valid(b) {
		return string(b)
	}
	return fmt.Sprintf("(binary, %d bytes, base64)\n%s", len(b), base64.StdEncoding.EncodeToString(b))
}

// previewBytes is a one-line preview of a payload.
func previewBytes(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if json.Valid(b) {
		var buf bytes.Buffer
		if json.Compact(&buf, b) == nil {
			return truncate(buf.String(), 120)
		}
	}
	if utf8.Valid(b) {
		return truncate(string(b), 120)
	}
	return fmt.Sprintf("(binary, %d bytes)", len(b))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func formatTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05.000 UTC")
}

// since renders how long ago t was, coarsely.
func since(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := time.Since(t)
	future := d < 0
	if future {
		d = -d
	}
	var s string
	switch {
	case d < time.Second:
		s = "now"
		return s
	case d < time.Minute:
		s = strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		s = strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		s = strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		s = strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}
