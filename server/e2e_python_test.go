package server

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue"
)

// pythonScript uses sdk/python/conq_client.py against the server: it
// enqueues tasks one by one and in a batch, reads results, and catches
// the failure of a task that goes dead.
const pythonScript = `
import json, os, sys
from conq_client import Client, TaskFailed, ConflictError, NotFoundError

c = Client(os.environ["CONQ_URL"], token=os.environ["CONQ_TOKEN"])
out = {}
tid = c.enqueue("add", {"a": 2, "b": 40}, queue="e2e", retention=60, id="sum-1")
out["sum"] = c.result(tid, timeout=20)
try:
    c.enqueue("add", {"a": 0, "b": 0}, queue="e2e", id="sum-1")
    out["dup"] = "accepted"
except ConflictError as e:
    out["dup"] = e.code
ids = c.enqueue_many([("add", {"a": i, "b": i}) for i in range(5)], queue="e2e", retention=60)
out["many"] = [c.result(i, timeout=20) for i in ids]
bad = c.enqueue("fail", {"why": "no"}, queue="e2e", max_retries=1, retention=60)
try:
    c.result(bad, timeout=20)
    out["fail"] = "no exception"
except TaskFailed as e:
    out["fail"] = {"attempts": e.attempts, "message": e.last_error["message"]}
slow = c.enqueue("slow", None, queue="e2e-paused")
try:
    c.result(slow, timeout=0.3)
    out["timeout"] = "no exception"
except TimeoutError:
    out["timeout"] = "TimeoutError"
try:
    c.result("no-such-task", timeout=1)
except NotFoundError as e:
    out["missing"] = e.status
was, t = c.cancel(slow)
out["cancel"] = [was, t["state"], t["errors"][-1]["kind"]]
out["workers"] = sum(w["concurrency"] for w in c.workers())
out["queues"] = sorted(q["name"] for q in c.queues())
print(json.dumps(out))
`

func TestPythonClientEndToEnd(t *testing.T) {
	b := redisBroker(t)
	python, err := exec.LookPath("python3")
	if err != nil {
		testenv.Need(t, "python3 is not installed", "install it (apt-get install -y python3)")
	}
	ts := newTestServer(t, Config{Broker: b, AuthToken: testToken})

	w, err := queue.NewWorker(b, queue.WorkerConfig{
		Queues: map[string]int{"e2e": 1}, Concurrency: 4, Logger: quietLogger(),
		RetryDelay:      func(int, error, *queue.TaskInfo) time.Duration { return 10 * time.Millisecond },
		ForwardInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	type args struct{ A, B int }
	queue.HandleJSON(w, "add", func(_ context.Context, a args) (int, error) { return a.A + a.B, nil })
	w.HandleFunc("fail", func(context.Context, *queue.TaskInfo) ([]byte, error) {
		return nil, fmt.Errorf("upstream said no")
	})
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Shutdown(ctx); err != nil {
			t.Errorf("worker shutdown: %v", err)
		}
	}()

	sdk, err := filepath.Abs("../sdk/python")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", pythonScript)
	cmd.Env = append(os.Environ(), "PYTHONPATH="+sdk, "CONQ_URL="+ts.url, "CONQ_TOKEN="+testToken)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3: %v\nstderr:\n%s", err, stderr.String())
	}
	var got struct {
		Sum     int      `json:"sum"`
		Dup     string   `json:"dup"`
		Many    []int    `json:"many"`
		Fail    any      `json:"fail"`
		Timeout string   `json:"timeout"`
		Missing int      `json:"missing"`
		Cancel  []string `json:"cancel"`
		Workers int      `json:"workers"`
		Queues  []string
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("script output %q: %v\nstderr:\n%s", stdout, err, stderr.String())
	}
	if got.Sum != 42 || got.Dup != "duplicate_id" || fmt.Sprint(got.Many) != "[0 2 4 6 8]" ||
		got.Timeout != "TimeoutError" || got.Missing != 404 || strings.Join(got.Queues, ",") != "e2e,e2e-paused" ||
		strings.Join(got.Cancel, ",") != "pending,dead,cancelled" || got.Workers != 4 {
		t.Fatalf("script output: %s", stdout)
	}
	fail, _ := got.Fail.(map[string]any)
	if fail["attempts"] != 2.0 || fail["message"] != "upstream said no" {
		t.Fatalf("dead task as seen from Python: %v", got.Fail)
	}
}
