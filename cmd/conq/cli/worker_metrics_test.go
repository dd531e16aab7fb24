package cli

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestWorkerMetricsListen(t *testing.T) {
	url, _ := queueTestRedis(t)
	exec := queuePythonWorker(t, queueTestTasks)
	ctx := queueCtx(t, 60*time.Second)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()

	wctx, stop := context.WithCancel(ctx)
	done := startCLIWorker(wctx, "--broker", url, "--exec", exec, "--concurrency", "1", "--metrics-listen", addr)
	r := queueRun(t, ctx, "", "enqueue", "--broker", url, "--wait", "--wait-timeout", "30s", "--kind", "add", "--payload", `{"a": 1, "b": 2}`)
	if r.code != 0 || r.stdout != "3\n" {
		t.Fatalf("add: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`conq_tasks_processed_total{kind="add",queue="default"} 1`, "conq_task_duration_seconds_bucket"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	stop()
	if w := <-done; w.code != 0 {
		t.Fatalf("worker: exit %d, stderr:\n%s", w.code, w.stderr)
	}
}

func TestWorkerMetricsListenBadAddress(t *testing.T) {
	url, _ := queueTestRedis(t)
	ctx := queueCtx(t, 30*time.Second)
	done := startCLIWorker(ctx, "--broker", url, "--exec", "true", "--metrics-listen", "256.0.0.1:bogus")
	if w := <-done; w.code != 2 || !strings.Contains(w.stderr, "--metrics-listen") {
		t.Fatalf("exit %d, stderr %q", w.code, w.stderr)
	}
}
