package reliability

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
)

// TestCLIBadInput drives bad input through the conq binary against a
// worker process with typed (HandleJSON) handlers.
func TestCLIBadInput(t *testing.T) {
	url, prefix := testRedis(t)
	env := []string{"CONQ_BROKER_PREFIX=" + prefix, "CONQ_BROKER="}
	startProc(t, "testworker", nil, workerBin, "-broker", url, "-prefix", prefix, "-concurrency", "2")

	// A good task first: the worker is up.
	if code, out, errs := conq(t, env, "", "enqueue", "--broker", url, "--kind", "typed", "--payload", `{"a":1,"b":2}`, "--wait"); code != 0 || out != "3\n" {
		t.Fatalf("typed: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// Malformed JSON for a typed handler: dead at once with a clear error.
	code, _, errs := conq(t, env, "", "enqueue", "--broker", url, "--kind", "typed", "--payload", `[1,2]`, "--wait")
	if code != 1 || !strings.Contains(errs, `malformed JSON payload for task kind "typed"`) || !strings.Contains(errs, "after 1 attempt") {
		t.Fatalf("malformed: exit %d, stderr %q", code, errs)
	}
	// Unknown kind: retried, then dead, with an error naming the kind.
	code, id, errs := conq(t, env, "", "enqueue", "--broker", url, "--kind", "no_such_kind", "--retries", "1")
	if code != 0 {
		t.Fatalf("enqueue unknown kind: exit %d, %s", code, errs)
	}
	id = strings.TrimSpace(id)
	var task struct {
		State  string `json:"state"`
		Errors []struct {
			Kind    string `json:"kind"`
			Message string `json:"message"`
		} `json:"errors"`
	}
	for deadline := time.Now().Add(30 * time.Second); task.State != "dead"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("unknown-kind task is %q, not dead", task.State)
		}
		code, out, errs := conq(t, env, "", "inspect", "--broker", url, "task", id, "--json")
		if code != 0 {
			t.Fatalf("inspect: exit %d, %s", code, errs)
		}
		if err := json.Unmarshal([]byte(out), &task); err != nil {
			t.Fatal(err)
		}
	}
	if len(task.Errors) != 2 || task.Errors[1].Kind != "unknown_kind" || !strings.Contains(task.Errors[1].Message, `"no_such_kind"`) {
		t.Fatalf("unknown kind errors = %+v", task.Errors)
	}

	// Errors at enqueue: clear message, exit status 2, nothing enqueued.
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, []byte(`"`+strings.Repeat("x", 2<<20)+`"`), 0o600); err != nil {
		t.Fatal(err)
	}
	bigPayload, _ := os.ReadFile(big)
	for _, c := range []struct {
		stdin string
		args  []string
		want  string
	}{
		{string(bigPayload), []string{"--kind", "typed", "--payload", "-"}, "over the limit of 1048576 bytes"},
		{"", []string{"--kind", "typed", "--payload", "{not json"}, "--payload is not valid JSON"},
		{"", []string{"--kind", "typed", "--retries", "-1"}, "--retries -1: must be in 0..1000000"},
		{"", []string{"--kind", "typed", "--in", "bogus"}, `invalid argument "bogus" for "--in" flag`},
		{"", []string{"--kind", "typed", "--queue", "no/slashes"}, `queue name "no/slashes"`},
		{"", []string{"--kind", "typed", "--broker", "ftp://127.0.0.1"}, `unsupported scheme "ftp"`},
	} {
		args := append([]string{"enqueue"}, c.args...)
		if !strings.Contains(strings.Join(c.args, " "), "--broker") {
			args = append(args, "--broker", url)
		}
		code, _, errs := conq(t, env, c.stdin, args...)
		if code != 2 || !strings.Contains(errs, c.want) {
			t.Errorf("conq %s: exit %d, stderr %q; want exit 2 and %q", strings.Join(c.args, " ")[:min(60, len(strings.Join(c.args, " ")))], code, errs, c.want)
		}
	}
	_, out, _ := conq(t, env, "", "inspect", "--broker", url, "queues", "--json")
	var qs []struct {
		Name   string           `json:"name"`
		Counts map[string]int64 `json:"counts"`
	}
	if err := json.Unmarshal([]byte(out), &qs); err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, q := range qs {
		for _, n := range q.Counts {
			total += n
		}
	}
	if total != 3 { // the typed results kept for --wait, and the dead tasks
		t.Fatalf("tasks in the broker: %s", out)
	}
}

const pythonTasks = `import os, sys, time
sys.path.insert(0, os.environ["CONQ_SDK"])
import conq

@conq.task("add", json=True)
def add(args):
    return args["a"] + args["b"]

@conq.task("slow_square", json=True)
def slow_square(n):
    time.sleep(0.05)
    return n * n

if __name__ == "__main__":
    conq.run()
`

// TestPythonWorker runs conq worker --exec with a Python SDK module as a
// real process, SIGKILLs it mid-run and restarts it: nothing is lost.
func TestPythonWorker(t *testing.T) {
	url, prefix := testRedis(t)
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Need(t, "python3 not found", "install it (apt-get install -y python3)")
	}
	sdk, _ := filepath.Abs("../../sdk/python")
	module := filepath.Join(t.TempDir(), "tasks.py")
	if err := os.WriteFile(module, []byte(pythonTasks), 0o600); err != nil {
		t.Fatal(err)
	}
	env := []string{"CONQ_BROKER_PREFIX=" + prefix, "CONQ_BROKER=", "CONQ_SDK=" + sdk}
	startWorker := func() *proc {
		return startProc(t, "conq worker", env, conqBin, "worker", "--broker", url, "--exec", py+" "+module,
			"--concurrency", "4", "--lease", "2s", "--shutdown-timeout", "2s")
	}
	w := startWorker()

	code, out, errs := conq(t, env, "", "enqueue", "--broker", url, "--kind", "add", "--payload", `{"a": 20, "b": 22}`, "--wait", "--wait-timeout", "60s")
	if code != 0 || out != "42\n" {
		t.Fatalf("add: exit %d, stdout %q, stderr %q", code, out, errs)
	}

	const n = 300
	var lines strings.Builder
	for i := range n {
		lines.WriteString(`{"kind":"slow_square","payload":` + strconv.Itoa(i) + `,"retention":"1h","id":"sq-` + strconv.Itoa(i) + `"}` + "\n")
	}
	if code, out, errs := conq(t, env, lines.String(), "enqueue", "--broker", url, "--file", "-"); code != 0 || len(strings.Fields(out)) != n {
		t.Fatalf("enqueue --file: exit %d, %d ids, stderr %q", code, len(strings.Fields(out)), errs)
	}
	completed := func() int64 {
		_, out, _ := conq(t, env, "", "inspect", "--broker", url, "queues", "--json")
		var qs []struct {
			Counts map[string]int64 `json:"counts"`
		}
		_ = json.Unmarshal([]byte(out), &qs)
		if len(qs) == 0 {
			return 0
		}
		return qs[0].Counts["completed"] - 1 // the add task
	}
	for deadline := time.Now().Add(30 * time.Second); completed() < 40; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the worker makes no progress")
		}
	}
	w.kill() // SIGKILL: its Python processes die with it (Pdeathsig)
	at := completed()
	t.Logf("conq worker SIGKILLed with %d of %d tasks completed", at, n)
	if at >= n {
		t.Fatal("all tasks completed before the kill; nothing was tested")
	}
	w = startWorker()
	for deadline := time.Now().Add(60 * time.Second); completed() < n; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d tasks completed after the restart", completed(), n)
		}
	}
	for _, i := range []int{0, 7, n - 1} {
		code, out, errs := conq(t, env, "", "inspect", "--broker", url, "task", "sq-"+strconv.Itoa(i), "--json")
		if code != 0 || !strings.Contains(out, `"result": `+strconv.Itoa(i*i)) {
			t.Fatalf("task sq-%d: exit %d, %s %s", i, code, out, errs)
		}
	}
	if err := w.stop(t, 15*time.Second); err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
}
