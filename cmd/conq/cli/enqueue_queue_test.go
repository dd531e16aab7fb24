package cli

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// A broker URL that is never dialled: these errors come before any
// connection.
const unusedBroker = "redis://127.0.0.1:1/0"

func TestEnqueueInvalidInput(t *testing.T) {
	t.Setenv(brokerEnv, "")
	ctx := queueCtx(t, 30*time.Second)
	big := strings.Repeat("x", queue.DefaultMaxPayloadSize+10)
	cases := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"bad payload", "", []string{"--kind", "k", "--payload", "{bad"}, "--payload is not valid JSON"},
		{"retries", "", []string{"--kind", "k", "--retries", "-1"}, "--retries -1: must be in 0..1000000"},
		{"in", "", []string{"--kind", "k", "--in", "bogus"}, `invalid argument "bogus" for "--in"`},
		{"negative in", "", []string{"--kind", "k", "--in", "-5s"}, "must not be negative"},
		{"queue name", "", []string{"--kind", "k", "--queue", "bad queue"}, `queue name "bad queue"`},
		{"kind", "", []string{"--kind", "has space"}, "task kind"},
		{"no kind", "", []string{"--payload", "1"}, "--kind is required"},
		{"oversize", `"` + big + `"`, []string{"--kind", "k", "--payload", "-"}, "over the limit of 1048576 bytes"},
		{"id", "", []string{"--kind", "k", "--id", "a b"}, "task ID"},
		{"scheme", "", []string{"--kind", "k", "--broker", "http://localhost:6379"}, `unsupported scheme "http"`},
		{"no scheme", "", []string{"--kind", "k", "--broker", "localhost:6379"}, "want redis://"},
		{"wait-timeout", "", []string{"--kind", "k", "--wait-timeout", "1s"}, "--wait-timeout needs --wait"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"enqueue"}, c.args...)
			if !strings.Contains(strings.Join(c.args, " "), "--broker") {
				args = append(args, "--broker", unusedBroker)
			}
			r := queueRun(t, ctx, c.stdin, args...)
			if r.code != 2 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", r.code, r.stderr, c.want)
			}
		})
	}
}

func TestEnqueueNeedsSharedBroker(t *testing.T) {
	t.Setenv(brokerEnv, "")
	r := queueRun(t, queueCtx(t, 10*time.Second), "", "enqueue", "--kind", "k")
	if r.code != 2 || !strings.Contains(r.stderr, "needs a shared broker") || !strings.Contains(r.stderr, "--broker redis://") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestEnqueueUnreachableBroker(t *testing.T) {
	r := queueRun(t, queueCtx(t, 30*time.Second), "", "enqueue", "--kind", "k", "--broker", "redis://127.0.0.1:1/0?dial_timeout=200ms")
	if r.code != 1 || !strings.Contains(r.stderr, "connect to redis://127.0.0.1:1/0") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestEnqueueFileBadLineEnqueuesNothing(t *testing.T) {
	url, _ := queueTestRedis(t)
	ctx := queueCtx(t, 30*time.Second)
	for _, c := range []struct{ file, want string }{
		{`{"kind":"a","payload":1}` + "\n\n" + `{"kind":"b","payload":{"x":` + "\n", "line 3: not a task object"},
		{`{"kind":"a"}` + "\n" + `{"kind":"a","retries":-2}`, "line 2: "},
		{`{"kind":"a"}` + "\n" + `{"kind":"a","in":"soon"}`, `line 2: in "soon": want a Go duration`},
		{`{"kind":"a","colour":"red"}`, `line 1: unknown field "colour"`},
		{`{"payload":1}`, `line 1: kind: missing`},
		{`{"kind":"a","id":"x"}` + "\n" + `{"kind":"a","id":"x"}`, "line 2: "},
		{"", "no tasks in the file"},
	} {
		file := filepath.Join(t.TempDir(), "tasks.jsonl")
		if err := os.WriteFile(file, []byte(c.file), 0o600); err != nil {
			t.Fatal(err)
		}
		r := queueRun(t, ctx, "", "enqueue", "--broker", url, "--file", file)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("file %q: exit %d, stderr %q; want exit 2 and %q", c.file, r.code, r.stderr, c.want)
		}
	}
	out := queueMust(t, ctx, "", "inspect", "--broker", url, "queues", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("bad files enqueued something: %s", out)
	}
}

func TestEnqueueFile(t *testing.T) {
	url, _ := queueTestRedis(t)
	ctx := queueCtx(t, 30*time.Second)
	lines := `{"kind":"a","payload":{"n":1}}
{"kind":"b","payload":[1,2],"queue":"low","retries":1,"id":"fixed-id"}

{"kind":"c","in":"1h","timeout":"5s","retention":"1m"}
`
	out := queueMust(t, ctx, lines, "enqueue", "--broker", url, "--file", "-", "--queue", "high")
	ids := strings.Fields(out)
	if len(ids) != 3 || ids[1] != "fixed-id" {
		t.Fatalf("ids = %q", ids)
	}
	var tk struct {
		Queue      string          `json:"queue"`
		State      string          `json:"state"`
		MaxRetries int             `json:"max_retries"`
		Payload    json.RawMessage `json:"payload"`
		Timeout    string          `json:"timeout"`
	}
	out = queueMust(t, ctx, "", "inspect", "--broker", url, "task", "fixed-id", "--json")
	if err := json.Unmarshal([]byte(out), &tk); err != nil {
		t.Fatal(err)
	}
	if tk.Queue != "low" || tk.MaxRetries != 1 || string(compact(tk.Payload)) != "[1,2]" || tk.State != "pending" {
		t.Fatalf("task = %+v", tk)
	}
	out = queueMust(t, ctx, "", "inspect", "--broker", url, "task", ids[2], "--json")
	if err := json.Unmarshal([]byte(out), &tk); err != nil {
		t.Fatal(err)
	}
	if tk.Queue != "high" || tk.State != "scheduled" || tk.Timeout != "5s" {
		t.Fatalf("task = %+v", tk)
	}
	// An ID that exists: reported by line, the rest enqueued, exit 1.
	r := queueRun(t, ctx, `{"kind":"a"}`+"\n"+`{"kind":"b","queue":"low","id":"fixed-id"}`, "enqueue", "--broker", url, "--file", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "line 2:") || !strings.Contains(r.stderr, "already exists") || len(strings.Fields(r.stdout)) != 1 {
		t.Fatalf("conflict: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
}

// startGoWorker runs an in-process queue worker with Go handlers on the
// test Redis and prefix.
func startGoWorker(t *testing.T, url, prefix string, register func(w *queue.Worker)) {
	t.Helper()
	ctx := context.Background()
	b, err := redisbroker.Open(ctx, url, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	w, err := queue.NewWorker(b, queue.WorkerConfig{
		Concurrency: 4, Logger: quietLogger(testWriter{t}), ForwardInterval: 50 * time.Millisecond,
		RetryDelay: func(int, error, *queue.TaskInfo) time.Duration { return 50 * time.Millisecond },
	})
	if err != nil {
		t.Fatal(err)
	}
	register(w)
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = w.Shutdown(ctx)
		b.Close()
	})
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestEnqueueWait(t *testing.T) {
	url, prefix := queueTestRedis(t)
	ctx := queueCtx(t, 60*time.Second)
	type args struct{ A, B int }
	startGoWorker(t, url, prefix, func(w *queue.Worker) {
		queue.HandleJSON(w, "add", func(_ context.Context, a args) (int, error) { return a.A + a.B, nil })
		w.HandleFunc("raw", func(_ context.Context, t *queue.TaskInfo) ([]byte, error) { return []byte("plain text"), nil })
		w.HandleFunc("flaky", func(context.Context, *queue.TaskInfo) ([]byte, error) { return nil, errors.New("upstream said no") })
	})
	if out := queueMust(t, ctx, "", "enqueue", "--broker", url, "--kind", "add", "--payload", `{"A":2,"B":40}`, "--wait"); out != "42\n" {
		t.Fatalf("add = %q", out)
	}
	out := queueMust(t, ctx, "", "enqueue", "--broker", url, "--kind", "raw", "--wait", "--json")
	var res struct {
		State  string `json:"state"`
		Result string `json:"result"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.State != "completed" || res.Result != "plain text" {
		t.Fatalf("raw --json = %q (%v)", out, err)
	}

	// Malformed JSON for a typed handler: dead at once, with a clear error.
	r := queueRun(t, ctx, "", "enqueue", "--broker", url, "--kind", "add", "--payload", `"not an object"`, "--wait")
	if r.code != 1 || !strings.Contains(r.stderr, `malformed JSON payload for task kind "add"`) || !strings.Contains(r.stderr, "after 1 attempt") {
		t.Fatalf("malformed: exit %d, stderr %q", r.code, r.stderr)
	}
	// Unknown kind: retried, then dead, naming the kind.
	r = queueRun(t, ctx, "", "enqueue", "--broker", url, "--kind", "nobody_handles_this", "--retries", "1", "--wait")
	if r.code != 1 || !strings.Contains(r.stderr, `no handler registered for task kind "nobody_handles_this"`) || !strings.Contains(r.stderr, "after 2 attempt") {
		t.Fatalf("unknown kind: exit %d, stderr %q", r.code, r.stderr)
	}
	// --wait-timeout on a task nobody will run.
	r = queueRun(t, ctx, "", "enqueue", "--broker", url, "--kind", "add", "--queue", "unserved", "--wait", "--wait-timeout", "300ms")
	if r.code != 1 || !strings.Contains(r.stderr, "did not finish within --wait-timeout") || strings.Contains(r.stderr, "failed:") {
		t.Fatalf("wait-timeout: exit %d, stderr %q", r.code, r.stderr)
	}
	// ... and on one whose attempts fail and are retried: the timeout says
	// why it has not finished.
	r = queueRun(t, ctx, "", "enqueue", "--broker", url, "--kind", "flaky", "--retries", "1000", "--wait", "--wait-timeout", "500ms")
	if r.code != 1 || !strings.Contains(r.stderr, "did not finish within --wait-timeout") || !strings.Contains(r.stderr, "failed: upstream said no") {
		t.Fatalf("wait-timeout of a retried task: exit %d, stderr %q", r.code, r.stderr)
	}
}
