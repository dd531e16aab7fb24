package server

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/spec"
)

// FuzzEnqueueBody: any POST /api/v1/tasks body decodes into valid tasks
// or is refused as a bad request (400); nothing panics.
func FuzzEnqueueBody(f *testing.F) {
	for _, s := range []string{
		`{"kind": "email.send", "payload": {"to": "a@example.com"}, "queue": "mail", "max_retries": 3, "timeout": "30s", "process_in": 60, "retention": "1h", "id": "welcome-42"}`,
		`{"queue": "thumbs", "retention": "10m", "tasks": [{"kind": "thumb", "payload": {"img": 1}}, {"kind": "thumb", "payload": {"img": 2}, "id": "img-2"}]}`,
		`{"kind":"add","args":[2],"kwargs":{"b":3},"unique":3600,"unique_key":"k"}`,
		`{"kind":"blob","payload_base64":"AAH/"}`,
		`{"kind":"k","max_retries":9223372036854775807}`,
		`{"tasks":[]}`, `{"tasks":null}`, `{"kind":"k","tasks":[{"kind":"k"}]}`, `null`, `[]`, ``, `{"kind":"k"}{"kind":"k"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseEnqueue(body)
		if err != nil {
			if status, _ := classify(err); status != http.StatusBadRequest {
				t.Fatalf("status %d for %v", status, err)
			}
			return
		}
		specs := req.tasks
		if req.single != nil {
			specs = []spec.Task{*req.single}
		}
		if len(specs) == 0 {
			t.Fatal("no tasks and no error")
		}
		for i, s := range specs {
			if _, err := s.Task(); err != nil {
				// Only the clock can make a validated spec invalid (a
				// deadline that passed in between).
				if !strings.Contains(err.Error(), "has already passed") {
					t.Fatalf("task %d validated, then: %v", i, err)
				}
			}
		}
	})
}

// FuzzLocalPath: a redirect target localPath keeps stays on this server
// however a browser reads the Location header http.Redirect writes.
func FuzzLocalPath(f *testing.F) {
	for _, s := range []string{"/", "/queues/default?state=dead", "//evil.example", "/\\evil.example", "/\t/evil.example",
		"/x/../\\evil", "/%2F%2Fevil", "/.//evil", "/a/..//evil", "https://evil.example", "/\u3000/evil"} {
		f.Add(s)
	}
	base, _ := url.Parse("http://conq.local/queues/x")
	f.Fuzz(func(t *testing.T, p string) {
		got := localPath(p, "/fallback")
		if got != p && got != "/fallback" {
			t.Fatalf("localPath(%q) = %q", p, got)
		}
		w := httptest.NewRecorder()
		http.Redirect(w, httptest.NewRequest("GET", "/queues/x", nil), got, http.StatusSeeOther)
		loc := w.Header().Get("Location")
		// A browser drops TAB, CR and LF, and reads "\" as "/" (WHATWG URL).
		seen := strings.NewReplacer("\t", "", "\r", "", "\n", "", "\\", "/").Replace(strings.TrimLeft(loc, "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f "))
		if !strings.HasPrefix(seen, "/") || strings.HasPrefix(seen, "//") {
			t.Fatalf("localPath(%q) = %q: Location %q is not a local path to a browser", p, got, loc)
		}
		u, err := base.Parse(seen)
		if err == nil && u.Host != "conq.local" {
			t.Fatalf("localPath(%q): Location %q resolves to host %q", p, loc, u.Host)
		}
	})
}

// FuzzListParams: the query of GET /api/v1/queues/{q}/tasks is in range
// or refused as a bad request.
func FuzzListParams(f *testing.F) {
	for _, s := range []string{"", "state=dead&offset=10&limit=5", "offset=100000000000000000", "offset=-1", "limit=0", "limit=1001", "state=nope", "offset=%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		r := &http.Request{URL: &url.URL{RawQuery: q}}
		_, offset, limit, err := pageParams(r)
		if err != nil {
			if !errors.Is(err, errBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if offset < 0 || offset > queue.MaxListOffset || limit < 1 || limit > 1000 {
			t.Fatalf("%q: offset %d limit %d", q, offset, limit)
		}
	})
}
