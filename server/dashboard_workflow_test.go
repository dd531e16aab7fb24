package server

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// settleNext fetches the next task of q and completes it with res.
func settleNext(t *testing.T, b broker.Broker, q, res string) *broker.Task {
	t.Helper()
	ctx := context.Background()
	ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{q}, Max: 1, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(ts) != 1 {
		t.Fatalf("fetch from %s: %v %v", q, ts, err)
	}
	if err := b.Complete(ctx, broker.Ack{LeaseRef: ts[0].Ref(), Result: []byte(res)}); err != nil {
		t.Fatal(err)
	}
	return ts[0]
}

func TestDashboardWorkflow(t *testing.T) {
	ts := newTestServer(t, Config{})
	r := ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"chord":{"header":[{"task":{"kind":"add","args":[1,1]}},{"task":{"kind":"add","args":[2,2]}}],"body":{"task":{"kind":"tsum"}}}},"queue":"wq"}`)
	expectStatus(t, r, http.StatusCreated)
	id := r.json(t)["id"].(string)
	first := settleNext(t, ts.b, "wq", "2")

	page := ts.do(t, "GET", "/workflows/"+id, nil)
	expectStatus(t, page, http.StatusOK)
	html := string(page.body)
	for _, want := range []string{
		`data-workflow="` + id + `" data-workflow-running`,
		`<tr id="step-0" data-step="0" data-step-state="completed">`,
		`href="/queues/wq/tasks/` + id + `.0" data-step-task="0"`,
		`data-step-state="pending"`,
		`<span title="not enqueued yet">` + id + `.2</span>`, // the body waits: no task yet
		`<a href="#step-0">0</a>, <a href="#step-1">1</a>`,
		`data-action="cancel-workflow"`,
	} {
		if !strings.Contains(html, want) {
			t.Fatalf("workflow page lacks %q:\n%s", want, html)
		}
	}
	// The task page links back to its workflow.
	task := ts.do(t, "GET", "/queues/wq/tasks/"+first.ID, nil)
	expectStatus(t, task, http.StatusOK)
	if want := `href="/workflows/` + id + `#step-0"`; !strings.Contains(string(task.body), want) {
		t.Fatalf("task page lacks %q:\n%s", want, task.body)
	}
	// A step with no task: the 404 says so and links to the workflow.
	nf := ts.do(t, "GET", "/queues/wq/tasks/"+id+".2", nil)
	expectStatus(t, nf, http.StatusNotFound)
	if !strings.Contains(string(nf.body), `href="/workflows/`+id+`"`) || !strings.Contains(string(nf.body), "never had a task") {
		t.Fatalf("step 404:\n%s", nf.body)
	}

	// Cancel through the dashboard form.
	csrf := cookie(page, csrfCookie)
	form := url.Values{"csrf_token": {csrf}, "next": {"/workflows/" + id}}
	c := ts.do(t, "POST", "/workflows/"+id+"/cancel", form.Encode(), "Content-Type", "application/x-www-form-urlencoded", "Cookie", csrfCookie+"="+csrf)
	expectStatus(t, c, http.StatusSeeOther)
	if loc := c.header.Get("Location"); loc != "/workflows/"+id+"?done=wf-cancelled" {
		t.Fatalf("redirect to %q", loc)
	}
	html = string(ts.do(t, "GET", "/workflows/"+id, nil).body)
	for _, want := range []string{`state-cancelled" id="workflow-state"`, `id="workflow-error"`, `data-step-state="cancelled"`} {
		if !strings.Contains(html, want) {
			t.Fatalf("cancelled workflow page lacks %q:\n%s", want, html)
		}
	}
	if strings.Contains(html, "data-workflow-running") || strings.Contains(html, "cancel-workflow") {
		t.Fatal("a finished workflow still offers cancel / refresh")
	}

	// The lookup form redirects; absent workflows are named.
	l := ts.do(t, "GET", "/workflows?id="+url.QueryEscape(id), nil)
	expectStatus(t, l, http.StatusSeeOther)
	if l.header.Get("Location") != "/workflows/"+id {
		t.Fatalf("lookup redirect %q", l.header.Get("Location"))
	}
	// The list: newest first, with links, states and steps done; a state
	// filter; a pager.
	r = ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"task":{"kind":"add","args":[1,1]}},"queue":"wq"}`)
	expectStatus(t, r, http.StatusCreated)
	newer := r.json(t)["id"].(string)
	list := ts.do(t, "GET", "/workflows", nil)
	expectStatus(t, list, http.StatusOK)
	html = string(list.body)
	for _, want := range []string{
		`<tr data-workflow-row="` + id + `" data-workflow-row-state="cancelled">`,
		`<a href="/workflows/` + id + `">` + id + `</a>`,
		`<tr data-workflow-row="` + newer + `" data-workflow-row-state="running">`,
		`data-workflow-filter="failed"`,
		`id="workflow-id"`,
	} {
		if !strings.Contains(html, want) {
			t.Fatalf("workflow list lacks %q:\n%s", want, html)
		}
	}
	if strings.Index(html, `data-workflow-row="`+newer) > strings.Index(html, `data-workflow-row="`+id) {
		t.Fatal("workflow list is not newest first")
	}
	html = string(ts.do(t, "GET", "/workflows?state=cancelled", nil).body)
	if !strings.Contains(html, `data-workflow-row="`+id) || strings.Contains(html, `data-workflow-row="`+newer) {
		t.Fatalf("cancelled filter:\n%s", html)
	}
	if html := string(ts.do(t, "GET", "/workflows?state=failed", nil).body); !strings.Contains(html, `No failed workflows`) {
		t.Fatalf("failed filter:\n%s", html)
	}
	expectStatus(t, ts.do(t, "GET", "/workflows?state=stuck", nil), http.StatusBadRequest)
	html = string(ts.do(t, "GET", "/workflows?limit=1", nil).body)
	i := strings.Index(html, `<a href="/workflows?cursor=`)
	if i < 0 || !strings.Contains(html, `data-workflow-row="`+newer) || strings.Contains(html, `data-workflow-row="`+id) {
		t.Fatalf("first page of 1:\n%s", html)
	}
	href := html[i+len(`<a href="`):]
	href = strings.ReplaceAll(href[:strings.IndexByte(href, '"')], "&amp;", "&")
	html = string(ts.do(t, "GET", href, nil).body)
	if !strings.Contains(html, `data-workflow-row="`+id) || strings.Contains(html, `data-workflow-row="`+newer) || !strings.Contains(html, "← newest") {
		t.Fatalf("second page (%s):\n%s", href, html)
	}
	nope := ts.do(t, "GET", "/workflows/wf_nope", nil)
	expectStatus(t, nope, http.StatusNotFound)
	if !strings.Contains(string(nope.body), `no workflow &#34;wf_nope&#34;`) {
		t.Fatalf("absent workflow:\n%s", nope.body)
	}
}
