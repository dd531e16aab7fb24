package server

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/conqhq/conq/queue"
)

// The enqueue body is a spec.Task: same names, grammar and ranges as
// the CLI and the schedule file.
func TestEnqueueTaskSpec(t *testing.T) {
	ts := newTestServer(t, Config{})
	// What the Python client sends: durations as numbers of seconds.
	r := ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k", "process_in": 60, "retention": 3600.5, "timeout": "1m30s"})
	expectStatus(t, r, http.StatusCreated)
	if m := r.json(t); m["retention"] != "1h0m0.5s" || m["timeout"] != "1m30s" || m["state"] != "scheduled" {
		t.Fatalf("durations: %s", r.body)
	}
	// A call's arguments: encoding "args".
	r = ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "add", "args": []int{2}, "kwargs": map[string]int{"b": 3}})
	expectStatus(t, r, http.StatusCreated)
	m := r.json(t)
	stored, err := ts.b.GetTask(context.Background(), "", m["id"].(string))
	if err != nil || stored.Encoding != queue.EncodingArgs || string(stored.Payload) != `{"args":[2],"kwargs":{"b":3}}` {
		t.Fatalf("stored %+v, %v", stored, err)
	}
	// Unique tasks.
	body := map[string]any{"kind": "sync", "unique": "1h", "unique_key": "user:42"}
	expectStatus(t, ts.do(t, "POST", "/api/v1/tasks", body), http.StatusCreated)
	r = ts.do(t, "POST", "/api/v1/tasks", body)
	expectStatus(t, r, http.StatusConflict)
	if c := r.errCode(t); c != "duplicate_task" {
		t.Fatalf("code %q", c)
	}

	// Batch: top-level options are defaults; errors name the task and field.
	r = ts.do(t, "POST", "/api/v1/tasks", map[string]any{"max_retries": 1, "tasks": []any{
		map[string]any{"kind": "a"}, map[string]any{"kind": "b", "max_retries": 2},
	}})
	expectStatus(t, r, http.StatusCreated)
	if !strings.Contains(string(r.body), `"max_retries": 1`) || !strings.Contains(string(r.body), `"max_retries": 2`) {
		t.Fatalf("batch: %s", r.body)
	}
	r = ts.do(t, "POST", "/api/v1/tasks", map[string]any{"tasks": []any{map[string]any{"kind": "a"}, map[string]any{"kind": "b", "max_retries": -1}}})
	expectStatus(t, r, http.StatusBadRequest)
	if !strings.Contains(string(r.body), "tasks[1]: max_retries -1: must be in 0..1000000") {
		t.Fatalf("batch error: %s", r.body)
	}
}

// Repros (issue 8): absurd numbers are refused with 400 naming the field
// and range, never stored or turned into a broker error.
func TestEnqueueRanges(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, c := range []struct{ body, want string }{
		{`{"kind":"k","max_retries":9223372036854775807}`, "max_retries 9223372036854775807: must be in 0..1000000"},
		{`{"kind":"k","max_retries":1e30}`, "max_retries 1e30: not an integer"},
		{`{"kind":"k","timeout":1e300}`, "timeout 1e300: is too large for a duration"},
		{`{"kind":"k","process_in":"-1s"}`, "process_in -1s: must not be negative"},
		{`{"kind":"k","retention":"1000000h"}`, "retention 1000000h0m0s: is over the maximum of 100 years"},
		{`{"kind":"k","deadline":"9999-12-31T00:00:00Z"}`, "deadline 9999-12-31T00:00:00Z: is outside 1970-01-01 to 2200-01-01"},
		{`{"kind":"k","in":"1s"}`, `unknown field "in"`},
		{`{"tasks":[{"kind":"k"}],"payload":1}`, `a batch gives kind, payload and id per task`},
		{`{"tasks":{}}`, `"tasks": want a JSON array`},
		{`null`, "want a JSON object"},
	} {
		r := ts.do(t, "POST", "/api/v1/tasks", c.body)
		msg, _ := r.json(t)["error"].(map[string]any)["message"].(string)
		if r.status != http.StatusBadRequest || r.errCode(t) != "invalid_argument" || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %s; want 400 mentioning %q", c.body, r.status, r.body, c.want)
		}
	}
	for _, q := range []string{"wait=NaN", "wait=1e300", "wait=-1s", "wait=soon"} {
		expectStatus(t, ts.do(t, "GET", "/api/v1/tasks/x/result?"+q, nil), http.StatusBadRequest)
	}
	expectStatus(t, ts.do(t, "GET", "/api/v1/tasks/x/result?wait=0.01", nil), http.StatusNotFound)
}

// Repro (issue 8): offset=100000000000000000 answered 503 with a Lua
// error on Redis; it is 400, and the largest offset allowed is an empty
// page.
func TestListOffsetRange(t *testing.T) {
	for name, ts := range map[string]*testServer{"memory": newTestServer(t, Config{}), "redis": newTestServer(t, Config{Broker: redisBroker(t)})} {
		t.Run(name, func(t *testing.T) {
			expectStatus(t, ts.do(t, "POST", "/api/v1/tasks", map[string]any{"kind": "k"}), http.StatusCreated)
			r := ts.do(t, "GET", "/api/v1/queues/default/tasks?offset=100000000000000000", nil)
			expectStatus(t, r, http.StatusBadRequest)
			if !strings.Contains(string(r.body), "want a number in 0..1000000000") {
				t.Fatalf("body %s", r.body)
			}
			r = ts.do(t, "GET", "/api/v1/queues/default/tasks?offset=1000000000&limit=1000", nil)
			expectStatus(t, r, http.StatusOK)
			if tasks, _ := r.json(t)["tasks"].([]any); len(tasks) != 0 {
				t.Fatalf("page past the end: %s", r.body)
			}
		})
	}
}

// Repro (issue 8): a POST without Content-Type was accepted although the
// docs promise 415.
func TestEnqueueNeedsContentType(t *testing.T) {
	ts := newTestServer(t, Config{})
	for ct, want := range map[string]int{
		"":                                  http.StatusUnsupportedMediaType,
		"text/plain":                        http.StatusUnsupportedMediaType,
		"application/jsonx":                 http.StatusUnsupportedMediaType,
		"application/json; charset=utf-8":   http.StatusCreated,
		"Application/JSON":                  http.StatusCreated,
		"application/x-www-form-urlencoded": http.StatusUnsupportedMediaType,
	} {
		req, _ := http.NewRequest("POST", ts.url+"/api/v1/tasks", strings.NewReader(`{"kind":"k"}`))
		if ct != "" {
			req.Header.Set("Content-Type", ct)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || (want == 415 && !strings.Contains(string(body), "unsupported_media_type")) {
			t.Errorf("Content-Type %q: %d %s, want %d", ct, resp.StatusCode, body, want)
		}
	}
}

// Repro (issue 8): "/\t/evil.example" passed the redirect check and
// browsers read "Location: /\t/evil.example" as http://evil.example.
func TestLocalPath(t *testing.T) {
	for _, p := range []string{"/", "/queues/default?state=dead", "/queues/a%2Fb/tasks/x", "/a/b/../c", "/é"} {
		if got := localPath(p, "/fallback"); got != p {
			t.Errorf("localPath(%q) = %q, want it kept", p, got)
		}
	}
	for _, p := range []string{"", "queues", "//evil.example", "/\\evil.example", "/\t/evil.example", "/\n/evil.example",
		"/\r/evil", "\t//evil", "/x\x00", "/x\x7f", "/x/../\\evil", "https://evil.example", " /x", "/" + strings.Repeat("a", maxRedirectPath)} {
		if got := localPath(p, "/fallback"); got != "/fallback" {
			t.Errorf("localPath(%q) = %q, want the fallback", p, got)
		}
	}
}

func TestLoginRedirectStaysLocal(t *testing.T) {
	ts := newTestServer(t, Config{AuthToken: testToken})
	r := ts.do(t, "GET", "/login", nil)
	csrf := cookie(r, csrfCookie)
	for _, next := range []string{"/\t/evil.example", "//evil.example", "/\\evil.example", "/x/../\\evil.example"} {
		form := url.Values{"token": {testToken}, "csrf_token": {csrf}, "next": {next}}
		r := ts.do(t, "POST", "/login", form.Encode(), "Content-Type", "application/x-www-form-urlencoded", "Cookie", csrfCookie+"="+csrf)
		expectStatus(t, r, http.StatusSeeOther)
		if loc := r.header.Get("Location"); loc != "/" {
			t.Errorf("next=%q: Location %q, want /", next, loc)
		}
	}
}

// Repro (issue 8): the session cookie still worked after logout.
func TestLogoutEndsSession(t *testing.T) {
	ts := newTestServer(t, Config{AuthToken: testToken})
	r := ts.do(t, "GET", "/login", nil)
	csrf := cookie(r, csrfCookie)
	form := url.Values{"token": {testToken}, "csrf_token": {csrf}, "next": {"/"}}
	r = ts.do(t, "POST", "/login", form.Encode(), "Content-Type", "application/x-www-form-urlencoded", "Cookie", csrfCookie+"="+csrf)
	session := cookie(r, sessionCookie)
	cookies := []string{"Cookie", sessionCookie + "=" + session + "; " + csrfCookie + "=" + csrf}
	expectStatus(t, ts.do(t, "GET", "/api/v1/queues", nil, cookies...), http.StatusOK)
	other := ts.newSession(ts.clock.Now()) // another browser's session

	r = ts.do(t, "POST", "/logout", url.Values{"csrf_token": {csrf}}.Encode(), append(cookies, "Content-Type", "application/x-www-form-urlencoded")...)
	expectStatus(t, r, http.StatusSeeOther)
	// The old cookie, replayed, no longer works: not for the API, not for
	// the dashboard.
	expectStatus(t, ts.do(t, "GET", "/api/v1/queues", nil, cookies...), http.StatusUnauthorized)
	expectStatus(t, ts.do(t, "GET", "/queues/default", nil, cookies...), http.StatusSeeOther)
	// Other sessions go on.
	expectStatus(t, ts.do(t, "GET", "/api/v1/queues", nil, "Cookie", sessionCookie+"="+other), http.StatusOK)
}

// Repro (issue 8): /static/ served a directory listing.
func TestStaticNoListing(t *testing.T) {
	ts := newTestServer(t, Config{})
	for _, p := range []string{"/static/", "/static", "/static/./"} {
		r := ts.do(t, "GET", p, nil)
		if r.status == http.StatusOK || strings.Contains(string(r.body), "app.js") {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	expectStatus(t, ts.do(t, "GET", "/static/app.js", nil), http.StatusOK)
	expectStatus(t, ts.do(t, "GET", "/static/style.css", nil), http.StatusOK)
}
