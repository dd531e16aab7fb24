package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

const queueTestTasks = `
import time

@conq.task("add", json=True)
def add(args):
    return args["a"] + args["b"]

@conq.task("boom", json=True)
def boom(args):
    raise ValueError("cannot frobnicate %r" % (args,))

@conq.task("giveup", json=True)
def giveup(args):
    raise conq.TaskError("SkipRetry", "no point retrying")

@conq.task("slow", json=True)
def slow(seconds):
    time.sleep(seconds)
    return "done"
`

// startCLIWorker runs conq worker with args in the background until ctx
// ends, while the test drives it with other commands.
func startCLIWorker(ctx context.Context, args ...string) <-chan queueRunResult {
	done := make(chan queueRunResult, 1)
	cmd := newWorkerCmd()
	cmd.SetArgs(args)
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SilenceUsage, cmd.SilenceErrors = true, true
	go func() {
		code := 0
		if err := cmd.ExecuteContext(ctx); err != nil {
			code = 2
			var ee *ExitError
			if errors.As(err, &ee) {
				code = ee.Code
			}
			errb.WriteString(err.Error())
		}
		done <- queueRunResult{code: code, stdout: out.String(), stderr: errb.String()}
	}()
	return done
}

func TestWorkerFlagErrors(t *testing.T) {
	t.Setenv(brokerEnv, "")
	ctx := queueCtx(t, 20*time.Second)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"worker", "--exec", "python3 x.py"}, "needs a shared broker"},
		{[]string{"worker", "--broker", unusedBroker}, `"exec" not set`},
		{[]string{"worker", "--broker", unusedBroker, "--exec", "x", "--queues", "a:0"}, "weight 0 must be at least 1"},
		{[]string{"worker", "--broker", unusedBroker, "--exec", "x", "--queues", "a,a"}, `queue "a" given twice`},
		{[]string{"worker", "--broker", unusedBroker, "--exec", "x", "--concurrency", "0"}, "--concurrency must be at least 1"},
		{[]string{"worker", "--broker", unusedBroker, "--exec", "'x"}, "unterminated single quote"},
		{[]string{"worker", "--broker", "amqp://localhost", "--exec", "x"}, `unsupported scheme "amqp"`},
		{[]string{"worker", "--broker", unusedBroker, "--exec", "x", "--log-level", "loud"}, "--log-level"},
	} {
		r := queueRun(t, ctx, "", c.args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("conq %v: exit %d, stderr %q; want exit 2 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
}

func TestWorkerBadQueueName(t *testing.T) {
	url, _ := queueTestRedis(t)
	r := queueRun(t, queueCtx(t, 20*time.Second), "", "worker", "--broker", url, "--exec", "true", "--queues", "bad queue")
	if r.code != 2 || !strings.Contains(r.stderr, `queue name "bad queue"`) {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestWorkerStartError(t *testing.T) {
	url, _ := queueTestRedis(t)
	r := queueRun(t, queueCtx(t, 20*time.Second), "", "worker", "--broker", url, "--exec", "/nonexistent/worker")
	if r.code != 1 || !strings.Contains(r.stderr, "failed to start") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestWorkerPython(t *testing.T) {
	url, _ := queueTestRedis(t)
	exec := queuePythonWorker(t, queueTestTasks)
	ctx := queueCtx(t, 90*time.Second)

	wctx, stop := context.WithCancel(ctx)
	done := startCLIWorker(wctx, "--broker", url, "--exec", exec, "--concurrency", "2",
		"--queues", "default,other:2", "--shutdown-timeout", "5s")
	enqueue := func(args ...string) queueRunResult {
		return queueRun(t, ctx, "", append([]string{"enqueue", "--broker", url, "--wait", "--wait-timeout", "60s"}, args...)...)
	}
	if r := enqueue("--kind", "add", "--payload", `{"a": 2, "b": 3}`); r.code != 0 || r.stdout != "5\n" {
		t.Fatalf("add: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := enqueue("--kind", "add", "--queue", "other", "--payload", `{"a": 1, "b": 1}`); r.code != 0 || r.stdout != "2\n" {
		t.Fatalf("add on other: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r := enqueue("--kind", "boom", "--payload", `[1]`, "--retries", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "ValueError: cannot frobnicate [1]") || !strings.Contains(r.stderr, "Traceback") || !strings.Contains(r.stderr, "after 2 attempt") {
		t.Fatalf("boom: exit %d, stderr %q", r.code, r.stderr)
	}
	// The traceback is recorded as the attempt's stack, not in its message;
	// --wait prints it before the error line.
	if tb, line := strings.Index(r.stderr, "Traceback"), strings.Index(r.stderr, "conq: task "); tb < 0 || line < tb {
		t.Fatalf("boom: want the traceback before the error line, stderr %q", r.stderr)
	}
	boomID := strings.Fields(r.stderr[strings.Index(r.stderr, "conq: task ")+len("conq: task "):])[0]
	var boom struct {
		Errors []queue.AttemptError `json:"errors"`
	}
	if err := json.Unmarshal([]byte(queueMust(t, ctx, "", "inspect", "task", boomID, "--json", "--broker", url)), &boom); err != nil {
		t.Fatal(err)
	}
	if len(boom.Errors) != 2 || !strings.Contains(boom.Errors[1].Stack, "Traceback") || boom.Errors[1].Message != "ValueError: cannot frobnicate [1]" {
		t.Fatalf("boom errors: %+v", boom.Errors)
	}
	r = enqueue("--kind", "giveup", "--retries", "5")
	if r.code != 1 || !strings.Contains(r.stderr, "SkipRetry: no point retrying") || !strings.Contains(r.stderr, "after 1 attempt") {
		t.Fatalf("giveup: exit %d, stderr %q", r.code, r.stderr)
	}
	r = enqueue("--kind", "not_in_module", "--retries", "0")
	if r.code != 1 || !strings.Contains(r.stderr, `no handler registered for task kind "not_in_module"`) {
		t.Fatalf("unknown kind: exit %d, stderr %q", r.code, r.stderr)
	}
	r = enqueue("--kind", "slow", "--payload", "5", "--timeout", "300ms", "--retries", "0")
	if r.code != 1 || !strings.Contains(r.stderr, "failed after 1 attempt") {
		t.Fatalf("timeout: exit %d, stderr %q", r.code, r.stderr)
	}
	out := queueMust(t, ctx, "", "inspect", "--broker", url, "tasks", "--state", "dead", "--json")
	if !strings.Contains(out, `"kind": "timeout"`) {
		t.Fatalf("the timed-out attempt is not recorded as a timeout:\n%s", out)
	}

	// Graceful shutdown lets a running task finish.
	id := strings.TrimSpace(queueMust(t, ctx, "", "enqueue", "--broker", url, "--kind", "slow", "--payload", "1", "--retention", "1h"))
	waitFor(t, func() bool {
		return strings.Contains(queueMust(t, ctx, "", "inspect", "--broker", url, "task", id), "active")
	})
	stop()
	w := <-done
	if w.code != 0 {
		t.Fatalf("worker: exit %d, stderr:\n%s", w.code, w.stderr)
	}
	if out := queueMust(t, ctx, "", "inspect", "--broker", url, "task", id); !strings.Contains(out, "completed") {
		t.Fatalf("the running task did not finish during the grace period:\n%s\nworker log:\n%s", out, w.stderr)
	}
	for _, want := range []string{"queue: worker started", "queue: worker shutting down", "queue: worker stopped"} {
		if !strings.Contains(w.stderr, want) {
			t.Errorf("worker log lacks %q", want)
		}
	}
}

func TestWorkerShutdownRequeuesAfterGrace(t *testing.T) {
	url, _ := queueTestRedis(t)
	exec := queuePythonWorker(t, queueTestTasks)
	ctx := queueCtx(t, 60*time.Second)
	wctx, stop := context.WithCancel(ctx)
	done := startCLIWorker(wctx, "--broker", url, "--exec", exec, "--concurrency", "1", "--shutdown-timeout", "200ms")
	id := strings.TrimSpace(queueMust(t, ctx, "", "enqueue", "--broker", url, "--kind", "slow", "--payload", "30"))
	waitFor(t, func() bool {
		return strings.Contains(queueMust(t, ctx, "", "inspect", "--broker", url, "task", id), "active")
	})
	t0 := time.Now()
	stop()
	w := <-done
	if w.code != 0 {
		t.Fatalf("worker: exit %d, stderr:\n%s", w.code, w.stderr)
	}
	if d := time.Since(t0); d > 15*time.Second {
		t.Fatalf("shutdown took %v", d)
	}
	out := queueMust(t, ctx, "", "inspect", "--broker", url, "task", id, "--json")
	if !strings.Contains(out, `"state": "pending"`) || !strings.Contains(out, `"attempts": 0`) {
		t.Fatalf("the interrupted task is not back on its queue without a counted attempt:\n%s", out)
	}
}

func TestParseQueueWeights(t *testing.T) {
	got, err := parseQueueWeights("critical:6, default ,low:1,ns:sub")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"critical": 6, "default": 1, "low": 1, "ns:sub": 1}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	for _, bad := range []string{"", " , ", "a:0", "a:-2", "a,a:2"} {
		if _, err := parseQueueWeights(bad); err == nil {
			t.Errorf("parseQueueWeights(%q) succeeded", bad)
		}
	}
}

func TestCheckBrokerURL(t *testing.T) {
	for _, ok := range []string{"redis://localhost:6379/0", "rediss://u:p@h:6380/2", "REDIS://h", "unix:///tmp/r.sock"} {
		if err := checkBrokerURL(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for url, want := range map[string]string{
		"http://h":              `unsupported scheme "http"`,
		"localhost:6379":        "has no scheme",
		"h":                     "has no scheme",
		"amqp://user:secret@h/": "amqp://user:xxxxx@h/",
	} {
		err := checkBrokerURL(url)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", url, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%s: the error shows the password: %v", url, err)
		}
	}
}
