package browser

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/memory"
	"github.com/conqhq/conq/server"
)

// TestBrowserWorkflow creates chords served by a real Go worker, on the
// memory broker and on Redis, and checks the workflow page: its steps
// with states, results, errors, links to the step tasks and back, live
// step states, and cancel.
func TestBrowserWorkflow(t *testing.T) {
	t.Run("memory", func(t *testing.T) {
		b := memory.New(memory.Config{})
		t.Cleanup(func() { _ = b.Close() })
		browseWorkflows(t, b)
	})
	t.Run("redis", func(t *testing.T) { browseWorkflows(t, redisBroker(t)) })
}

func browseWorkflows(t *testing.T, b broker.Broker) {
	ctx := newBrowser(t)
	ts := newTestServer(t, server.Config{Broker: b})

	release := make(chan struct{})
	w, err := queue.NewWorker(b, queue.WorkerConfig{Queues: map[string]int{"math": 1}, Concurrency: 4, Logger: quietLogger(), PollInterval: 20 * time.Millisecond, ForwardInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	args := func(t *queue.TaskInfo) []float64 {
		var ca struct{ Args []float64 }
		_ = json.Unmarshal(t.Payload, &ca)
		return ca.Args
	}
	w.HandleFunc("add", func(_ context.Context, t *queue.TaskInfo) ([]byte, error) {
		a := args(t)
		return json.Marshal(a[0] + a[1])
	})
	w.HandleFunc("tsum", func(_ context.Context, t *queue.TaskInfo) ([]byte, error) {
		// An args call: the header's list is prepended to the arguments.
		var ca struct{ Args [][]float64 }
		if err := json.Unmarshal(t.Payload, &ca); err != nil || len(ca.Args) != 1 {
			return nil, errors.Join(queue.SkipRetry, err)
		}
		xs := ca.Args[0]
		s := 0.0
		for _, x := range xs {
			s += x
		}
		return json.Marshal(s)
	})
	w.HandleFunc("boom", func(context.Context, *queue.TaskInfo) ([]byte, error) {
		return nil, queue.SkipRetry
	})
	w.HandleFunc("hold", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
		select {
		case <-release:
			return []byte("7"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.Shutdown(context.Background()) })
	client, err := queue.NewClient(b, queue.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	call := func(kind string, a ...any) queue.Flow {
		task, err := queue.NewCallTask(kind, a, nil)
		if err != nil {
			t.Fatal(err)
		}
		return queue.Step(task)
	}
	enqueueFlow := func(f queue.Flow) *queue.FlowHandle {
		h, err := client.EnqueueFlow(context.Background(), f, queue.Queue("math"))
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	text := func(sel string) string {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}

	wait, cancelWait := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelWait()
	done := enqueueFlow(queue.Chord([]queue.Flow{call("add", 1, 1), call("add", 2, 2), call("add", 3, 3)}, call("tsum")))
	if res, err := done.Result(wait); err != nil || string(res) != "12" {
		t.Fatalf("chord result %s, %v", res, err)
	}

	t.Run("the page lists the steps with states, results and inputs", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(ts.url+"/workflows/"+done.ID), chromedp.WaitVisible(chromedp.CSS(`#steps`)))
		if got := text(`#workflow-state`); got != "completed" {
			t.Fatalf("workflow state %q", got)
		}
		if got := text(`#workflow-result`); got != "12" {
			t.Fatalf("workflow result %q", got)
		}
		rows := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#steps tbody tr")).map(r =>
			[r.cells[0].textContent, r.cells[1].textContent, r.cells[2].textContent, r.cells[3].textContent,
			 r.cells[4].textContent, r.cells[5].textContent, r.cells[6].textContent, r.cells[7].textContent].map(s => s.trim()).join("|"))`)
		want := []string{
			"0|add|" + done.ID + ".0|math|completed|1|-|2",
			"1|add|" + done.ID + ".1|math|completed|1|-|4",
			"2|add|" + done.ID + ".2|math|completed|1|-|6",
			"3|tsum|" + done.ID + ".3|math|completed|1|0, 1, 2|12",
		}
		if strings.Join(rows, "\n") != strings.Join(want, "\n") {
			t.Fatalf("steps:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
		}
		if nav := text(`header.top nav a.current`); nav != "Workflows" {
			t.Fatalf("current nav %q", nav)
		}
	})

	t.Run("a step links to its task page, which links back", func(t *testing.T) {
		do(t, ctx,
			chromedp.Navigate(ts.url+"/workflows/"+done.ID),
			chromedp.WaitVisible(chromedp.CSS(`a[data-step-task="3"]`)),
			chromedp.Click(chromedp.CSS(`a[data-step-task="3"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#workflow-link`)),
		)
		if got := eval[string](t, ctx, `location.pathname`); got != "/queues/math/tasks/"+done.ID+".3" {
			t.Fatalf("step link went to %s", got)
		}
		if got := text(`#result`); got != "12" {
			t.Fatalf("task page result %q", got)
		}
		if got := text(`p.workflow-link`); got != "Step 3 of workflow "+done.ID {
			t.Fatalf("back link text %q", got)
		}
		do(t, ctx, chromedp.Click(chromedp.CSS(`#workflow-link`)), chromedp.WaitVisible(chromedp.CSS(`#steps`)))
		if got := eval[string](t, ctx, `location.pathname + location.hash`); got != "/workflows/"+done.ID+"#step-3" {
			t.Fatalf("back link went to %s", got)
		}
	})

	t.Run("a failed chord shows the error and the cancelled body", func(t *testing.T) {
		failed := enqueueFlow(queue.Chord([]queue.Flow{call("add", 1, 1), call("boom")}, call("tsum")))
		var fe *queue.FlowError
		if _, err := failed.Result(wait); !errors.As(err, &fe) {
			t.Fatal("the chord with a failing member completed")
		}
		do(t, ctx, chromedp.Navigate(ts.url+"/workflows/"+failed.ID), chromedp.WaitVisible(chromedp.CSS(`#steps`)))
		if got := text(`#workflow-state`); got != "failed" {
			t.Fatalf("state %q", got)
		}
		if got := text(`tr[data-step="1"] [data-step-badge]`); got != "failed" {
			t.Fatalf("failed member state %q", got)
		}
		if got := text(`tr[data-step="1"] [data-step-error]`); !strings.Contains(got, "skip retry") {
			t.Fatalf("failed member error %q", got)
		}
		if got := text(`tr[data-step="2"] [data-step-badge]`); got != "cancelled" {
			t.Fatalf("body state %q", got)
		}
		if got := text(`#workflow-error`); !strings.Contains(got, "skip retry") {
			t.Fatalf("workflow error %q", got)
		}
		// The body was cancelled before it had a task: its link says so
		// and leads back.
		do(t, ctx,
			chromedp.Click(chromedp.CSS(`a[data-step-task="2"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#error-link`)),
		)
		if got := text(`main`); !strings.Contains(got, "never had a task") {
			t.Fatalf("step without a task: %q", got)
		}
		do(t, ctx, chromedp.Click(chromedp.CSS(`#error-link`)), chromedp.WaitVisible(chromedp.CSS(`#steps`)))
		if got := eval[string](t, ctx, `location.pathname`); got != "/workflows/"+failed.ID {
			t.Fatalf("back to %s", got)
		}
	})

	t.Run("step states follow a running workflow, and cancel cancels it", func(t *testing.T) {
		live := enqueueFlow(queue.Chain(call("hold"), call("add", 1), call("add", 2)))
		do(t, ctx, chromedp.Navigate(ts.url+"/workflows/"+live.ID), chromedp.WaitVisible(chromedp.CSS(`#steps`)))
		poll(t, ctx, `document.querySelector('tr[data-step="0"] [data-step-badge]').textContent === "active"`, "hold step active")
		if got := text(`tr[data-step="1"] [data-step-badge]`); got != "waiting" {
			t.Fatalf("second step %q", got)
		}
		close(release)
		poll(t, ctx, `document.querySelector("#workflow-state").textContent === "completed" &&
			document.querySelector('tr[data-step="2"] [data-step-badge]').textContent === "completed"`, "live step states")
		poll(t, ctx, `!document.getElementById("stale").hidden`, "reload offered")

		// A chain on a queue no worker serves stays running: cancel it
		// from the page.
		h, err := client.EnqueueFlow(context.Background(), queue.Chain(call("add", 1, 1), call("add", 1)), queue.Queue("idle"))
		if err != nil {
			t.Fatal(err)
		}
		do(t, ctx, chromedp.Navigate(ts.url+"/workflows/"+h.ID), chromedp.WaitVisible(chromedp.CSS(`button[data-action="cancel-workflow"]`)))
		eval[bool](t, ctx, `(window.confirm = () => true, true)`)
		do(t, ctx,
			chromedp.Click(chromedp.CSS(`button[data-action="cancel-workflow"]`)),
			chromedp.WaitVisible(chromedp.CSS(`p.notice[role="status"]`)),
		)
		if got := text(`p.notice[role="status"]`); !strings.HasPrefix(got, "Workflow cancelled") {
			t.Fatalf("notice %q", got)
		}
		if got := text(`#workflow-state`); got != "cancelled" {
			t.Fatalf("state after cancel %q", got)
		}
		wf, err := ts.insp.Workflow(context.Background(), h.ID)
		if err != nil || string(wf.State) != "cancelled" {
			t.Fatalf("workflow after cancel: %+v %v", wf, err)
		}
	})

	t.Run("the workflows page lists recent workflows with a state filter", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(ts.url+"/workflows"), chromedp.WaitVisible(chromedp.CSS(`#workflows`)))
		rows := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#workflows tbody tr")).map(r =>
			[r.cells[0].textContent, r.cells[1].textContent, r.cells[2].textContent, r.cells[3].textContent].map(s => s.trim()).join("|"))`)
		// Four workflows, newest first: the cancelled idle chain, the live
		// chain, the failed chord, the completed chord (first created).
		if len(rows) != 4 || !strings.HasSuffix(rows[0], "|idle|cancelled|2/2") || !strings.HasSuffix(rows[1], "|math|completed|3/3") ||
			!strings.HasSuffix(rows[2], "|math|failed|3/3") || rows[3] != done.ID+"|math|completed|4/4" {
			t.Fatalf("workflow rows:\n%s", strings.Join(rows, "\n"))
		}
		do(t, ctx,
			chromedp.Click(chromedp.CSS(`a[data-workflow-filter="failed"]`)),
			chromedp.WaitVisible(chromedp.CSS(`a.current[data-workflow-filter="failed"]`)),
		)
		states := eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#workflows tbody tr")).map(r => r.dataset.workflowRowState)`)
		if len(states) != 1 || states[0] != "failed" {
			t.Fatalf("failed filter shows %v", states)
		}
		do(t, ctx,
			chromedp.Click(chromedp.CSS(`a[data-workflow-filter="all"]`)),
			chromedp.WaitVisible(chromedp.CSS(`tr[data-workflow-row="`+done.ID+`"] a`)),
			chromedp.Click(chromedp.CSS(`tr[data-workflow-row="`+done.ID+`"] a`)),
			chromedp.WaitVisible(chromedp.CSS(`#steps`)),
		)
		if got := eval[string](t, ctx, `location.pathname`); got != "/workflows/"+done.ID {
			t.Fatalf("row link went to %s", got)
		}
	})

	t.Run("the workflows page opens a workflow by ID", func(t *testing.T) {
		do(t, ctx,
			chromedp.Navigate(ts.url+"/workflows"),
			chromedp.WaitVisible(chromedp.CSS(`#workflow-id`)),
			chromedp.SendKeys(chromedp.CSS(`#workflow-id`), done.ID),
			chromedp.Submit(chromedp.CSS(`#workflow-id`)),
			chromedp.WaitVisible(chromedp.CSS(`#steps`)),
		)
		if got := eval[string](t, ctx, `location.pathname`); got != "/workflows/"+done.ID {
			t.Fatalf("lookup went to %s", got)
		}
	})
}
