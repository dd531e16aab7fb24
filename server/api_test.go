package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	"github.com/conqhq/conq/queue/broker/memory"
)

func TestEnqueueAndGetTask(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "email.send", "payload": map[string]any{"to": "a@b"}})
	expectStatus(t, r, http.StatusCreated)
	m := r.json(t)
	id, _ := m["id"].(string)
	if id == "" || m["queue"] != "default" || m["state"] != "pending" || m["kind"] != "email.send" {
		t.Fatalf("enqueue answer: %s", r.body)
	}
	if p, _ := m["payload"].(map[string]any); p["to"] != "a@b" {
		t.Fatalf("payload not echoed as JSON: %s", r.body)
	}

	r = ts.do(t, "GET", "/api/v1/tasks/"+id, nil)
	expectStatus(t, r, http.StatusOK)
	if got := r.json(t); got["id"] != id || got["max_retries"] != float64(queue.DefaultMaxRetries) {
		t.Fatalf("task: %s", r.body)
	}
	// The payload is stored as compact JSON, which Go handlers decode.
	stored, err := ts.b.GetTask(context.Background(), "", id)
	if err != nil || string(stored.Payload) != `{"to":"a@b"}` {
		t.Fatalf("stored payload %q, %v", stored.Payload, err)
	}

	r = ts.do(t, "GET", "/api/v1/tasks/nope", nil)
	expectStatus(t, r, http.StatusNotFound)
	if c := r.errCode(t); c != "task_not_found" {
		t.Fatalf("code %q", c)
	}
	r = ts.do(t, "GET", "/api/v1/tasks/"+id+"?queue=other", nil)
	expectStatus(t, r, http.StatusNotFound)
}

func TestEnqueueOptions(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(t, "POST", "/api/v1/tasks", map[string]any{
		"kind": "report", "payload": []int{1, 2}, "queue": "reports", "max_retries": 2, "timeout": "2s",
		"process_in": 60, "retention": "1h", "id": "report-1",
	})
	expectStatus(t, r, http.StatusCreated)
	m := r.json(t)
	if m["id"] != "report-1" || m["queue"] != "reports" || m["state"] != "scheduled" || m["max_retries"] != 2.0 ||
		m["timeout"] != "2s" || m["retention"] != "1h0m0s" || m["process_at"] == nil {
		t.Fatalf("options not applied: %s", r.body)
	}
	// Binary payloads come in and go out as base64.
	raw := []byte{0, 1, 0xff}
	r = ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "blob", "payload_base64": base64.StdEncoding.EncodeToString(raw)})
	expectStatus(t, r, http.StatusCreated)
	if got := r.json(t)["payload_base64"]; got != base64.StdEncoding.EncodeToString(raw) {
		t.Fatalf("payload_base64 = %v", got)
	}
}

func TestEnqueueBadInput(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, tc := range []struct {
		name   string
		body   any
		ctype  string
		status int
		code   string
	}{
		{"malformed JSON", `{"kind":`, "", 400, "invalid_argument"},
		{"empty body", ``, "", 400, "invalid_argument"},
		{"unknown field", `{"kind":"k","retries":3}`, "", 400, "invalid_argument"},
		{"missing kind", `{"payload":1}`, "", 400, "invalid_argument"},
		{"kind with space", `{"kind":"a b"}`, "", 400, "invalid_argument"},
		{"negative retries", `{"kind":"k","max_retries":-1}`, "", 400, "invalid_argument"},
		{"bad queue name", `{"kind":"k","queue":"a/b"}`, "", 400, "invalid_argument"},
		{"bad duration", `{"kind":"k","timeout":"soon"}`, "", 400, "invalid_argument"},
		{"both payloads", `{"kind":"k","payload":1,"payload_base64":"AA=="}`, "", 400, "invalid_argument"},
		{"bad base64", `{"kind":"k","payload_base64":"!!"}`, "", 400, "invalid_argument"},
		{"two values", `{"kind":"k"}{"kind":"k"}`, "", 400, "invalid_argument"},
		{"empty batch", `{"tasks":[]}`, "", 400, "invalid_argument"},
		{"kind beside batch", `{"kind":"k","tasks":[{"kind":"k"}]}`, "", 400, "invalid_argument"},
		{"form content type", `kind=k`, "application/x-www-form-urlencoded", 415, "unsupported_media_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []string{}
			if tc.ctype != "" {
				hdr = []string{"Content-Type", tc.ctype}
			}
			r := ts.do(t, "POST", "/api/v1/tasks", tc.body, hdr...)
			expectStatus(t, r, tc.status)
			if c := r.errCode(t); c != tc.code {
				t.Fatalf("code %q, want %q", c, tc.code)
			}
		})
	}
}

func TestEnqueueDuplicateID(t *testing.T) {
	ts := newTestServer(t, Config{})
	body := map[string]any{"kind": "k", "id": "once"}
	expectStatus(t, ts.do(t, "POST", "/api/v1/tasks", body), http.StatusCreated)
	r := ts.do(t, "POST", "/api/v1/tasks", body)
	expectStatus(t, r, http.StatusConflict)
	if c := r.errCode(t); c != "duplicate_id" {
		t.Fatalf("code %q", c)
	}
}

func TestEnqueueTooLarge(t *testing.T) {
	ts := newTestServer(t, Config{MaxPayloadSize: 100, MaxBodyBytes: 1000})
	r := ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k", "payload": strings.Repeat("x", 200)})
	expectStatus(t, r, http.StatusRequestEntityTooLarge)
	if c := r.errCode(t); c != "payload_too_large" {
		t.Fatalf("code %q", c)
	}
	r = ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k", "payload": strings.Repeat("x", 2000)})
	expectStatus(t, r, http.StatusRequestEntityTooLarge)
	if c := r.errCode(t); c != "body_too_large" {
		t.Fatalf("code %q", c)
	}
}

func TestEnqueueMany(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(t, "POST", "/api/v1/tasks", map[string]any{
		"queue": "batch", "max_retries": 1,
		"tasks": []any{
			map[string]any{"kind": "a", "payload": 1},
			map[string]any{"kind": "b", "payload": 2, "queue": "other", "id": "b-1"},
		},
	})
	expectStatus(t, r, http.StatusCreated)
	tasks, _ := r.json(t)["tasks"].([]any)
	if len(tasks) != 2 {
		t.Fatalf("tasks: %s", r.body)
	}
	a, b := tasks[0].(map[string]any), tasks[1].(map[string]any)
	if a["queue"] != "batch" || a["max_retries"] != 1.0 || b["queue"] != "other" || b["id"] != "b-1" {
		t.Fatalf("batch defaults not applied: %s", r.body)
	}

	// One duplicate: the others are stored, the answer names the failure.
	r = ts.do(t, "POST", "/api/v1/tasks", map[string]any{"queue": "other", "tasks": []any{
		map[string]any{"kind": "c"}, map[string]any{"kind": "b", "id": "b-1"},
	}})
	expectStatus(t, r, http.StatusConflict)
	m := r.json(t)
	tasks, _ = m["tasks"].([]any)
	errs, _ := m["errors"].([]any)
	if len(tasks) != 2 || tasks[0] == nil || tasks[1] != nil || len(errs) != 2 || errs[0] != nil {
		t.Fatalf("partial batch: %s", r.body)
	}
	if e := errs[1].(map[string]any); e["code"] != "duplicate_id" {
		t.Fatalf("item error: %v", e)
	}
	if c := r.errCode(t); c != "duplicate_id" {
		t.Fatalf("top-level code %q", c)
	}
	// An invalid item rejects the whole batch before anything is stored.
	r = ts.do(t, "POST", "/api/v1/tasks", map[string]any{"tasks": []any{map[string]any{"kind": "ok"}, map[string]any{}}})
	expectStatus(t, r, http.StatusBadRequest)
	if !strings.Contains(string(r.body), "tasks[1]") {
		t.Fatalf("error does not name the item: %s", r.body)
	}
}

// TestEnqueueManyMinimal: Prefer: return=minimal answers with the tasks'
// IDs and queues only, compact, and says so; failures keep their errors.
func TestEnqueueManyMinimal(t *testing.T) {
	ts := newTestServer(t, Config{})
	body := map[string]any{"tasks": []any{
		map[string]any{"kind": "a", "args": []int{1}},
		map[string]any{"kind": "b", "payload": 2, "id": "m-1"},
	}}
	r := ts.do(t, "POST", "/api/v1/tasks", body, "Prefer", "respond-async, return=minimal")
	expectStatus(t, r, http.StatusCreated)
	if got := r.header.Get("Preference-Applied"); got != "return=minimal" {
		t.Fatalf("Preference-Applied %q", got)
	}
	if bytes.Contains(r.body, []byte("\n ")) || bytes.Contains(r.body, []byte("kind")) {
		t.Fatalf("not a compact list of IDs: %s", r.body)
	}
	tasks, _ := r.json(t)["tasks"].([]any)
	if len(tasks) != 2 || len(tasks[0].(map[string]any)) != 2 || tasks[1].(map[string]any)["id"] != "m-1" || tasks[1].(map[string]any)["queue"] != "default" {
		t.Fatalf("tasks: %s", r.body)
	}
	if _, err := ts.b.GetTask(context.Background(), "", tasks[0].(map[string]any)["id"].(string)); err != nil {
		t.Fatalf("the first task is not stored: %v", err)
	}
	// A duplicate ID: the error is there as without the preference.
	r = ts.do(t, "POST", "/api/v1/tasks", body, "Prefer", "return=minimal")
	expectStatus(t, r, http.StatusConflict)
	m := r.json(t)
	tasks, _ = m["tasks"].([]any)
	errs, _ := m["errors"].([]any)
	if len(tasks) != 2 || tasks[0] == nil || tasks[1] != nil || len(errs) != 2 || errs[1].(map[string]any)["code"] != "duplicate_id" {
		t.Fatalf("partial batch: %s", r.body)
	}
	// One task: {"id": ...} only.
	r = ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "one"}, "Prefer", "return=minimal")
	expectStatus(t, r, http.StatusCreated)
	if m := r.json(t); len(m) != 2 || m["id"] == "" || m["queue"] != "default" || r.header.Get("Preference-Applied") != "return=minimal" {
		t.Fatalf("single minimal answer: %s", r.body)
	}
	// Without the preference: the full views, as always.
	r = ts.do(t, "POST", "/api/v1/tasks", map[string]any{"tasks": []any{map[string]any{"kind": "c"}}})
	expectStatus(t, r, http.StatusCreated)
	if r.header.Get("Preference-Applied") != "" || !bytes.Contains(r.body, []byte(`"kind": "c"`)) {
		t.Fatalf("full answer expected: %s", r.body)
	}
}

// complete fetches the pending task id of q and completes it with result.
func complete(t *testing.T, b broker.Broker, q, id string, result []byte) {
	t.Helper()
	ctx := context.Background()
	ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{q}, Max: 1, Lease: time.Minute, WorkerID: "test-worker"})
	if err != nil || len(ts) != 1 || ts[0].ID != id {
		t.Fatalf("fetch %s: %v %v", id, ts, err)
	}
	if err := b.Complete(ctx, broker.Ack{LeaseRef: broker.LeaseRef{Queue: q, ID: id, Token: ts[0].Token}, Result: result}); err != nil {
		t.Fatal(err)
	}
}

func TestResult(t *testing.T) {
	ts := newTestServer(t, Config{})
	done := enqueue(t, ts.b, "sum", []byte(`[1,2]`), queue.Queue("r1"), queue.Retention(time.Hour))
	complete(t, ts.b, "r1", done.ID, []byte(`{"sum":3}`))
	r := ts.do(t, "GET", "/api/v1/tasks/"+done.ID+"/result", nil)
	expectStatus(t, r, http.StatusOK)
	m := r.json(t)
	if m["done"] != true || m["state"] != "completed" || m["result"].(map[string]any)["sum"] != 3.0 {
		t.Fatalf("result: %s", r.body)
	}

	// Not done: 202 after the wait.
	pending := enqueue(t, ts.b, "sum", nil, queue.Queue("r2"), queue.Retention(time.Hour))
	start := time.Now()
	r = ts.do(t, "GET", "/api/v1/tasks/"+pending.ID+"/result?wait=100ms", nil)
	expectStatus(t, r, http.StatusAccepted)
	if el := time.Since(start); el < 90*time.Millisecond {
		t.Fatalf("answered after %v, before the wait", el)
	}
	if m := r.json(t); m["done"] != false || m["state"] != "pending" {
		t.Fatalf("not-done answer: %s", r.body)
	}

	// Done during the wait.
	go func() {
		time.Sleep(50 * time.Millisecond)
		complete(t, ts.b, "r2", pending.ID, []byte("not json"))
	}()
	r = ts.do(t, "GET", "/api/v1/tasks/"+pending.ID+"/result?wait=5s", nil)
	expectStatus(t, r, http.StatusOK)
	if m := r.json(t); m["result_base64"] != base64.StdEncoding.EncodeToString([]byte("not json")) {
		t.Fatalf("binary result: %s", r.body)
	}

	// Dead: 200 with the errors.
	dead := enqueue(t, ts.b, "div", nil, queue.Queue("r3"))
	kill(t, ts.b, "r3", dead.ID, "division by zero")
	r = ts.do(t, "GET", "/api/v1/tasks/"+dead.ID+"/result?wait=1s", nil)
	expectStatus(t, r, http.StatusOK)
	m = r.json(t)
	le, _ := m["last_error"].(map[string]any)
	if m["state"] != "dead" || m["done"] != true || le["message"] != "division by zero" || le["stack"] == "" {
		t.Fatalf("dead result: %s", r.body)
	}

	r = ts.do(t, "GET", "/api/v1/tasks/none/result?wait=10ms", nil)
	expectStatus(t, r, http.StatusNotFound)
	if !strings.Contains(string(r.body), "retention") {
		t.Fatalf("404 does not explain retention: %s", r.body)
	}
	expectStatus(t, ts.do(t, "GET", "/api/v1/tasks/x/result?wait=soon", nil), http.StatusBadRequest)
}

func TestQueuesAndTaskLists(t *testing.T) {
	ts := newTestServer(t, Config{})
	for range 3 {
		enqueue(t, ts.b, "k", nil, queue.Queue("alpha"))
	}
	d := enqueue(t, ts.b, "k", []byte(`"dead one"`), queue.Queue("beta"))
	kill(t, ts.b, "beta", d.ID, "boom")

	r := ts.do(t, "GET", "/api/v1/queues", nil)
	expectStatus(t, r, http.StatusOK)
	qs, _ := r.json(t)["queues"].([]any)
	if len(qs) != 2 {
		t.Fatalf("queues: %s", r.body)
	}
	alpha := qs[0].(map[string]any)
	if alpha["name"] != "alpha" || alpha["counts"].(map[string]any)["pending"] != 3.0 {
		t.Fatalf("alpha: %v", alpha)
	}

	r = ts.do(t, "GET", "/api/v1/queues/beta", nil)
	expectStatus(t, r, http.StatusOK)
	if r.json(t)["counts"].(map[string]any)["dead"] != 1.0 {
		t.Fatalf("beta: %s", r.body)
	}

	r = ts.do(t, "GET", "/api/v1/queues/beta/tasks?state=dead", nil)
	expectStatus(t, r, http.StatusOK)
	m := r.json(t)
	tasks, _ := m["tasks"].([]any)
	if len(tasks) != 1 || m["total"] != 1.0 || tasks[0].(map[string]any)["id"] != d.ID {
		t.Fatalf("dead list: %s", r.body)
	}
	r = ts.do(t, "GET", "/api/v1/queues/alpha/tasks?limit=2&offset=1", nil)
	expectStatus(t, r, http.StatusOK)
	if tasks, _ := r.json(t)["tasks"].([]any); len(tasks) != 2 {
		t.Fatalf("paged list: %s", r.body)
	}
	for _, bad := range []string{"state=zombie", "limit=0", "limit=5000", "offset=-1"} {
		expectStatus(t, ts.do(t, "GET", "/api/v1/queues/alpha/tasks?"+bad, nil), http.StatusBadRequest)
	}
	r = ts.do(t, "GET", "/api/v1/queues/nope/tasks", nil)
	expectStatus(t, r, http.StatusNotFound)
	if c := r.errCode(t); c != "queue_not_found" {
		t.Fatalf("code %q", c)
	}
	r = ts.do(t, "PUT", "/api/v1/tasks/x", nil)
	expectStatus(t, r, http.StatusMethodNotAllowed)
	if c := r.errCode(t); c != "method_not_allowed" || r.header.Get("Allow") != "GET, DELETE" {
		t.Fatalf("code %q, Allow %q", c, r.header.Get("Allow"))
	}
	r = ts.do(t, "GET", "/api/v1/nothing", nil)
	expectStatus(t, r, http.StatusNotFound)
	if c := r.errCode(t); c != "not_found" {
		t.Fatalf("code %q", c)
	}
}

func TestRetryAndDelete(t *testing.T) {
	ts := newTestServer(t, Config{})
	d := enqueue(t, ts.b, "k", nil, queue.Queue("q"), queue.TaskID("a/b?c%"))
	kill(t, ts.b, "q", d.ID, "boom")
	path := "/api/v1/tasks/" + url.PathEscape(d.ID)

	r := ts.do(t, "POST", path+"/retry", nil)
	expectStatus(t, r, http.StatusOK)
	if m := r.json(t); m["state"] != "pending" || len(m["errors"].([]any)) != 1 {
		t.Fatalf("retried task: %s", r.body)
	}
	r = ts.do(t, "POST", path+"/retry", nil)
	expectStatus(t, r, http.StatusConflict)
	if c := r.errCode(t); c != "invalid_state" {
		t.Fatalf("code %q", c)
	}

	// An active task cannot be deleted.
	fetched, err := ts.b.Fetch(context.Background(), broker.FetchParams{Queues: []string{"q"}, Max: 1, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(fetched) != 1 {
		t.Fatal(fetched, err)
	}
	r = ts.do(t, "DELETE", path, nil)
	expectStatus(t, r, http.StatusConflict)
	if err := ts.b.Requeue(context.Background(), broker.LeaseRef{Queue: "q", ID: d.ID, Token: fetched[0].Token}); err != nil {
		t.Fatal(err)
	}
	r = ts.do(t, "DELETE", path, nil)
	expectStatus(t, r, http.StatusNoContent)
	expectStatus(t, ts.do(t, "GET", path, nil), http.StatusNotFound)
	expectStatus(t, ts.do(t, "DELETE", path, nil), http.StatusNotFound)
	expectStatus(t, ts.do(t, "POST", path+"/retry", nil), http.StatusNotFound)
}

func TestPauseResume(t *testing.T) {
	ts := newTestServer(t, Config{})
	enqueue(t, ts.b, "k", nil, queue.Queue("p"))
	r := ts.do(t, "POST", "/api/v1/queues/p/pause", nil)
	expectStatus(t, r, http.StatusOK)
	if r.json(t)["paused"] != true {
		t.Fatalf("pause: %s", r.body)
	}
	if got, _ := ts.b.Fetch(context.Background(), broker.FetchParams{Queues: []string{"p"}, Max: 1, Lease: time.Minute, WorkerID: "w"}); len(got) != 0 {
		t.Fatal("fetched from a paused queue")
	}
	r = ts.do(t, "POST", "/api/v1/queues/p/resume", nil)
	expectStatus(t, r, http.StatusOK)
	if r.json(t)["paused"] != false {
		t.Fatalf("resume: %s", r.body)
	}
	expectStatus(t, ts.do(t, "POST", "/api/v1/queues/bad%20name/pause", nil), http.StatusBadRequest)
}

func TestTokenAuth(t *testing.T) {
	ts := newTestServer(t, Config{AuthToken: testToken})
	bearer := []string{"Authorization", "Bearer " + testToken}

	r := ts.do(t, "GET", "/api/v1/queues", nil)
	expectStatus(t, r, http.StatusUnauthorized)
	if c := r.errCode(t); c != "unauthorized" || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("401 without challenge or code %q", c)
	}
	expectStatus(t, ts.do(t, "GET", "/api/v1/queues", nil, "Authorization", "Bearer wrong-token-0123456789"), http.StatusUnauthorized)
	expectStatus(t, ts.do(t, "GET", "/api/v1/queues", nil, bearer...), http.StatusOK)
	expectStatus(t, ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k"}), http.StatusUnauthorized)
	expectStatus(t, ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k"}, bearer...), http.StatusCreated)
	expectStatus(t, ts.do(t, "GET", "/metrics", nil), http.StatusUnauthorized)
	expectStatus(t, ts.do(t, "GET", "/metrics", nil, bearer...), http.StatusOK)
	expectStatus(t, ts.do(t, "GET", "/healthz", nil), http.StatusOK)
	expectStatus(t, ts.do(t, "GET", "/static/app.js", nil), http.StatusOK)

	// The dashboard sends browsers to the login page.
	r = ts.do(t, "GET", "/queues/default", nil)
	expectStatus(t, r, http.StatusSeeOther)
	if loc := r.header.Get("Location"); !strings.HasPrefix(loc, "/login?next=") {
		t.Fatalf("redirect to %q", loc)
	}
	r = ts.do(t, "GET", "/login", nil)
	expectStatus(t, r, http.StatusOK)
	csrf := cookie(r, csrfCookie)
	if csrf == "" {
		t.Fatal("login page set no CSRF cookie")
	}
	login := func(token, csrfField string) response {
		form := url.Values{"token": {token}, "csrf_token": {csrfField}, "next": {"/queues/default"}}
		return ts.do(t, "POST", "/login", form.Encode(), "Content-Type", "application/x-www-form-urlencoded",
			"Cookie", csrfCookie+"="+csrf)
	}
	expectStatus(t, login(testToken, "wrong"), http.StatusForbidden)
	r = login("wrong-token-0123456789", csrf)
	expectStatus(t, r, http.StatusSeeOther)
	if cookie(r, sessionCookie) != "" || !strings.Contains(r.header.Get("Location"), "failed=1") {
		t.Fatal("a wrong token logged in")
	}
	r = login(testToken, csrf)
	expectStatus(t, r, http.StatusSeeOther)
	session := cookie(r, sessionCookie)
	if session == "" || r.header.Get("Location") != "/queues/default" {
		t.Fatalf("login: session %q, location %q", session, r.header.Get("Location"))
	}
	cookies := []string{"Cookie", sessionCookie + "=" + session + "; " + csrfCookie + "=" + csrf}
	expectStatus(t, ts.do(t, "GET", "/queues/default", nil, cookies...), http.StatusOK)
	// The session cookie works for the API too (the dashboard's polling),
	// but state changes need the CSRF header with it.
	expectStatus(t, ts.do(t, "GET", "/api/v1/queues", nil, cookies...), http.StatusOK)
	r = ts.do(t, "POST", "/api/v1/queues/default/pause", nil, cookies...)
	expectStatus(t, r, http.StatusForbidden)
	if c := r.errCode(t); c != "csrf" {
		t.Fatalf("code %q", c)
	}
	expectStatus(t, ts.do(t, "POST", "/api/v1/queues/default/pause", nil, append(cookies, csrfHeader, csrf)...), http.StatusOK)
	// Forged or expired sessions are refused.
	expectStatus(t, ts.do(t, "GET", "/api/v1/queues", nil, "Cookie", sessionCookie+"="+session+"x"), http.StatusUnauthorized)
	expired := ts.newSession(time.Now().Add(-2 * sessionTTL))
	expectStatus(t, ts.do(t, "GET", "/api/v1/queues", nil, "Cookie", sessionCookie+"="+expired), http.StatusUnauthorized)
}

func cookie(r response, name string) string {
	for _, c := range (&http.Response{Header: r.header}).Cookies() {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func TestBasicAuth(t *testing.T) {
	ts := newTestServer(t, Config{BasicAuthUser: "admin", BasicAuthPassword: "hunter22"})
	r := ts.do(t, "GET", "/", nil)
	expectStatus(t, r, http.StatusUnauthorized)
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
		t.Fatalf("no basic challenge: %v", r.header)
	}
	good := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:hunter22"))
	bad := "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:nope"))
	expectStatus(t, ts.do(t, "GET", "/", nil, "Authorization", good), http.StatusOK)
	expectStatus(t, ts.do(t, "GET", "/api/v1/queues", nil, "Authorization", bad), http.StatusUnauthorized)
	expectStatus(t, ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k"}, "Authorization", good), http.StatusCreated)
	// Basic credentials are ambient: forms still need the CSRF token.
	expectStatus(t, ts.do(t, "POST", "/queues/default/pause", "", "Authorization", good,
		"Content-Type", "application/x-www-form-urlencoded"), http.StatusForbidden)
}

func TestDashboardCSRF(t *testing.T) {
	ts := newTestServer(t, Config{})
	d := enqueue(t, ts.b, "k", nil, queue.Queue("c"))
	kill(t, ts.b, "c", d.ID, "boom")
	r := ts.do(t, "GET", "/queues/c?state=dead", nil)
	expectStatus(t, r, http.StatusOK)
	csrf := cookie(r, csrfCookie)
	if csrf == "" || !strings.Contains(string(r.body), `name="csrf_token" value="`+csrf+`"`) {
		t.Fatal("page has no CSRF token matching its cookie")
	}
	post := func(field, cookieVal string) response {
		form := url.Values{"csrf_token": {field}, "next": {"/queues/c?state=dead"}}
		return ts.do(t, "POST", "/queues/c/tasks/"+d.ID+"/retry", form.Encode(),
			"Content-Type", "application/x-www-form-urlencoded", "Cookie", csrfCookie+"="+cookieVal)
	}
	expectStatus(t, post("", csrf), http.StatusForbidden)
	expectStatus(t, post(csrf, strings.Repeat("0", 64)), http.StatusForbidden)
	r = post(csrf, csrf)
	expectStatus(t, r, http.StatusSeeOther)
	if loc := r.header.Get("Location"); loc != "/queues/c?done=retried&state=dead" {
		t.Fatalf("redirect to %q", loc)
	}
	if got, _ := ts.b.GetTask(context.Background(), "c", d.ID); got.State != queue.StatePending {
		t.Fatalf("state %s after retry", got.State)
	}
	// "next" cannot send the browser elsewhere.
	form := url.Values{"csrf_token": {csrf}, "next": {"//evil.example/"}}
	r = ts.do(t, "POST", "/queues/c/pause", form.Encode(), "Content-Type", "application/x-www-form-urlencoded", "Cookie", csrfCookie+"="+csrf)
	expectStatus(t, r, http.StatusSeeOther)
	if loc := r.header.Get("Location"); !strings.HasPrefix(loc, "/queues/c?") {
		t.Fatalf("open redirect to %q", loc)
	}
}

func TestCrossOriginAndHost(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k"}, "Sec-Fetch-Site", "cross-site")
	expectStatus(t, r, http.StatusForbidden)
	if c := r.errCode(t); c != "cross_origin" {
		t.Fatalf("code %q", c)
	}
	expectStatus(t, ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k"}, "Origin", "http://evil.example"), http.StatusForbidden)
	expectStatus(t, ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k"}, "Sec-Fetch-Site", "same-origin"), http.StatusCreated)

	// Without auth only loopback Host names are served (DNS rebinding).
	req, _ := http.NewRequest("GET", ts.url+"/api/v1/queues", nil)
	req.Host = "rebind.evil.example"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("foreign Host: status %d", resp.StatusCode)
	}
	req.Host = "localhost:1234"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("localhost Host: status %d", resp.StatusCode)
	}

	// Behind a proxy (AllowInsecure) the Host is the proxy's public name.
	proxied := newTestServer(t, Config{AllowInsecure: true})
	req, _ = http.NewRequest("GET", proxied.url+"/api/v1/queues", nil)
	req.Host = "dash.example.com"
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("AllowInsecure with a public Host: status %d", resp.StatusCode)
	}
}

func TestSecurityHeaders(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, path := range []string{"/", "/api/v1/queues", "/static/app.js", "/queues/none"} {
		r := ts.do(t, "GET", path, nil)
		csp := r.header.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows inline code: %q", path, csp)
		}
		if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: headers %v", path, r.header)
		}
	}
	r := ts.do(t, "GET", "/static/app.js", nil)
	if ct := r.header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Fatalf("app.js content type %q", ct)
	}
	r = ts.do(t, "GET", "/", nil)
	if strings.Contains(string(r.body), "<script>") || strings.Contains(string(r.body), " style=") {
		t.Fatal("dashboard has inline script or style, which the CSP blocks")
	}
}

func TestPayloadEscaping(t *testing.T) {
	ts := newTestServer(t, Config{})
	evil := `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`
	for _, payload := range [][]byte{[]byte(evil), []byte(`{"html":"` + strings.ReplaceAll(evil, `"`, `\"`) + `"}`)} {
		d := enqueue(t, ts.b, "k", payload, queue.Queue("x"))
		kill(t, ts.b, "x", d.ID, `</pre><script>alert("error")</script>`)
		for _, path := range []string{"/queues/x?state=dead", "/queues/x/tasks/" + d.ID} {
			r := ts.do(t, "GET", path, nil)
			expectStatus(t, r, http.StatusOK)
			body := string(r.body)
			for _, bad := range []string{"<script>window", "<img src=x", `<script>alert`} {
				if strings.Contains(body, bad) {
					t.Fatalf("%s renders %q unescaped", path, bad)
				}
			}
			if !strings.Contains(body, "&lt;script&gt;window.pwned=1&lt;/script&gt;") {
				t.Fatalf("%s does not show the payload as text:\n%s", path, body)
			}
		}
	}
}

func TestNonLoopbackRefusal(t *testing.T) {
	b := func() Config { return Config{Broker: nopBroker{}, Logger: quietLogger(), SampleInterval: -1} }
	for _, tc := range []struct {
		addr  string
		token string
		ok    bool
	}{
		{"127.0.0.1:8080", "", true},
		{"localhost:8080", "", true},
		{"[::1]:8080", "", true},
		{"127.0.0.2:0", "", true},
		{"0.0.0.0:8080", "", false},
		{":8080", "", false},
		{"[::]:8080", "", false},
		{"10.1.2.3:8080", "", false},
		{"example.com:8080", "", false},
		{"0.0.0.0:8080", testToken, true},
	} {
		cfg := b()
		cfg.Addr, cfg.AuthToken = tc.addr, tc.token
		_, err := New(cfg)
		if tc.ok && err != nil {
			t.Errorf("%s (token %v): %v", tc.addr, tc.token != "", err)
		}
		if !tc.ok && !errors.Is(err, ErrInsecureListen) {
			t.Errorf("%s without auth: err %v, want ErrInsecureListen", tc.addr, err)
		}
	}
	cfg := b()
	cfg.Addr, cfg.BasicAuthUser, cfg.BasicAuthPassword = "0.0.0.0:1", "u", "p"
	if _, err := New(cfg); err != nil {
		t.Errorf("basic auth on a public address: %v", err)
	}
	cfg = b()
	cfg.Addr, cfg.AllowInsecure = "0.0.0.0:1", true
	if _, err := New(cfg); err != nil {
		t.Errorf("AllowInsecure: %v", err)
	}
	cfg = b()
	cfg.AuthToken = "short"
	if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), "too short") {
		t.Errorf("short token: %v", err)
	}
	cfg = b()
	cfg.BasicAuthUser = "u"
	if _, err := New(cfg); err == nil {
		t.Error("basic auth without password accepted")
	}
	if _, err := New(Config{}); err == nil {
		t.Error("nil broker accepted")
	}
}

// nopBroker is a broker.Broker whose methods are never called.
type nopBroker struct{ broker.Broker }

// Clock and Capabilities are read by New.
func (nopBroker) Clock() broker.Clock             { return broker.SystemClock{} }
func (nopBroker) Capabilities() broker.Capability { return 0 }

func TestMetricsScrape(t *testing.T) {
	ts := newTestServer(t, Config{})
	for range 2 {
		expectStatus(t, ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "mail", "queue": "m"}), http.StatusCreated)
	}
	expectStatus(t, ts.do(t, "POST", "/api/v1/queues/m/pause", nil), http.StatusOK)
	r := ts.do(t, "GET", "/metrics", nil)
	expectStatus(t, r, http.StatusOK)
	body := string(r.body)
	for _, want := range []string{
		`conq_tasks_enqueued_total{kind="mail",queue="m"} 2`,
		`conq_queue_tasks{queue="m",state="pending"} 2`,
		`conq_queue_tasks{queue="m",state="dead"} 0`,
		`conq_queue_paused{queue="m"} 1`,
		`conq_broker_up 1`,
		`conq_http_requests_total{code="201",route="POST /api/v1/tasks"} 2`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

func TestBrokerDown(t *testing.T) {
	ts := newTestServer(t, Config{})
	_ = ts.b.Close()
	r := ts.do(t, "GET", "/api/v1/queues", nil)
	expectStatus(t, r, http.StatusServiceUnavailable)
	if c := r.errCode(t); c != "broker_unavailable" {
		t.Fatalf("code %q", c)
	}
	expectStatus(t, ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k"}), http.StatusServiceUnavailable)
	expectStatus(t, ts.do(t, "GET", "/healthz", nil), http.StatusServiceUnavailable)
	expectStatus(t, ts.do(t, "GET", "/", nil), http.StatusServiceUnavailable)
	if r := ts.do(t, "GET", "/metrics", nil); !strings.Contains(string(r.body), "conq_broker_up 0") {
		t.Fatalf("metrics do not report the broker down:\n%s", r.body)
	}
}

func TestThroughput(t *testing.T) {
	tp := newThroughput(time.Second, 4)
	q := func(completed, dead int64) []queue.QueueInfo {
		return []queue.QueueInfo{{Name: "a", Counts: map[queue.State]int64{queue.StateCompleted: completed, queue.StateDead: dead}}}
	}
	now := time.Now()
	tp.record(now, q(10, 1), true) // first sample: no delta yet
	tp.record(now, q(15, 3), true)
	tp.record(now, nil, false)     // broker down: gap
	tp.record(now, q(20, 3), true) // after a gap: no delta
	tp.record(now, q(18, 4), true) // completed tasks expired: never negative
	v := tp.snapshot()
	got := func(s []*float64) string {
		var parts []string
		for _, p := range s {
			if p == nil {
				parts = append(parts, "-")
			} else {
				parts = append(parts, fmt.Sprint(*p))
			}
		}
		return strings.Join(parts, " ")
	}
	if p, f := got(v.Processed), got(v.Failed); p != "5 - - 0" || f != "2 - - 1" {
		t.Fatalf("processed %q failed %q", p, f)
	}

	// A broker without counters (the core roles only): the sampler's
	// estimate.
	ts := newTestServer(t, Config{Broker: brokertest.WithoutOptional(memory.New(memory.Config{})), SampleInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ts.Run(ctx)
	enqueue(t, ts.b, "k", nil, queue.Queue("t"), queue.Retention(time.Hour))
	time.Sleep(50 * time.Millisecond)
	info := enqueue(t, ts.b, "k", nil, queue.Queue("t"), queue.Retention(time.Hour))
	_ = info
	r := ts.do(t, "GET", "/api/v1/throughput", nil)
	expectStatus(t, r, http.StatusOK)
	m := r.json(t)
	if m["interval_seconds"] != 0.01 || len(m["processed"].([]any)) != int(time.Hour/(10*time.Millisecond)) || m["note"] == "" || m["source"] != "estimate" {
		t.Fatalf("throughput answer: %.300s", r.body)
	}
	if r := ts.do(t, "GET", "/api/v1/throughput?queue=t", nil); r.status != http.StatusBadRequest {
		t.Fatalf("per-queue estimate: %d %s", r.status, r.body)
	}
}
