package reliability

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// TestWorkflowChordKill runs a chord of 200 members on two worker
// processes and SIGKILLs each of them once while members run (a fresh
// process takes its place). The members the killed processes held run
// again after their leases end; the chord still completes, with exactly
// one body run that receives every member's result, in member order.
func TestWorkflowChordKill(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 15s")
	}
	url, prefix := testRedis(t)
	const (
		members     = 200
		workers     = 2
		concurrency = 3
		lease       = 2 * time.Second
		sleepMS     = 40
	)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	b, err := redisbroker.Open(ctx, url, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	client, err := queue.NewClient(b, queue.ClientConfig{Options: []queue.Option{queue.Retention(time.Hour), queue.MaxRetries(25)}})
	if err != nil {
		t.Fatal(err)
	}
	payload := []byte(fmt.Sprintf(`{"sleep_ms":%d}`, sleepMS))
	header := make([]queue.Flow, members)
	for i := range header {
		header[i] = queue.Step(queue.NewTask("record", payload))
	}
	h, err := client.EnqueueFlow(ctx, queue.Chord(header, queue.Step(queue.NewTask("collect", nil))))
	if err != nil {
		t.Fatal(err)
	}

	start := func(i int) *proc {
		return startProc(t, fmt.Sprintf("testworker %d", i), nil, workerBin, "-broker", url, "-prefix", prefix,
			"-concurrency", strconv.Itoa(concurrency), "-lease", lease.String())
	}
	procs := make([]*proc, workers)
	for i := range procs {
		procs[i] = start(i)
	}
	in := queue.NewInspector(b)
	completed := func() (int, broker.WorkflowState) {
		w, err := in.Workflow(ctx, h.ID)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, s := range w.Steps[:members] {
			if s.State == broker.StepCompleted {
				n++
			}
		}
		return n, w.State
	}
	// Kill worker i once a (i+1)/3 of the members completed.
	t0 := time.Now()
	for i := range procs {
		for {
			n, st := completed()
			if st != broker.WorkflowRunning {
				t.Fatalf("workflow %s before kill %d", st, i+1)
			}
			if n >= members*(i+1)/3 {
				break
			}
			select {
			case <-ctx.Done():
				t.Fatalf("only %d members completed before kill %d", n, i+1)
			case <-time.After(20 * time.Millisecond):
			}
		}
		procs[i].kill()
		procs[i] = start(i)
	}
	res, err := h.Result(ctx)
	if err != nil {
		t.Fatalf("chord: %v", err)
	}
	elapsed := time.Since(t0)
	if string(res) != "1" {
		t.Fatalf("the body's result is %s, want 1 (its one run's count)", res)
	}
	collected, err := b.Client().LRange(ctx, prefix+":collected", 0, -1).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(collected) != 1 {
		t.Fatalf("the body ran %d times, want once", len(collected))
	}
	var got []int
	if err := json.Unmarshal([]byte(collected[0]), &got); err != nil || len(got) != members {
		t.Fatalf("the body got %q (%v), want %d results", collected[0], err, members)
	}
	runs, err := b.Client().HGetAll(ctx, prefix+":runs").Result()
	if err != nil {
		t.Fatal(err)
	}
	w, err := in.Workflow(ctx, h.ID)
	if err != nil {
		t.Fatal(err)
	}
	again := 0
	for i, r := range got {
		// A member's result is its run count when it completed: each run
		// that was cut off added one.
		n, _ := strconv.Atoi(runs[w.Steps[i].Task.ID])
		if r < 1 || r != n {
			t.Fatalf("member %d: the body got result %d, the member ran %d times", i, r, n)
		}
		if r > 1 {
			again++
		}
	}
	msg := fmt.Sprintf("chord kill test: %d members + body completed in %v with %d SIGKILLs; %d members ran more than once; one body run with all %d results",
		members, elapsed.Round(time.Millisecond), workers, again, members)
	t.Log(msg)
	fmt.Println(msg)
	if again == 0 {
		t.Error("no member ran twice: the kills interrupted nothing")
	}
}
