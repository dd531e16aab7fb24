package cli

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

func TestInspectAndAdmin(t *testing.T) {
	url, prefix := queueTestRedis(t)
	ctx := queueCtx(t, 60*time.Second)
	b := []string{"--broker", url}
	run := func(args ...string) string { return queueMust(t, ctx, "", append(args, b...)...) }

	// An empty broker.
	if out := run("inspect", "queues"); !strings.Contains(out, "(no queues)") {
		t.Fatalf("empty queues:\n%s", out)
	}
	later := strings.TrimSpace(run("enqueue", "--kind", "later", "--in", "1h", "--queue", "mail"))
	doomed := strings.TrimSpace(run("enqueue", "--kind", "doomed", "--retries", "0", "--payload", `{"x":1}`))
	run("enqueue", "--kind", "later", "--id", "second", "--queue", "mail", "--in", "2h")

	startGoWorker(t, url, prefix, func(w *queue.Worker) {
		w.HandleFunc("doomed", func(context.Context, *queue.TaskInfo) ([]byte, error) {
			return nil, queue.RetryAfter(time.Hour, errString("the printer is on fire"))
		})
	})
	waitFor(t, func() bool { return strings.Contains(run("inspect", "tasks", "--state", "dead"), doomed) })

	out := run("inspect", "queues")
	for _, want := range []string{"QUEUE", "PENDING", "DEAD", "mail", "default"} {
		if !strings.Contains(out, want) {
			t.Fatalf("queues table lacks %q:\n%s", want, out)
		}
	}
	var qs []queue.QueueInfo
	if err := json.Unmarshal([]byte(run("inspect", "queues", "--json")), &qs); err != nil {
		t.Fatal(err)
	}
	if len(qs) != 2 || qs[0].Name != "default" || qs[0].Counts[queue.StateDead] != 1 || qs[1].Counts[queue.StateScheduled] != 2 {
		t.Fatalf("queues = %+v", qs)
	}

	out = run("inspect", "tasks", "--state", "dead")
	if !strings.Contains(out, "the printer is on fire") || !strings.Contains(out, "doomed") {
		t.Fatalf("dead tasks:\n%s", out)
	}
	var ts []map[string]any
	if err := json.Unmarshal([]byte(run("inspect", "tasks", "--state", "scheduled", "--json", "--limit", "1")), &ts); err != nil {
		t.Fatal(err)
	}
	if len(ts) != 1 || ts[0]["id"] != later {
		t.Fatalf("scheduled --limit 1 = %v, want %s (oldest first)", ts, later)
	}
	if out := run("inspect", "tasks", "--state", "retry", "--queue", "mail"); !strings.Contains(out, "(no tasks)") {
		t.Fatalf("retry tasks of mail:\n%s", out)
	}

	out = run("inspect", "task", doomed)
	for _, want := range []string{"State:", "dead", `{"x":1}`, "attempt 1", "the printer is on fire"} {
		if !strings.Contains(out, want) {
			t.Fatalf("task view lacks %q:\n%s", want, out)
		}
	}
	var tv map[string]any
	if err := json.Unmarshal([]byte(run("inspect", "task", doomed, "--json")), &tv); err != nil {
		t.Fatal(err)
	}
	if p, _ := tv["payload"].(map[string]any); p["x"] != 1.0 || tv["state"] != "dead" {
		t.Fatalf("task json = %v", tv)
	}

	// retry: dead -> pending (it fails again, dead again); delete; pause/resume.
	if out := run("retry", later, "--queue", "mail"); !strings.Contains(out, "pending again") {
		t.Fatalf("retry: %s", out)
	}
	if out := run("delete", "second"); !strings.Contains(out, "deleted") {
		t.Fatalf("delete: %s", out)
	}
	r := queueRun(t, ctx, "", "inspect", "task", "second", "--broker", url)
	if r.code != 1 || !strings.Contains(r.stderr, "task not found") {
		t.Fatalf("deleted task: exit %d, %q", r.code, r.stderr)
	}
	run("pause", "mail")
	if err := json.Unmarshal([]byte(run("inspect", "queues", "--json")), &qs); err != nil {
		t.Fatal(err)
	}
	if !qs[1].Paused || qs[1].Counts[queue.StatePending] != 1 {
		t.Fatalf("after pause and retry: %+v", qs[1])
	}
	if out := run("inspect", "queues"); !strings.Contains(out, "paused") {
		t.Fatalf("queues table does not show the pause:\n%s", out)
	}
	var ok map[string]any
	if err := json.Unmarshal([]byte(run("resume", "mail", "--json")), &ok); err != nil || ok["ok"] != true {
		t.Fatalf("resume --json: %v %v", ok, err)
	}

	// Bad arguments.
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"inspect", "tasks", "--state", "sleeping"}, 2, `unknown task state "sleeping"`},
		{[]string{"inspect", "tasks"}, 2, `"state" not set`},
		{[]string{"inspect", "task", "nope"}, 1, "task not found"},
		{[]string{"delete", "nope"}, 1, "task not found"},
		{[]string{"pause", "bad queue"}, 2, `queue name "bad queue"`},
		{[]string{"inspect"}, 2, "needs a subcommand"},
	} {
		r := queueRun(t, ctx, "", append(c.args, b...)...)
		if r.code != c.code || !strings.Contains(r.stderr, c.want) {
			t.Errorf("conq %v: exit %d, stderr %q; want %d and %q", c.args, r.code, r.stderr, c.code, c.want)
		}
	}
}

func TestInspectNeedsSharedBroker(t *testing.T) {
	t.Setenv(brokerEnv, "")
	ctx := queueCtx(t, 10*time.Second)
	for _, args := range [][]string{{"inspect", "queues"}, {"retry", "x"}, {"pause", "q"}} {
		r := queueRun(t, ctx, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, "needs a shared broker") {
			t.Errorf("conq %v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// waitFor polls cond for up to 20s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met within 20s")
}

func TestCancelAndInspectWorkers(t *testing.T) {
	url, prefix := queueTestRedis(t)
	ctx := queueCtx(t, 60*time.Second)
	b := []string{"--broker", url}
	run := func(args ...string) string { return queueMust(t, ctx, "", append(args, b...)...) }

	if out := run("inspect", "workers"); !strings.Contains(out, "(no live workers)") {
		t.Fatalf("no workers:\n%s", out)
	}
	later := strings.TrimSpace(run("enqueue", "--kind", "later", "--in", "1h", "--queue", "mail"))
	if out := run("cancel", later); !strings.Contains(out, "cancelled (was scheduled)") {
		t.Fatalf("cancel: %s", out)
	}
	var tv map[string]any
	if err := json.Unmarshal([]byte(run("inspect", "task", later, "--json")), &tv); err != nil {
		t.Fatal(err)
	}
	if errs, _ := tv["errors"].([]any); tv["state"] != "dead" || len(errs) != 1 || errs[0].(map[string]any)["kind"] != "cancelled" {
		t.Fatalf("cancelled task = %v", tv)
	}
	if r := queueRun(t, ctx, "", append([]string{"cancel", later}, b...)...); r.code != 1 || !strings.Contains(r.stderr, "not allowed") {
		t.Fatalf("second cancel: exit %d, %q", r.code, r.stderr)
	}

	startGoWorker(t, url, prefix, func(w *queue.Worker) { w.HandleFunc("x", noopHandler) })
	var ws []queue.WorkerInfo
	waitFor(t, func() bool {
		return json.Unmarshal([]byte(run("inspect", "workers", "--json")), &ws) == nil && len(ws) == 1
	})
	if ws[0].PID == 0 || ws[0].Concurrency == 0 {
		t.Fatalf("workers = %+v", ws)
	}
	if out := run("inspect", "workers"); !strings.Contains(out, ws[0].ID) || !strings.Contains(out, "HEARTBEAT") {
		t.Fatalf("workers table:\n%s", out)
	}
}

func noopHandler(context.Context, *queue.TaskInfo) ([]byte, error) { return nil, nil }
