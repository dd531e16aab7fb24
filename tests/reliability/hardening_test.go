package reliability

import (
	"strings"
	"testing"
	"time"
)

// TestCLIHardening drives the issue 8 repros through the conq binary: each
// bad input ends with a clear error and the right exit status, never a Go
// stack trace, a corrupted task or a long wait.
func TestCLIHardening(t *testing.T) {
	url, prefix := testRedis(t)
	env := []string{"CONQ_BROKER_PREFIX=" + prefix, "CONQ_BROKER="}
	host := strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0")
	for _, c := range []struct {
		name  string
		stdin string
		args  []string
		code  int
		want  string
	}{
		{"absurd retries", "", []string{"enqueue", "--broker", url, "--kind", "k", "--retries", "9223372036854775807"}, 2,
			"--retries 9223372036854775807: must be in 0..1000000"},
		{"absurd retries in a file", `{"kind":"k","max_retries":9223372036854775807}`, []string{"enqueue", "--broker", url, "--file", "-"}, 2,
			"line 1: max_retries 9223372036854775807: must be in 0..1000000"},
		{"pool_size", "", []string{"inspect", "--broker", url + "?pool_size=-5", "queues"}, 2,
			`option pool_size="-5": want a whole number in 1..10000`},
		{"max_retries", "", []string{"enqueue", "--broker", url + "?max_retries=-5", "--kind", "k"}, 2,
			`option max_retries="-5": want a whole number in -1..100`},
		{"dial_timeout", "", []string{"inspect", "--broker", url + "?dial_timeout=-1s", "queues"}, 2,
			`option dial_timeout="-1s"`},
		{"rediss to plain text", "", []string{"inspect", "--broker", "rediss://" + host + "/0", "queues"}, 1,
			"server does not speak TLS"},
		{"unknown scheme", "", []string{"inspect", "--broker", "ftp://" + host, "queues"}, 2,
			"want redis://, rediss://, unix:// or redis+sentinel://"},
		{"huge offset", "", []string{"inspect", "--broker", url, "tasks", "--state", "pending", "--offset", "100000000000000000"}, 2,
			"--offset 100000000000000000: must be in 0..1000000000"},
		{"negative offset", "", []string{"inspect", "--broker", url, "tasks", "--state", "pending", "--offset", "-5"}, 2,
			"--offset -5: must be in 0..1000000000"},
		{"stdin payload", strings.Repeat(" ", 8<<20), []string{"enqueue", "--broker", url, "--kind", "k", "--payload", "-"}, 2,
			"stdin holds more than 2097152 bytes, over the limit of 1048576 bytes"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			code, _, errs := conq(t, env, c.stdin, c.args...)
			if code != c.code || !strings.Contains(errs, c.want) || strings.Contains(errs, "goroutine ") {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, errs, c.code, c.want)
			}
			t.Logf("%s: exit %d after %v", c.name, code, time.Since(start).Round(time.Millisecond))
		})
	}
	// Nothing was enqueued by any of them.
	_, out, _ := conq(t, env, "", "inspect", "--broker", url, "queues", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("bad input enqueued tasks: %s", out)
	}
}
