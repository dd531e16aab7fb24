package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestBenchQueueMemory(t *testing.T) {
	t.Setenv(brokerEnv, "")
	ctx := queueCtx(t, 60*time.Second)
	out := queueMust(t, ctx, "", "bench", "queue", "--tasks", "2000", "--concurrency", "8", "--batch", "300")
	for _, want := range []string{"memory (embedded)", "throughput", "enqueue:", "process:", "p99"} {
		if !strings.Contains(out, want) {
			t.Fatalf("output lacks %q:\n%s", want, out)
		}
	}
	var res BenchQueueResult
	out = queueMust(t, ctx, "", "bench", "queue", "--tasks", "300", "--concurrency", "4", "--rate", "1000", "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Mode != "rate" || res.Tasks != 300 || res.ProcessPerSec <= 0 || res.LatencyMs.Max <= 0 || res.LatencyMs.P50 > res.LatencyMs.P99 {
		t.Fatalf("result = %+v", res)
	}
	if res.EnqueueSeconds < 0.25 {
		t.Fatalf("300 tasks at 1000/s took %.3fs to enqueue; the rate is not applied", res.EnqueueSeconds)
	}
}

func TestBenchQueueRedis(t *testing.T) {
	url, _ := queueTestRedis(t)
	var res BenchQueueResult
	out := queueMust(t, queueCtx(t, 60*time.Second), "", "bench", "queue", "--broker", url, "--tasks", "3000", "--concurrency", "8", "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	if res.Mode != "throughput" || res.EnqueuePerSec <= 0 || res.ProcessPerSec <= 0 || !strings.HasPrefix(res.Broker, "redis://") {
		t.Fatalf("result = %+v", res)
	}
}

func TestBenchQueueFlags(t *testing.T) {
	ctx := queueCtx(t, 10*time.Second)
	for _, args := range [][]string{{"--tasks", "0"}, {"--concurrency", "0"}, {"--rate", "-1"}, {"--batch", "0"}} {
		r := queueRun(t, ctx, "", append([]string{"bench", "queue"}, args...)...)
		if r.code != 2 {
			t.Errorf("bench queue %v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}
