package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

const primesQueueNumbers = "2,142702110479723,4444444444444444,9,97"

func checkPrimesQueueJSON(t *testing.T, out string) {
	t.Helper()
	var res struct {
		Mode    string `json:"mode"`
		Workers int    `json:"workers"`
		Checks  []struct {
			N     uint64 `json:"n"`
			Prime bool   `json:"prime"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	want := map[uint64]bool{2: true, 142702110479723: true, 4444444444444444: false, 9: false, 97: true}
	if res.Mode != "queue" || res.Workers != 2 || len(res.Checks) != len(want) {
		t.Fatalf("result = %+v", res)
	}
	for _, c := range res.Checks {
		if p, ok := want[c.N]; !ok || p != c.Prime {
			t.Errorf("check %d = %v", c.N, c.Prime)
		}
		delete(want, c.N)
	}
}

func TestPrimesQueueEmbedded(t *testing.T) {
	t.Setenv(brokerEnv, "")
	ctx := queueCtx(t, 60*time.Second)
	out := queueMust(t, ctx, "", "primes", "--mode", "queue", "--workers", "2", "--numbers", primesQueueNumbers)
	if !strings.Contains(out, "with 2 workers (queue)") || !strings.Contains(out, "5 checks in") || !strings.Contains(out, "97  P") {
		t.Fatalf("output:\n%s", out)
	}
	checkPrimesQueueJSON(t, queueMust(t, ctx, "", "primes", "--mode", "queue", "--workers", "2", "--numbers", primesQueueNumbers, "--json"))
}

func TestPrimesQueueRedis(t *testing.T) {
	url, _ := queueTestRedis(t)
	ctx := queueCtx(t, 60*time.Second)
	checkPrimesQueueJSON(t, queueMust(t, ctx, "", "primes", "--mode", "queue", "--broker", url, "--workers", "2", "--numbers", primesQueueNumbers, "--json"))
	// The kept results are tidied up.
	if out := queueMust(t, ctx, "", "inspect", "--broker", url, "tasks", "--state", "completed"); !strings.Contains(out, "(no tasks)") {
		t.Fatalf("completed tasks left behind:\n%s", out)
	}
}

func TestPrimesQueueFlags(t *testing.T) {
	t.Setenv(brokerEnv, "")
	ctx := queueCtx(t, 10*time.Second)
	r := queueRun(t, ctx, "", "primes", "--mode", "pool", "--broker", unusedBroker)
	if r.code != 2 || !strings.Contains(r.stderr, "--broker is only for --mode queue") {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	r = queueRun(t, ctx, "", "primes", "--mode", "queue", "--broker", "memcached://x")
	if r.code != 2 || !strings.Contains(r.stderr, `unsupported scheme "memcached"`) {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
}
