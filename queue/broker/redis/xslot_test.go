package redis_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// TestCrossSlotCrash: a process settles a step and dies before its mover
// or forwarder ran (a broker with CrossSlotPoll negative never runs them,
// so what it leaves is exactly what a crash between the settle and the
// move leaves). Another broker finishes the workflow; orders and events
// applied more than once (movers racing, an order or event stored again
// after it was applied) change nothing.
func TestCrossSlotCrash(t *testing.T) {
	testenv.RedisURL(t)
	c := testClient(t)
	t.Run("standalone", func(t *testing.T) { testCrossSlotCrash(t, c, testenv.UniquePrefix(t, c)) })
}

func TestCrossSlotCrashCluster(t *testing.T) {
	c := testenv.RedisClusterClient(t)
	testCrossSlotCrash(t, c, testenv.UniquePrefix(t, c))
}

func testCrossSlotCrash(t *testing.T, c goredis.UniversalClient, prefix string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	open := func(poll time.Duration) *redisbroker.Broker {
		b, err := redisbroker.New(redisbroker.Config{Client: c, Prefix: prefix, CrossSlotPoll: poll})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	dead := open(-1) // the process that dies after each settle
	fetch := func(q string) []*broker.Task {
		t.Helper()
		ts, err := dead.Fetch(ctx, broker.FetchParams{Queues: []string{q}, Max: 10, Lease: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		return ts
	}
	fetchWait := func(q string) *broker.Task {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if ts := fetch(q); len(ts) > 0 {
				if len(ts) != 1 {
					t.Fatalf("fetched %d tasks of %s, want 1", len(ts), q)
				}
				return ts[0]
			}
			if time.Now().After(deadline) {
				t.Fatalf("nothing to fetch in %s", q)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	w := &broker.Workflow{ID: "crash", Steps: []broker.WorkflowStep{
		{Task: broker.Task{ID: "crash.0", Kind: "a", Queue: "xa", Payload: []byte("1"), Encoding: "json"}},
		{Task: broker.Task{ID: "crash.1", Kind: "b", Queue: "xb", Encoding: "json"}, Input: &broker.Input{Step: 0}},
		{Task: broker.Task{ID: "crash.2", Kind: "c", Queue: "xa", Encoding: "json"}, Input: &broker.Input{Step: 1}},
	}, Output: broker.Input{Step: 2}}
	if err := dead.CreateWorkflow(ctx, w); err != nil {
		t.Fatal(err)
	}
	s0 := fetchWait("xa")
	if err := dead.Complete(ctx, broker.Ack{LeaseRef: s0.Ref(), Result: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	outbox := prefix + ":{xa}:wfoutbox"
	events := prefix + ":{xb}:wfevents"
	order, err := c.HGet(ctx, outbox, "crash.1").Result()
	if err != nil {
		t.Fatalf("the step's order is not in the outbox: %v", err)
	}
	time.Sleep(50 * time.Millisecond)
	if ts := fetch("xb"); len(ts) != 0 {
		t.Fatalf("step moved with no mover running: %v", ts)
	}

	// Another process (movers racing) moves it, once.
	other := open(-1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := other.MoveCrossSlot(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	s1 := fetchWait("xb")
	if s1.ID != "crash.1" || string(s1.Payload) != "2" {
		t.Fatalf("moved step = %+v", s1)
	}
	if n, _ := c.HLen(ctx, outbox).Result(); n != 0 {
		t.Fatalf("outbox keeps %d orders after the move", n)
	}
	// The order again (a mover that died before dropping it): nothing.
	c.HSet(ctx, outbox, "crash.1", order)
	if err := other.MoveCrossSlot(ctx); err != nil {
		t.Fatal(err)
	}
	if ts := fetch("xb"); len(ts) != 0 {
		t.Fatalf("a repeated order enqueued the step again: %v", ts)
	}

	// The foreign step ends; its event waits for a forwarder.
	if err := dead.Complete(ctx, broker.Ack{LeaseRef: s1.Ref(), Result: []byte("3")}); err != nil {
		t.Fatal(err)
	}
	ev, err := c.HGetAll(ctx, events).Result()
	if err != nil || len(ev) != 1 {
		t.Fatalf("events = %v, %v; want the step's end", ev, err)
	}
	if got, _ := dead.GetWorkflow(ctx, "crash"); got.Steps[1].State != broker.StepEnqueued {
		t.Fatalf("step 1 = %s before its event is applied", got.Steps[1].State)
	}
	// A new broker with its background loop finishes the job.
	fresh := open(10 * time.Millisecond)
	s2 := fetchWait("xa")
	if s2.ID != "crash.2" || string(s2.Payload) != "3" {
		t.Fatalf("third step = %+v", s2)
	}
	// The event again (a forwarder that died before deleting it): nothing.
	for f, v := range ev {
		c.HSet(ctx, events, f, v)
	}
	if err := fresh.MoveCrossSlot(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := c.HLen(ctx, events).Result(); n != 0 {
		t.Fatalf("events keep %d entries", n)
	}
	if ts := fetch("xa"); len(ts) != 0 {
		t.Fatalf("a repeated event advanced the workflow again: %v", ts)
	}
	if err := dead.Complete(ctx, broker.Ack{LeaseRef: s2.Ref(), Result: []byte("4")}); err != nil {
		t.Fatal(err)
	}
	got, err := fresh.AwaitWorkflow(ctx, "crash")
	if err != nil || got.State != broker.WorkflowCompleted || string(got.Result) != "4" {
		t.Fatalf("AwaitWorkflow = %+v, %v", got, err)
	}
	for i, st := range got.Steps {
		if st.State != broker.StepCompleted || st.Attempts != 1 {
			t.Fatalf("step %d = %s, %d attempts", i, st.State, st.Attempts)
		}
	}
}

// TestCrossSlotSteps: a step of another queue keeps what a step of the
// home queue has: its task ID checked, a lost lease recovered (and, out of
// retries, failing the workflow), DeleteTask failing its step, its state
// readable while its move waits.
func TestCrossSlotSteps(t *testing.T) {
	testenv.RedisURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	clock := brokertest.NewManualClock(time.Now())
	b, c := newTestBroker(t, clock)
	off, err := redisbroker.New(redisbroker.Config{Client: c, Prefix: b.Prefix(), Clock: clock, CrossSlotPoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Close()
	chain := func(id string, retries int) *broker.Workflow {
		return &broker.Workflow{ID: id, Steps: []broker.WorkflowStep{
			{Task: broker.Task{ID: id + ".0", Kind: "a", Queue: "ya", Payload: []byte("1"), Encoding: "json"}},
			{Task: broker.Task{ID: id + ".1", Kind: "b", Queue: "yb", Encoding: "json", MaxRetries: retries}, Input: &broker.Input{Step: 0}},
		}, Output: broker.Input{Step: 1}}
	}
	fetch := func(br broker.Broker, q string, lease time.Duration) *broker.Task {
		t.Helper()
		ts, err := br.Fetch(ctx, broker.FetchParams{Queues: []string{q}, Max: 1, Lease: lease})
		if err != nil || len(ts) != 1 {
			t.Fatalf("Fetch(%s) = %v, %v", q, ts, err)
		}
		return ts[0]
	}
	runFirst := func(br broker.Broker, id string) {
		t.Helper()
		s0 := fetch(br, "ya", time.Minute)
		if s0.ID != id+".0" {
			t.Fatalf("fetched %s", s0.ID)
		}
		if err := br.Complete(ctx, broker.Ack{LeaseRef: s0.Ref(), Result: []byte("2")}); err != nil {
			t.Fatal(err)
		}
	}

	// A task ID taken in the other queue: refused at create...
	if err := b.Enqueue(ctx, &broker.Task{ID: "taken.1", Kind: "x", Queue: "yb"}); err != nil {
		t.Fatal(err)
	}
	if err := b.CreateWorkflow(ctx, chain("taken", 0)); !errors.Is(err, broker.ErrTaskIDConflict) {
		t.Fatalf("CreateWorkflow with a taken step ID in another queue = %v", err)
	}
	// ... or, taken after the create, failing the step when it would move.
	if err := off.CreateWorkflow(ctx, chain("late", 0)); err != nil {
		t.Fatal(err)
	}
	runFirst(off, "late")
	if w, err := off.GetWorkflow(ctx, "late"); err != nil || w.Steps[1].State != broker.StepEnqueued || w.Steps[1].TaskState != broker.StatePending || w.Steps[1].Task.Queue != "yb" {
		t.Fatalf("step waiting for its move = %+v, %v", w.Steps[1], err)
	}
	if err := b.Enqueue(ctx, &broker.Task{ID: "late.1", Kind: "x", Queue: "yb"}); err != nil {
		t.Fatal(err)
	}
	if err := b.MoveCrossSlot(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := b.AwaitWorkflow(ctx, "late")
	if err != nil || w.State != broker.WorkflowFailed || w.Steps[1].State != broker.StepFailed ||
		w.Steps[1].Error != `enqueue: task "late.1" in queue "yb": task ID already exists` {
		t.Fatalf("workflow whose step ID was taken = %+v, %v", w, err)
	}
	// yb holds the two plain tasks, nothing of the workflow.
	if ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"yb"}, Max: 10, Lease: time.Minute}); err != nil || len(ts) != 2 || ts[0].Workflow != "" || ts[1].Workflow != "" {
		t.Fatalf("yb = %v, %v", ts, err)
	}

	// A lost lease: recovered and run again, then out of retries.
	if err := b.CreateWorkflow(ctx, chain("lease", 1)); err != nil {
		t.Fatal(err)
	}
	runFirst(b, "lease")
	for attempt := 1; attempt <= 2; attempt++ {
		s1 := fetch(b, "yb", time.Second)
		if s1.ID != "lease.1" {
			t.Fatalf("fetched %s", s1.ID)
		}
		clock.Advance(2 * time.Second)
		if n, err := b.Recover(ctx); err != nil || n != 1 {
			t.Fatalf("Recover = %d, %v", n, err)
		}
		if err := b.Complete(ctx, broker.Ack{LeaseRef: s1.Ref(), Result: []byte("9")}); !errors.Is(err, broker.ErrLeaseLost) {
			t.Fatalf("Complete with the lost lease = %v", err)
		}
	}
	w, err = b.AwaitWorkflow(ctx, "lease")
	if err != nil || w.State != broker.WorkflowFailed || w.Steps[1].State != broker.StepFailed || w.Steps[1].Attempts != 2 {
		t.Fatalf("workflow whose foreign step lost its leases = %+v, %v", w, err)
	}

	// DeleteTask of a pending step of another queue fails it.
	if err := b.CreateWorkflow(ctx, chain("del", 0)); err != nil {
		t.Fatal(err)
	}
	runFirst(b, "del")
	if err := b.DeleteTask(ctx, "yb", "del.1"); err != nil {
		t.Fatal(err)
	}
	w, err = b.AwaitWorkflow(ctx, "del")
	if err != nil || w.State != broker.WorkflowFailed || w.Steps[1].State != broker.StepFailed || w.Steps[1].Error != "task deleted" {
		t.Fatalf("workflow whose foreign step was deleted = %+v, %v", w, err)
	}
}
