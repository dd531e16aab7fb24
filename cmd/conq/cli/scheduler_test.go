package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

func writeScheduleFile(t *testing.T, src string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "schedule.yaml")
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSchedulerCommandCheck(t *testing.T) {
	ctx := queueCtx(t, 10*time.Second)
	good := writeScheduleFile(t, `
timezone: UTC
entries:
  - name: nightly
    spec: "CRON_TZ=Europe/Paris 0 30 2 * * *"
    kind: report.nightly
    queue: reports
  - name: beat
    spec: "@every 30s"
    kind: heartbeat
`)
	out := queueMust(t, ctx, "", "scheduler", "--config", good, "--check")
	for _, want := range []string{"NAME", "nightly", "beat", "@every 30s", "reports"} {
		if !strings.Contains(out, want) {
			t.Errorf("--check output lacks %q:\n%s", want, out)
		}
	}
	bad := writeScheduleFile(t, "entries:\n  - name: broken\n    spec: '61 * * * *'\n    kind: k\n")
	r := queueRun(t, ctx, "", "scheduler", "--config", bad, "--broker", "redis://127.0.0.1:1/0")
	if r.code != 2 || !strings.Contains(r.stderr, "broken") {
		t.Fatalf("bad spec: exit %d, stderr %q; want exit 2 naming the entry", r.code, r.stderr)
	}
	r = queueRun(t, ctx, "", "scheduler", "--config", good)
	if r.code != 2 || !strings.Contains(r.stderr, "shared broker") {
		t.Fatalf("no --broker: exit %d, stderr %q", r.code, r.stderr)
	}
	r = queueRun(t, ctx, "", "scheduler", "--config", good, "--missed", "sometimes", "--check")
	if r.code != 2 {
		t.Fatalf("--missed sometimes: exit %d", r.code)
	}
}

// TestSchedulerCommandTwoProcesses runs two `conq scheduler` processes on
// one schedule and checks that each tick of a 1-second spec is enqueued
// once.
func TestSchedulerCommandTwoProcesses(t *testing.T) {
	url, prefix := queueTestRedis(t)
	bin := filepath.Join(t.TempDir(), "conq")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("building conq: %v\n%s", err, out)
	}
	cfg := writeScheduleFile(t, `
entries:
  - name: every-second
    spec: "* * * * * *"
    kind: tick
    queue: cron
`)
	var procs []*exec.Cmd
	var logs []*bytes.Buffer
	for range 2 {
		cmd := exec.Command(bin, "scheduler", "--broker", url, "--config", cfg, "--log-level", "debug")
		cmd.Env = append(os.Environ(), prefixEnv+"="+prefix)
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
		logs = append(logs, &errb)
	}
	time.Sleep(4500 * time.Millisecond)
	for i, p := range procs {
		_ = p.Process.Signal(syscall.SIGTERM)
		if err := p.Wait(); err != nil {
			t.Fatalf("scheduler %d: %v\n%s", i, err, logs[i])
		}
	}
	ctx := queueCtx(t, 10*time.Second)
	b, err := redisbroker.Open(ctx, url, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tasks, err := queue.NewInspector(b).Tasks(ctx, "cron", queue.StatePending, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var ticks []int64
	for _, task := range tasks {
		ms, err := strconv.ParseInt(task.ID[strings.LastIndexByte(task.ID, ':')+1:], 10, 64)
		if err != nil || task.Kind != "tick" {
			t.Fatalf("task %+v", task)
		}
		ticks = append(ticks, ms)
	}
	slices.Sort(ticks)
	if len(ticks) < 3 || len(ticks) > 5 {
		t.Fatalf("%d ticks enqueued in ~4.5s (want 3 to 5)\nlogs:\n%s\n%s", len(ticks), logs[0], logs[1])
	}
	for i := 1; i < len(ticks); i++ {
		if ticks[i]-ticks[i-1] != 1000 {
			t.Fatalf("ticks %v: not each second exactly once", ticks)
		}
	}
	// The processes' own accounts agree: one enqueue per tick in all.
	enq := 0
	for _, l := range logs {
		enq += strings.Count(l.String(), "periodic task enqueued")
	}
	if enq != len(ticks) {
		t.Fatalf("the schedulers logged %d enqueues for %d ticks\n%s\n%s", enq, len(ticks), logs[0], logs[1])
	}
}
