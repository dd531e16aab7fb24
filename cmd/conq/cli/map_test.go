package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/conqhq/conq/internal/testenv"
)

const mapTestWorker = `
import os, sys, time
import conq

@conq.task("square", json=True)
def square(x):
    if x == 13:
        print("unlucky", file=sys.stderr, flush=True)
        os._exit(9)  # the chosen input crashes its worker
    if x == 7:
        raise ValueError("seven is not allowed")
    return x * x

@conq.task("sleep", json=True)
def sleep(x):
    time.sleep(x)
    return x

@conq.task(raw=True)
def raw(data):
    return b"raw " + bytes(data)

conq.run()
`

// pythonWorkerCmd writes a Python worker using the SDK and returns the
// --worker-cmd running it.
func pythonWorkerCmd(t *testing.T, src string) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Need(t, "python3 not found", "install it with apt-get install python3")
	}
	sdk, _ := filepath.Abs("../../../sdk/python")
	t.Setenv("PYTHONPATH", sdk)
	script := filepath.Join(t.TempDir(), "worker.py")
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s '%s'", py, script)
}

func runConq(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func outputLines(t *testing.T, s string) []map[string]any {
	t.Helper()
	var res []map[string]any
	for _, l := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("output line %q: %v", l, err)
		}
		res = append(res, m)
	}
	return res
}

func TestMapCrashOnOneLine(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), ignoreSpawner)
	worker := pythonWorkerCmd(t, mapTestWorker)
	var in strings.Builder
	for i := 1; i <= 30; i++ {
		fmt.Fprintln(&in, i)
	}
	in.WriteString("{not json\n")
	in.WriteString("\"a string\"\n")
	code, stdout, stderr := runConq(t, in.String(), "map", "--worker-cmd", worker, "--task", "square", "--workers", "3", "--keep-going")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	lines := outputLines(t, stdout)
	if len(lines) != 32 {
		t.Fatalf("%d output lines for 32 input lines:\n%s", len(lines), stdout)
	}
	for i := 1; i <= 30; i++ {
		got := lines[i-1]
		switch i {
		case 13:
			e, _ := got["error"].(map[string]any)
			if e["type"] != "worker_crashed" || !strings.Contains(e["message"].(string), "exit status 9") || !strings.Contains(e["message"].(string), "unlucky") {
				t.Errorf("line 13 = %v", got)
			}
		case 7:
			e, _ := got["error"].(map[string]any)
			if e["type"] != "task_error" || e["exception"] != "ValueError" || e["message"] != "ValueError: seven is not allowed" {
				t.Errorf("line 7 = %v", got)
			}
		default:
			if !reflect.DeepEqual(got, map[string]any{"result": float64(i * i)}) {
				t.Errorf("line %d = %v", i, got)
			}
		}
	}
	if e, _ := lines[30]["error"].(map[string]any); e["type"] != "bad_input" {
		t.Errorf("bad line = %v", lines[30])
	}
	if e, _ := lines[31]["error"].(map[string]any); e["type"] != "task_error" || e["exception"] != "TypeError" {
		t.Errorf("string line = %v", lines[31])
	}
	if !strings.Contains(stderr, "4 of 32 lines failed") {
		t.Errorf("stderr lacks the summary:\n%s", stderr)
	}
}

// Without --keep-going every line is still processed; only the exit status
// tells that one failed.
func TestMapFailureExitStatus(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), ignoreSpawner)
	worker := pythonWorkerCmd(t, mapTestWorker)
	code, stdout, stderr := runConq(t, "1\n2\n13\n4\n5\n", "map", "--worker-cmd", worker, "--task", "square", "--workers", "2")
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	lines := outputLines(t, stdout)
	if len(lines) != 5 || lines[0]["result"] != float64(1) || lines[1]["result"] != float64(4) || lines[3]["result"] != float64(16) || lines[4]["result"] != float64(25) {
		t.Fatalf("output:\n%s", stdout)
	}
	if e, _ := lines[2]["error"].(map[string]any); e["type"] != "worker_crashed" {
		t.Fatalf("line 3 = %v", lines[2])
	}
	if !strings.Contains(stderr, "1 of 5 lines failed; first: line 3") || !strings.Contains(stderr, "--keep-going") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

func TestMapTimeoutAndRawResults(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), ignoreSpawner)
	worker := pythonWorkerCmd(t, mapTestWorker)
	code, stdout, stderr := runConq(t, "0.01\n5\n", "map", "--worker-cmd", worker, "--task", "sleep", "--timeout", "300ms", "-k")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	lines := outputLines(t, stdout)
	if lines[0]["result"] != 0.01 {
		t.Errorf("line 1 = %v", lines[0])
	}
	if e, _ := lines[1]["error"].(map[string]any); e["type"] != "timeout" {
		t.Errorf("line 2 = %v", lines[1])
	}
	// A raw task's non-JSON result is carried as a JSON string.
	code, stdout, _ = runConq(t, `{"a": 1}`+"\n", "map", "--worker-cmd", worker, "--task", "raw")
	if code != 0 || strings.TrimSpace(stdout) != `{"result":"raw {\"a\": 1}"}` {
		t.Fatalf("raw: exit %d, %s", code, stdout)
	}
}

func TestMapStartError(t *testing.T) {
	code, _, stderr := runConq(t, "1\n", "map", "--worker-cmd", "/nonexistent/worker", "--task", "x", "--workers", "1")
	if code != 2 || !strings.Contains(stderr, "failed to start") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	code, _, stderr = runConq(t, "", "map", "--worker-cmd", "'unterminated", "--task", "x")
	if code != 2 || !strings.Contains(stderr, "unterminated") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestSplitCommandLine(t *testing.T) {
	cases := map[string][]string{
		`python3 worker.py`:                {"python3", "worker.py"},
		`  a   'b c'  "d \"e\" $f" g\ h  `: {"a", "b c", `d "e" $f`, "g h"},
		`x ''`:                             {"x", ""},
		`"a"'b'c`:                          {"abc"},
	}
	for in, want := range cases {
		got, err := splitCommandLine(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("split(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "   ", `"open`, `'open`} {
		if _, err := splitCommandLine(bad); err == nil {
			t.Errorf("split(%q) succeeded", bad)
		}
	}
}

// ignoreSpawner: procpool forks workers from one goroutine that lives as long
// as the process (see procpool/spawn.go).
var ignoreSpawner = goleak.IgnoreAnyFunction("github.com/conqhq/conq/procpool.spawnLoop")

const forkingWorker = `
import os, time
import conq

@conq.task("fork_exit", json=True)
def fork_exit(path):
    pid = os.fork()
    if pid == 0:
        time.sleep(120)  # holds the worker's pipes
        os._exit(0)
    with open(path, "w") as f:
        f.write(str(pid))
    os._exit(1)

conq.run()
`

// A worker that exits while a child it forked holds its pipes: the line
// fails as worker_crashed at once (not as a timeout, not a hang), and the
// child dies with it.
func TestMapWorkerExitsWhileChildHoldsPipes(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), ignoreSpawner)
	worker := pythonWorkerCmd(t, forkingWorker)
	for _, extra := range [][]string{nil, {"--timeout", "3s"}} {
		pidFile := filepath.Join(t.TempDir(), "pid")
		in, _ := json.Marshal(pidFile)
		args := append([]string{"map", "--worker-cmd", worker, "--task", "fork_exit", "-p", "1", "-k"}, extra...)
		done := make(chan struct{})
		var code int
		var stdout, stderr string
		go func() { code, stdout, stderr = runConq(t, string(in)+"\n", args...); close(done) }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			t.Fatalf("conq map %v hangs", extra)
		}
		lines := outputLines(t, stdout)
		if e, _ := lines[0]["error"].(map[string]any); code != 0 || len(lines) != 1 || e["type"] != "worker_crashed" {
			t.Fatalf("%v: exit %d, output %s; stderr:\n%s", extra, code, stdout, stderr)
		}
		b, err := os.ReadFile(pidFile)
		if err != nil {
			t.Fatal(err)
		}
		stat := "/proc/" + strings.TrimSpace(string(b)) + "/stat"
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := os.ReadFile(stat)
			if err != nil || strings.Contains(string(st), ") Z ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the forked child outlived its worker: %s", st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// --concurrency lines in flight on fewer --processes: a Go SDK worker takes
// them at once (each call waits until 8 run together in its process).
func TestMapConcurrencyOverProcesses(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), ignoreSpawner)
	bin := filepath.Join(t.TempDir(), "slotworker")
	if out, err := exec.Command("go", "build", "-o", bin, "./testdata/slotworker").CombinedOutput(); err != nil {
		t.Fatalf("building the worker: %v\n%s", err, out)
	}
	in := strings.Repeat("8\n", 16)
	code, stdout, stderr := runConq(t, in, "map", "--worker-cmd", bin, "--task", "barrier", "--processes", "1", "--concurrency", "8")
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	lines := outputLines(t, stdout)
	if len(lines) != 16 {
		t.Fatalf("output:\n%s", stdout)
	}
	for i, l := range lines {
		if l["result"] != lines[0]["result"] || l["result"] == nil {
			t.Fatalf("line %d = %v: want every line answered by the one process", i+1, l)
		}
	}
	if code, _, stderr := runConq(t, "", "map", "--worker-cmd", bin, "--task", "x", "--processes", "0"); code != 2 || !strings.Contains(stderr, "--processes must be at least 1") {
		t.Fatalf("--processes 0: exit %d, %s", code, stderr)
	}
}
