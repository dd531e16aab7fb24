package cli

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

// Range checks of the command line (issue 8 repro: --retries
// 9223372036854775807 was accepted and stored negative in Redis).
func TestEnqueueRanges(t *testing.T) {
	t.Setenv(brokerEnv, "")
	ctx := queueCtx(t, 30*time.Second)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--retries", "9223372036854775807"}, "--retries 9223372036854775807: must be in 0..1000000"},
		{[]string{"--retries", "1000001"}, "--retries 1000001: must be in 0..1000000"},
		{[]string{"--retries", "9223372036854775808"}, `invalid argument "9223372036854775808" for "--retries"`},
		{[]string{"--timeout", "900000h"}, "--timeout 900000h0m0s: is over the maximum of 100 years"},
		{[]string{"--retention", "-1"}, "--retention -1s: must not be negative"},
		{[]string{"--in", "1e9"}, `invalid argument "1e9" for "--in" flag`},
		{[]string{"--wait", "--wait-timeout", "-1s"}, "--wait-timeout -1s: must be in 0 to 100 years"},
		{[]string{"--args", "[1"}, "--args is not valid JSON"},
		{[]string{"--args", `{"a":1}`}, "--args: want a JSON array"},
		{[]string{"--kwargs", "[1]"}, "--kwargs: want a JSON object"},
		{[]string{"--payload", "1", "--args", "[1]"}, "--payload cannot be combined with --args"},
	} {
		args := append([]string{"enqueue", "--broker", unusedBroker, "--kind", "k"}, c.args...)
		r := queueRun(t, ctx, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
}

// --args and --kwargs enqueue a call (encoding "args"); durations take
// seconds too.
func TestEnqueueArgs(t *testing.T) {
	url, _ := queueTestRedis(t)
	ctx := queueCtx(t, 30*time.Second)
	id := strings.TrimSpace(queueMust(t, ctx, "", "enqueue", "--broker", url, "--kind", "add", "--args", "[2, 3]", "--kwargs", `{"b": 3}`, "--in", "90", "--retries", "1000000"))
	var tk struct {
		Encoding   string          `json:"encoding"`
		Payload    json.RawMessage `json:"payload"`
		State      string          `json:"state"`
		MaxRetries int             `json:"max_retries"`
		StartedAt  *time.Time      `json:"started_at"`
	}
	out := queueMust(t, ctx, "", "inspect", "--broker", url, "task", id, "--json")
	if err := json.Unmarshal([]byte(out), &tk); err != nil {
		t.Fatal(err)
	}
	if tk.Encoding != queue.EncodingArgs || string(compact(tk.Payload)) != `{"args":[2,3],"kwargs":{"b":3}}` ||
		tk.State != "scheduled" || tk.MaxRetries != queue.MaxRetriesLimit {
		t.Fatalf("task %s", out)
	}
	// inspect --json leaves unset times out, as the API does.
	if tk.StartedAt != nil || strings.Contains(out, "0001-01-01") {
		t.Fatalf("inspect --json shows zero times: %s", out)
	}
	out = queueMust(t, ctx, "", "inspect", "--broker", url, "tasks", "--state", "scheduled", "--json")
	if strings.Contains(out, "0001-01-01") || !strings.Contains(out, `"encoding": "args"`) {
		t.Fatalf("inspect tasks --json: %s", out)
	}
}

// The whole file is checked before anything is enqueued, with the spec's
// messages.
func TestEnqueueFileSpec(t *testing.T) {
	t.Setenv(brokerEnv, "")
	ctx := queueCtx(t, 30*time.Second)
	for _, c := range []struct{ file, want string }{
		{`{"kind":"a","max_retries":9223372036854775807}`, "line 1: max_retries 9223372036854775807: must be in 0..1000000"},
		{`{"kind":"a","retries":-1}`, "line 1: max_retries -1: must be in 0..1000000"},
		{`{"kind":"a","id":"x"}` + "\n" + `{"kind":"b","id":"x"}`, `line 2: task ID "x" in queue "default" is on line 1 too`},
		{`{"kind":"a","payload":"` + strings.Repeat("x", queue.DefaultMaxPayloadSize) + `"}`, "over the limit of 1048576 bytes"},
		{`{"kind":"a","deadline":"2001-01-01T00:00:00Z"}`, "line 1: deadline 2001-01-01T00:00:00Z: has already passed"},
		{`{"kind":"a","args":[1],"payload":2}`, "line 1: give one of payload"},
	} {
		r := queueRun(t, ctx, c.file, "enqueue", "--broker", unusedBroker, "--file", "-")
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("file %.60q: exit %d, stderr %q; want exit 2 and %q", c.file, r.code, r.stderr, c.want)
		}
	}
}

// countingReader is an endless stdin that counts what is read of it.
type countingReader struct{ n int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	c.n += int64(len(p))
	return len(p), nil
}

// Repro (issue 8): --payload - read all of stdin (100 MB into 370 MB of
// memory) before the 1 MiB payload limit refused it. It now reads at most
// the limit.
func TestEnqueueStdinPayloadBounded(t *testing.T) {
	var r countingReader
	_, err := readStdinPayload(io.Reader(&r))
	if err == nil || !strings.Contains(err.Error(), "over the limit of 1048576 bytes") {
		t.Fatalf("err %v", err)
	}
	if r.n > maxStdinPayload+64<<10 {
		t.Fatalf("read %d bytes of an endless stdin, limit %d", r.n, maxStdinPayload)
	}
	t.Setenv(brokerEnv, "")
	res := queueRun(t, queueCtx(t, 30*time.Second), strings.Repeat(" ", maxStdinPayload+1), "enqueue", "--broker", unusedBroker, "--kind", "k", "--payload", "-")
	if res.code != 2 || !strings.Contains(res.stderr, "stdin holds more than 2097152 bytes") {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
}

func TestInspectRanges(t *testing.T) {
	t.Setenv(brokerEnv, "")
	ctx := queueCtx(t, 30*time.Second)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--offset", "-5"}, "--offset -5: must be in 0..1000000000"},
		{[]string{"--offset", "100000000000000000"}, "--offset 100000000000000000: must be in 0..1000000000"},
		{[]string{"--limit", "-1"}, "--limit -1: must be in 0..1000000000"},
	} {
		args := append([]string{"inspect", "--broker", unusedBroker, "tasks", "--state", "pending"}, c.args...)
		r := queueRun(t, ctx, "", args...)
		if r.code != 2 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and %q", c.args, r.code, r.stderr, c.want)
		}
	}
}

// The unsupported-scheme message names every scheme accepted, unix:// and
// redis+sentinel:// included.
func TestBrokerSchemeMessage(t *testing.T) {
	t.Setenv(brokerEnv, "")
	r := queueRun(t, queueCtx(t, 10*time.Second), "", "inspect", "--broker", "ftp://h", "queues")
	if r.code != 2 || !strings.Contains(r.stderr, "want redis://, rediss://, unix:// or redis+sentinel://") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}
