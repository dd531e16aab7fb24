package reliability

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// TestWorkerKill runs 5,000 tasks on three worker processes while one of
// them is SIGKILLed every second and restarted. Every task must complete;
// tasks run more than once are bounded by what the killed workers held.
func TestWorkerKill(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about 20s")
	}
	url, prefix := testRedis(t)
	const (
		tasks       = 5000
		workers     = 3
		concurrency = 4
		prefetch    = concurrency // fixed by the test worker
		lease       = 2 * time.Second
		sleepMS     = 15
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
	batch := make([]*queue.Task, 0, tasks)
	payload := []byte(fmt.Sprintf(`{"sleep_ms":%d}`, sleepMS))
	for i := range tasks {
		batch = append(batch, queue.NewTask("record", payload, queue.TaskID("t"+strconv.Itoa(i))))
	}
	if _, err := client.EnqueueMany(ctx, batch); err != nil {
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
	counts := func() map[queue.State]int64 {
		q, err := in.Queue(ctx, queue.DefaultQueue)
		if err != nil {
			t.Fatal(err)
		}
		return q.Counts
	}

	kills := 0
	t0 := time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		c := counts()
		if c[queue.StateCompleted] == tasks {
			break
		}
		if c[queue.StateDead] > 0 {
			t.Fatalf("%d tasks are dead: %v", c[queue.StateDead], c)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("not every task completed in time: %v after %d kills", c, kills)
		case <-tick.C:
		}
		// Kill only while there is work left to interrupt.
		if c[queue.StatePending]+c[queue.StateActive] > 0 {
			i := kills % workers
			procs[i].kill()
			kills++
			procs[i] = start(i)
		}
	}
	elapsed := time.Since(t0)

	runs, err := b.Client().HGetAll(ctx, prefix+":runs").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != tasks {
		t.Fatalf("%d tasks ran, want %d", len(runs), tasks)
	}
	dups, extra := 0, 0
	for _, v := range runs {
		if n, _ := strconv.Atoi(v); n > 1 {
			dups++
			extra += n - 1
		}
	}
	c := counts()
	if c[queue.StateCompleted] != tasks || c[queue.StatePending]+c[queue.StateActive]+c[queue.StateRetry]+c[queue.StateDead] != 0 {
		t.Fatalf("final counts %v", c)
	}
	bound := kills * (concurrency + prefetch)
	msg := fmt.Sprintf("kill test: %d tasks completed in %v with %d SIGKILLs; %d tasks ran more than once (%d extra runs), bound %d (kills × (concurrency+prefetch))",
		tasks, elapsed.Round(time.Millisecond), kills, dups, extra, bound)
	t.Log(msg)
	fmt.Println(msg)
	if kills < 3 {
		t.Errorf("only %d kills happened; the run was too short to test anything", kills)
	}
	if extra > bound {
		t.Errorf("%d extra runs, over the bound of %d", extra, bound)
	}
}
