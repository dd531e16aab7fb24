package browser

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/server"
)

const chromiumPath = "/usr/bin/chromium"

// newBrowser starts a headless Debian chromium with a fresh profile, or
// skips (fails under CI / CONQ_REQUIRE_SERVERS) when it is missing.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		testenv.Need(t, chromiumPath+" is missing", "run scripts/ensure-chromium.sh (apt-get install -y chromium)")
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() { cancelCtx(); cancelAlloc() })
	// The first call starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// do runs browser steps with a time limit.
func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(tctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// poll waits until a JavaScript expression is true.
func poll(t *testing.T, ctx context.Context, expr, what string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := chromedp.Run(tctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(10*time.Second))); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func TestBrowserDashboard(t *testing.T) {
	b := redisBroker(t)
	ctx := newBrowser(t)
	ts := newTestServer(t, server.Config{Broker: b, SampleInterval: 200 * time.Millisecond})
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	go ts.Run(runCtx)

	enqueue(t, b, "email.send", []byte(`{"to":"a@example.com"}`), queue.Queue("emails"))
	enqueue(t, b, "email.send", []byte(`{"to":"b@example.com"}`), queue.Queue("emails"))
	dead := enqueue(t, b, "report.build", []byte(`{"month":"2026-10"}`), queue.Queue("reports"))
	kill(t, b, "reports", dead.ID, "report service returned 502")
	const evil = `<script>window.pwned=1</script><img src=x onerror="window.pwned=2">`
	xss := enqueue(t, b, "html", []byte(evil), queue.Queue("xss"))
	kill(t, b, "xss", xss.ID, `<script>window.pwned=3</script>`)

	text := func(sel string) string {
		tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		v, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(v)
	}

	t.Run("queue page lists the queues with their counts", func(t *testing.T) {
		do(t, ctx, chromedp.Navigate(ts.url+"/"), chromedp.WaitVisible(chromedp.CSS(`#queues`)))
		names := eval[[]string](t, ctx,
			`Array.from(document.querySelectorAll("[data-queue-row]")).map(r => r.getAttribute("data-queue-row"))`)
		if strings.Join(names, ",") != "emails,reports,xss" {
			t.Fatalf("queues listed: %v", names)
		}
		for sel, want := range map[string]string{
			`a[data-queue="emails"][data-state="pending"]`: "2",
			`a[data-queue="emails"][data-state="dead"]`:    "0",
			`a[data-queue="reports"][data-state="dead"]`:   "1",
			`a[data-queue="xss"][data-state="dead"]`:       "1",
			`th[data-total="pending"]`:                     "2",
		} {
			if got := text(sel); got != want {
				t.Errorf("%s = %q, want %q", sel, got, want)
			}
		}
		// Only paused queues show the badge, and it follows pause/resume.
		visible := `(q) => { const el = document.querySelector('[data-paused="' + q + '"]'); return el.offsetParent !== null; }`
		if eval[bool](t, ctx, "("+visible+")('emails')") {
			t.Fatal("a running queue shows the paused badge")
		}
		if err := ts.insp.PauseQueue(context.Background(), "emails"); err != nil {
			t.Fatal(err)
		}
		poll(t, ctx, "("+visible+")('emails')", "paused badge did not appear after pausing")
		poll(t, ctx, `document.querySelector('form[data-pause-form="emails"] button').textContent === "Resume"`,
			"pause button did not turn into Resume")
		// The counts refresh on their own.
		enqueue(t, b, "email.send", []byte(`{}`), queue.Queue("emails"))
		poll(t, ctx, `document.querySelector('a[data-queue="emails"][data-state="pending"]').textContent === "3"`,
			"pending count did not refresh to 3")
		// The chart is drawn from the throughput endpoint.
		poll(t, ctx, `document.getElementById("throughput-max").textContent.indexOf("peak") >= 0`, "throughput chart not drawn")
	})

	t.Run("retrying a dead task from the page moves it to pending", func(t *testing.T) {
		do(t, ctx,
			chromedp.Navigate(ts.url+"/queues/reports?state=dead"),
			chromedp.WaitVisible(chromedp.CSS(`button[data-action="retry"]`)),
			chromedp.Click(chromedp.CSS(`button[data-action="retry"]`)),
			chromedp.WaitVisible(chromedp.CSS(`p.notice[role="status"]`)),
		)
		if got := text(`p.notice[role="status"]`); got != "Task moved to pending." {
			t.Fatalf("notice %q", got)
		}
		got, err := b.GetTask(context.Background(), "reports", dead.ID)
		if err != nil || got.State != queue.StatePending {
			t.Fatalf("task after retry: %v %v", got, err)
		}
		if c := text(`span[data-queue="reports"][data-state="pending"]`); c != "1" {
			t.Fatalf("pending tab count %q", c)
		}
		if c := text(`span[data-queue="reports"][data-state="dead"]`); c != "0" {
			t.Fatalf("dead tab count %q", c)
		}
	})

	t.Run("a script payload renders as text", func(t *testing.T) {
		for _, path := range []string{"/queues/xss?state=dead", "/queues/xss/tasks/" + xss.ID} {
			do(t, ctx,
				chromedp.Navigate(ts.url+path),
				chromedp.WaitVisible(chromedp.CSS(`main`)),
				chromedp.Sleep(300*time.Millisecond), // let any injected handler (onerror) fire
			)
			if eval[bool](t, ctx, `typeof window.pwned !== "undefined"`) {
				t.Fatalf("%s: injected script ran", path)
			}
			body := eval[string](t, ctx, `document.body.innerText`)
			if !strings.Contains(body, `<script>window.pwned=1</script>`) {
				t.Fatalf("%s: payload not shown as text:\n%s", path, body)
			}
			if !strings.Contains(body, `<script>window.pwned=3</script>`) {
				t.Fatalf("%s: error not shown as text:\n%s", path, body)
			}
		}
	})

	t.Run("workers page lists a running worker", func(t *testing.T) {
		release := make(chan struct{})
		started := make(chan struct{}, 1)
		w, err := queue.NewWorker(b, queue.WorkerConfig{
			Queues: map[string]int{"jobs": 1}, Concurrency: 2, HeartbeatInterval: 100 * time.Millisecond,
			PollInterval: 50 * time.Millisecond, Logger: quietLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		w.HandleFunc("long.job", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
			}
			return nil, nil
		})
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer func() {
			close(release)
			_ = w.Shutdown(context.Background())
		}()
		job := enqueue(t, b, "long.job", []byte(`{}`), queue.Queue("jobs"))
		<-started
		// The page is rendered first, then kept fresh by the script.
		do(t, ctx, chromedp.Navigate(ts.url+"/workers"), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
		poll(t, ctx, `document.querySelector('[data-running-task="`+job.ID+`"]') !== null`, "the running task is not listed")
		row := eval[string](t, ctx, `document.querySelector('[data-running-task="`+job.ID+`"]').closest("tr").getAttribute("data-worker-row")`)
		if row != w.ID() {
			t.Fatalf("running task listed under worker %q, want %q", row, w.ID())
		}
		if got := text(`tr[data-worker-row="` + w.ID() + `"] td:nth-child(5)`); got != "1/2" {
			t.Fatalf("running/concurrency %q, want 1/2", got)
		}
		if got := text(`#workers-count`); got != "1" {
			t.Fatalf("workers count %q", got)
		}
	})

	t.Run("the cancel button cancels a pending task", func(t *testing.T) {
		task := enqueue(t, b, "email.send", []byte(`{"to":"c@example.com"}`), queue.Queue("cancels"))
		do(t, ctx,
			chromedp.Navigate(ts.url+"/queues/cancels?state=pending"),
			chromedp.WaitVisible(chromedp.CSS(`button[data-action="cancel"]`)),
		)
		eval[bool](t, ctx, `(window.confirm = () => true, true)`)
		do(t, ctx,
			chromedp.Click(chromedp.CSS(`button[data-action="cancel"]`)),
			chromedp.WaitVisible(chromedp.CSS(`p.notice[role="status"]`)),
		)
		if got := text(`p.notice[role="status"]`); !strings.HasPrefix(got, "Task cancelled") {
			t.Fatalf("notice %q", got)
		}
		got, err := b.GetTask(context.Background(), "cancels", task.ID)
		if err != nil || got.State != queue.StateDead || len(got.Errors) != 1 || got.Errors[0].Kind != "cancelled" {
			t.Fatalf("task after cancel: %+v %v", got, err)
		}
		if c := text(`span[data-queue="cancels"][data-state="dead"]`); c != "1" {
			t.Fatalf("dead tab count %q", c)
		}
	})

	t.Run("scheduled page shows the next fire time", func(t *testing.T) {
		sched, err := queue.NewScheduler(b, queue.SchedulerConfig{PublishInterval: 100 * time.Millisecond, Logger: quietLogger()})
		if err != nil {
			t.Fatal(err)
		}
		// A daily fire 30 minutes from now: "@hourly" made the test fail when
		// it ran across the top of an hour (the fire time passed between
		// the page's load and its script's "in ..." check).
		at := time.Now().UTC().Add(30 * time.Minute).Truncate(time.Minute)
		spec := fmt.Sprintf("%d %d * * *", at.Minute(), at.Hour())
		if _, err := sched.RegisterEntry(queue.Entry{Name: "hourly-report", Spec: spec, Task: queue.NewTask("report.build", nil, queue.Queue("reports"))}); err != nil {
			t.Fatal(err)
		}
		if err := sched.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer sched.Shutdown(context.Background())
		waitFor := func() {
			deadline := time.Now().Add(10 * time.Second)
			for {
				if es, err := ts.insp.Schedules(context.Background()); err == nil && len(es) == 1 {
					return
				}
				if time.Now().After(deadline) {
					t.Fatal("the entry was not published")
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		waitFor()
		do(t, ctx, chromedp.Navigate(ts.url+"/schedules"), chromedp.WaitVisible(chromedp.CSS(`tr[data-entry-row="hourly-report"]`)))
		next := text(`td[data-next="hourly-report"]`)
		want := at.Format("2006-01-02 15:04:05.000 UTC")
		if !strings.HasPrefix(next, want) {
			t.Fatalf("next fire %q, want %q", next, want)
		}
		// The relative time is kept current by the script.
		poll(t, ctx, `document.querySelector('td[data-next="hourly-report"] [data-since]').textContent.indexOf("in ") === 0`, "relative next fire time not shown")
	})
}
