package brokertest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Factory returns a new, empty broker that tells time by clock. It must
// arrange for the broker to be closed when t ends (Close may then be called
// a second time, after the suite's own Close test).
type Factory func(t *testing.T, clock broker.Clock) broker.Broker

const lease = 30 * time.Second

// Run runs the conformance suite against brokers made by newBroker. Each
// subtest gets its own broker and clock. Nothing is skipped: a case of an
// optional role the broker's Capabilities leave out checks instead that
// every call of the role fails with broker.ErrUnsupported.
func Run(t *testing.T, newBroker Factory) { RunWith(t, Options{}, newBroker) }

// Options say what the brokers under test promise beyond the contract's
// minimum.
type Options struct {
	// Sharded: the brokers spread queues over shards (broker.Sharder), so
	// FIFO order holds per shard only (tasks of one Task.Shard), not
	// across a queue. The cases that check fetch order then check that
	// instead; every other case is the same.
	Sharded bool
}

// RunWith is Run with options.
func RunWith(t *testing.T, o Options, newBroker Factory) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := NewManualClock(time.Time{})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			s := &suite{t: t, b: newBroker(t, clock), clock: clock, ctx: ctx, opts: o}
			if s.b.Clock() != broker.Clock(clock) {
				t.Fatalf("%T.Clock() is not the clock the factory was given", s.b)
			}
			if caps := s.b.Capabilities(); !caps.Has(tc.need) {
				// Not skipped: a broker without the role must say so.
				s.wantUnsupported(tc.need &^ caps)
				return
			}
			tc.fn(s)
		})
	}
}

type suite struct {
	t     *testing.T
	b     broker.Broker
	clock *ManualClock
	ctx   context.Context
	opts  Options
}

// testCase is one case of the suite; need names the optional roles it
// exercises (0: core only).
type testCase struct {
	name string
	need broker.Capability
	fn   func(s *suite)
}

var cases = []testCase{
	{"EnqueueGetTask", 0, testEnqueueGetTask},
	{"EnqueueIDConflict", 0, testEnqueueIDConflict},
	{"EnqueueDoesNotAlias", 0, testEnqueueDoesNotAlias},
	{"ScheduledForward", 0, testScheduledForward},
	{"FetchLease", 0, testFetchLease},
	{"FetchOrder", 0, testFetchOrder},
	{"FetchPaused", 0, testFetchPaused},
	{"WaitReady", 0, testWaitReady},
	{"ExtendLeases", 0, testExtendLeases},
	{"Fencing", 0, testFencing},
	{"Recover", 0, testRecover},
	{"RecoverToDead", 0, testRecoverToDead},
	{"FailRetryAndHistory", 0, testFailRetryAndHistory},
	{"FailDead", 0, testFailDead},
	{"Requeue", 0, testRequeue},
	{"CompleteWithoutRetention", 0, testCompleteWithoutRetention},
	{"CompleteRetentionCleanup", 0, testCompleteRetentionCleanup},
	{"AwaitTask", 0, testAwaitTask},
	{"AwaitTasks", 0, testAwaitTasks},
	{"AwaitTasksAnyQueue", 0, testAwaitTasksAnyQueue},
	{"Queues", 0, testQueues},
	{"ListTasks", 0, testListTasks},
	{"DeleteTask", 0, testDeleteTask},
	{"RetryTask", 0, testRetryTask},
	{"BatchErrorPerItem", 0, testBatchErrorPerItem},
	{"ConcurrentFetch", 0, testConcurrentFetch},
	{"WorkflowChord", broker.CapWorkflows, testWorkflowChord},
	{"WorkflowFailure", broker.CapWorkflows, testWorkflowFailure},
	{"WorkflowGroupRace", broker.CapWorkflows, testWorkflowGroupRace},
	{"WorkflowResultPassing", broker.CapWorkflows, testWorkflowResultPassing},
	{"WorkflowNested", broker.CapWorkflows, testWorkflowNested},
	{"WorkflowDeadStep", broker.CapWorkflows, testWorkflowDeadStep},
	{"WorkflowCancel", broker.CapWorkflows, testWorkflowCancel},
	{"WorkflowStaleLease", broker.CapWorkflows, testWorkflowStaleLease},
	{"WorkflowDeleteStep", broker.CapWorkflows, testWorkflowDeleteStep},
	{"WorkflowLargeGroup", broker.CapWorkflows, testWorkflowLargeGroup},
	{"WorkflowRetention", broker.CapWorkflows, testWorkflowRetention},
	{"WorkflowStepRecords", broker.CapWorkflows, testWorkflowStepRecords},
	{"WorkflowFailBatch", broker.CapWorkflows, testWorkflowFailBatch},
	{"WorkflowImmutable", broker.CapWorkflows, testWorkflowImmutable},
	{"WorkflowOutcome", broker.CapWorkflows, testWorkflowOutcome},
	{"WorkflowList", broker.CapWorkflows, testWorkflowList},
	{"WorkflowCrossQueueChain", broker.CapWorkflows, testWorkflowCrossQueueChain},
	{"WorkflowCrossQueueChord", broker.CapWorkflows, testWorkflowCrossQueueChord},
	{"WorkflowCrossQueueFailure", broker.CapWorkflows, testWorkflowCrossQueueFailure},
	{"WorkflowCrossQueueCancel", broker.CapWorkflows, testWorkflowCrossQueueCancel},
	{"WorkflowCrossQueueRace", broker.CapWorkflows, testWorkflowCrossQueueRace},
	{"Close", 0, testClose},
}

// ---- helpers

func newTask(queue, id string) *broker.Task {
	return &broker.Task{ID: id, Kind: "kind." + id, Queue: queue, Payload: []byte("payload " + id), MaxRetries: 3}
}

func (s *suite) enqueue(tasks ...*broker.Task) {
	s.t.Helper()
	if err := s.b.Enqueue(s.ctx, tasks...); err != nil {
		s.t.Fatalf("Enqueue: %v", err)
	}
}

func (s *suite) fetch(max int, queues ...string) []*broker.Task {
	s.t.Helper()
	ts, err := s.b.Fetch(s.ctx, broker.FetchParams{Queues: queues, Max: max, Lease: lease, WorkerID: "w1"})
	if err != nil {
		s.t.Fatalf("Fetch(%v, %d): %v", queues, max, err)
	}
	return ts
}

// fetchN fetches n tasks of queue (exactly n, or the case fails) and
// returns them by ID: for cases that lease several tasks and do not test
// the order they come in.
func (s *suite) fetchN(n int, queue string) map[string]*broker.Task {
	s.t.Helper()
	ts := s.fetch(n, queue)
	if len(ts) != n {
		s.t.Fatalf("Fetch(%s, %d) returned %v", queue, n, ids(ts))
	}
	out := make(map[string]*broker.Task, n)
	for _, t := range ts {
		out[t.ID] = t
	}
	return out
}

func (s *suite) fetchOne(queue string) *broker.Task {
	s.t.Helper()
	ts := s.fetch(1, queue)
	if len(ts) != 1 {
		s.t.Fatalf("Fetch(%s) returned %d tasks, want 1", queue, len(ts))
	}
	return ts[0]
}

func (s *suite) get(queue, id string) *broker.Task {
	s.t.Helper()
	got, err := s.b.GetTask(s.ctx, queue, id)
	if err != nil {
		s.t.Fatalf("GetTask(%q, %q): %v", queue, id, err)
	}
	return got
}

func (s *suite) wantState(queue, id string, want broker.State) *broker.Task {
	s.t.Helper()
	got := s.get(queue, id)
	if got.State != want {
		s.t.Fatalf("task %s/%s is %s, want %s", queue, id, got.State, want)
	}
	return got
}

func (s *suite) wantNotFound(queue, id string) {
	s.t.Helper()
	_, err := s.b.GetTask(s.ctx, queue, id)
	if !errors.Is(err, broker.ErrTaskNotFound) {
		s.t.Fatalf("GetTask(%q, %q) = %v, want ErrTaskNotFound", queue, id, err)
	}
}

// ref is the lease of a fetched task, its shard included.
func ref(t *broker.Task) broker.LeaseRef { return t.Ref() }

func ids(ts []*broker.Task) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func sameTime(a, b time.Time) bool {
	d := a.Sub(b)
	return d < time.Millisecond && d > -time.Millisecond
}

// wantItemErr checks err is a *BatchError of n items with item i matching
// target and the others nil.
func wantItemErr(t *testing.T, err error, n, i int, target error) {
	t.Helper()
	var be *broker.BatchError
	if !errors.As(err, &be) {
		t.Fatalf("error %v (%T), want *broker.BatchError", err, err)
	}
	if len(be.Errs) != n {
		t.Fatalf("BatchError has %d items, want %d", len(be.Errs), n)
	}
	for j, e := range be.Errs {
		if j == i && !errors.Is(e, target) {
			t.Fatalf("item %d error = %v, want %v", j, e, target)
		}
		if j != i && e != nil {
			t.Fatalf("item %d error = %v, want nil", j, e)
		}
	}
}

// ---- tests

func testEnqueueGetTask(s *suite) {
	now := s.clock.Now()
	in := &broker.Task{
		ID: "t1", Kind: "email.send", Queue: "q", Payload: []byte(`{"to":"a@b"}`), Encoding: "json",
		MaxRetries: 4, Timeout: 5 * time.Second, Deadline: now.Add(time.Hour), Retention: time.Minute,
		EnqueuedAt: now.Add(-time.Second),
	}
	s.enqueue(in)
	for _, q := range []string{"q", ""} {
		got := s.wantState(q, "t1", broker.StatePending)
		if got.Kind != in.Kind || got.Queue != "q" || !bytes.Equal(got.Payload, in.Payload) || got.Encoding != in.Encoding ||
			got.MaxRetries != 4 || got.Timeout != in.Timeout || got.Retention != in.Retention ||
			!sameTime(got.Deadline, in.Deadline) || !sameTime(got.EnqueuedAt, in.EnqueuedAt) {
			s.t.Fatalf("GetTask(%q) = %+v, want the fields of %+v", q, got, in)
		}
		if got.Attempts != 0 || len(got.Errors) != 0 || got.Token != 0 {
			s.t.Fatalf("new task has attempts %d, errors %v, token %d", got.Attempts, got.Errors, got.Token)
		}
	}
	// EnqueuedAt defaults to the broker's now.
	s.enqueue(newTask("q", "t2"))
	if got := s.get("q", "t2"); !sameTime(got.EnqueuedAt, now) {
		s.t.Fatalf("EnqueuedAt = %v, want clock's now %v", got.EnqueuedAt, now)
	}
	s.wantNotFound("other", "t1")
	s.wantNotFound("q", "missing")
	s.wantNotFound("", "missing")
}

func testEnqueueIDConflict(s *suite) {
	s.enqueue(newTask("q", "a"))
	err := s.b.Enqueue(s.ctx, newTask("q", "b"), newTask("q", "a"), newTask("q", "c"))
	wantItemErr(s.t, err, 3, 1, broker.ErrTaskIDConflict)
	s.wantState("q", "b", broker.StatePending)
	s.wantState("q", "c", broker.StatePending)
	// Duplicates within one call: the first wins.
	err = s.b.Enqueue(s.ctx, newTask("q", "d"), newTask("q", "d"))
	wantItemErr(s.t, err, 2, 1, broker.ErrTaskIDConflict)
	// IDs are unique per queue only.
	s.enqueue(newTask("other", "a"))
	s.wantState("other", "a", broker.StatePending)
	if got := s.fetch(10, "q"); len(got) != 4 {
		s.t.Fatalf("queue q has %d tasks (%v), want 4", len(got), ids(got))
	}
	// A finished task kept for retention still holds its ID.
	t := newTask("r", "kept")
	t.Retention = time.Hour
	s.enqueue(t)
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(s.fetchOne("r"))}); err != nil {
		s.t.Fatal(err)
	}
	if err := s.b.Enqueue(s.ctx, newTask("r", "kept")); !errors.Is(err, broker.ErrTaskIDConflict) {
		s.t.Fatalf("re-enqueue of a retained completed task = %v, want ErrTaskIDConflict", err)
	}
}

func testEnqueueDoesNotAlias(s *suite) {
	in := newTask("q", "a")
	s.enqueue(in)
	in.Payload[0] = 'X'
	in.Kind = "changed"
	got := s.get("q", "a")
	if got.Kind != "kind.a" || got.Payload[0] != 'p' {
		s.t.Fatalf("broker kept the caller's task: %+v", got)
	}
	got.Payload[0] = 'Y'
	if again := s.get("q", "a"); again.Payload[0] != 'p' {
		s.t.Fatal("GetTask returned the broker's own payload")
	}
}

func testScheduledForward(s *suite) {
	now := s.clock.Now()
	later := newTask("q", "later")
	later.ProcessAt = now.Add(10 * time.Second)
	past := newTask("q", "past")
	past.ProcessAt = now.Add(-time.Second)
	s.enqueue(later, past)
	s.wantState("q", "later", broker.StateScheduled)
	s.wantState("q", "past", broker.StatePending)
	if got := s.fetch(10, "q"); len(got) != 1 || got[0].ID != "past" {
		s.t.Fatalf("Fetch = %v, want [past]", ids(got))
	}
	n, err := s.b.Forward(s.ctx)
	if err != nil || n != 0 {
		s.t.Fatalf("Forward before due = %d, %v; want 0", n, err)
	}
	s.clock.Advance(10 * time.Second)
	n, err = s.b.Forward(s.ctx)
	if err != nil || n != 1 {
		s.t.Fatalf("Forward when due = %d, %v; want 1", n, err)
	}
	s.wantState("q", "later", broker.StatePending)
	if got := s.fetchOne("q"); got.ID != "later" {
		s.t.Fatalf("fetched %s, want later", got.ID)
	}
	if n, _ := s.b.Forward(s.ctx); n != 0 {
		s.t.Fatalf("second Forward moved %d tasks", n)
	}
}

func testFetchLease(s *suite) {
	s.enqueue(newTask("q", "a"))
	if got := s.fetch(10, "q", "nosuchqueue"); len(got) != 1 {
		s.t.Fatalf("Fetch returned %d tasks, want 1", len(got))
	} else {
		t := got[0]
		if t.State != broker.StateActive || t.Token == 0 || t.WorkerID != "w1" || t.Attempts != 0 ||
			!sameTime(t.LeaseUntil, s.clock.Now().Add(lease)) || string(t.Payload) != "payload a" {
			s.t.Fatalf("fetched task %+v: want active, token set, worker w1, 0 attempts, lease until now+%v", t, lease)
		}
		stored := s.wantState("q", "a", broker.StateActive)
		if stored.Token != t.Token || !sameTime(stored.LeaseUntil, t.LeaseUntil) {
			s.t.Fatalf("stored lease %d/%v, fetched %d/%v", stored.Token, stored.LeaseUntil, t.Token, t.LeaseUntil)
		}
		// A new fetch of the same task gets a new token.
		if err := s.b.Requeue(s.ctx, ref(t)); err != nil {
			s.t.Fatal(err)
		}
		again := s.fetchOne("q")
		if again.Token == t.Token {
			s.t.Fatalf("second fetch reused token %d", t.Token)
		}
	}
	if got := s.fetch(10, "q"); len(got) != 0 {
		s.t.Fatalf("Fetch of an empty queue returned %v", ids(got))
	}
	if got := s.fetch(10); len(got) != 0 {
		s.t.Fatalf("Fetch of no queues returned %v", ids(got))
	}
}

func testFetchOrder(s *suite) {
	if s.opts.Sharded {
		testFetchOrderSharded(s)
		return
	}
	for i := range 5 {
		s.enqueue(newTask("low", fmt.Sprintf("l%d", i)), newTask("high", fmt.Sprintf("h%d", i)))
	}
	got := s.fetch(3, "high", "low")
	if want := []string{"h0", "h1", "h2"}; !slices.Equal(ids(got), want) {
		s.t.Fatalf("Fetch(3, high, low) = %v, want %v", ids(got), want)
	}
	got = s.fetch(4, "high", "low")
	if want := []string{"h3", "h4", "l0", "l1"}; !slices.Equal(ids(got), want) {
		s.t.Fatalf("Fetch(4, high, low) = %v, want %v", ids(got), want)
	}
	got = s.fetch(10, "low", "high")
	if want := []string{"l2", "l3", "l4"}; !slices.Equal(ids(got), want) {
		s.t.Fatalf("Fetch(10, low, high) = %v, want %v", ids(got), want)
	}
	// A task that returns to pending goes behind those already waiting.
	s.enqueue(newTask("f", "1"), newTask("f", "2"))
	first := s.fetchOne("f")
	if err := s.b.Requeue(s.ctx, ref(first)); err != nil {
		s.t.Fatal(err)
	}
	if got := s.fetch(2, "f"); !slices.Equal(ids(got), []string{"2", "1"}) {
		s.t.Fatalf("after requeue Fetch = %v, want [2 1]", ids(got))
	}
}

// testFetchOrderSharded is testFetchOrder for queues in shards: queue
// priority as before, every task once, and FIFO per shard.
func testFetchOrderSharded(s *suite) {
	for i := range 5 {
		s.enqueue(newTask("low", fmt.Sprintf("l%d", i)), newTask("high", fmt.Sprintf("h%d", i)))
	}
	var all []*broker.Task
	want := func(got []*broker.Task, high, low int) {
		s.t.Helper()
		var h, l int
		for _, t := range got {
			if t.Queue == "high" {
				h++
			} else {
				l++
			}
		}
		if h != high || l != low {
			s.t.Fatalf("fetched %v: %d of high and %d of low, want %d and %d", ids(got), h, l, high, low)
		}
		all = append(all, got...)
	}
	want(s.fetch(3, "high", "low"), 3, 0)
	want(s.fetch(4, "high", "low"), 2, 2)
	want(s.fetch(10, "low", "high"), 0, 3)
	s.wantFIFOPerShard(all)
	// A task that returns to pending goes behind those already waiting in
	// its shard; it is fetched again.
	s.enqueue(newTask("f", "1"), newTask("f", "2"))
	first := s.fetchOne("f")
	if err := s.b.Requeue(s.ctx, ref(first)); err != nil {
		s.t.Fatal(err)
	}
	got := s.fetch(2, "f")
	if len(got) != 2 {
		s.t.Fatalf("after requeue Fetch = %v, want both", ids(got))
	}
	if got[0].Shard == got[1].Shard && got[1].ID != first.ID {
		s.t.Fatalf("after requeue Fetch = %v, want %s last (same shard)", ids(got), first.ID)
	}
}

// wantFIFOPerShard checks that tasks of each (queue, shard), in the order
// fetched, were enqueued in that order: IDs are "<letter><number>".
func (s *suite) wantFIFOPerShard(ts []*broker.Task) {
	s.t.Helper()
	last := map[string]string{}
	seen := map[string]bool{}
	for _, t := range ts {
		k := fmt.Sprintf("%s/%d", t.Queue, t.Shard)
		if seen[t.Queue+"/"+t.ID] {
			s.t.Fatalf("task %s/%s fetched twice", t.Queue, t.ID)
		}
		seen[t.Queue+"/"+t.ID] = true
		if p, ok := last[k]; ok && p > t.ID {
			s.t.Fatalf("shard %s gave %s after %s: not FIFO", k, t.ID, p)
		}
		last[k] = t.ID
	}
}

func testFetchPaused(s *suite) {
	s.enqueue(newTask("a", "a1"), newTask("b", "b1"))
	if err := s.b.Pause(s.ctx, "a"); err != nil {
		s.t.Fatal(err)
	}
	if got := s.fetch(10, "a", "b"); !slices.Equal(ids(got), []string{"b1"}) {
		s.t.Fatalf("Fetch with a paused = %v, want [b1]", ids(got))
	}
	// Pausing a queue that has no tasks yet is allowed and sticks.
	if err := s.b.Pause(s.ctx, "c"); err != nil {
		s.t.Fatal(err)
	}
	s.enqueue(newTask("c", "c1"))
	if got := s.fetch(10, "c"); len(got) != 0 {
		s.t.Fatalf("Fetch of paused c = %v", ids(got))
	}
	for _, q := range []string{"a", "c"} {
		if err := s.b.Resume(s.ctx, q); err != nil {
			s.t.Fatal(err)
		}
	}
	if got := s.fetch(10, "a", "c"); !slices.Equal(ids(got), []string{"a1", "c1"}) {
		s.t.Fatalf("Fetch after resume = %v, want [a1 c1]", ids(got))
	}
}

func testWaitReady(s *suite) {
	// Ready at once: returns without waiting for max.
	s.enqueue(newTask("q", "a"))
	start := time.Now()
	if err := s.b.WaitReady(s.ctx, broker.WaitParams{Queues: []string{"q"}, Max: 20 * time.Second}); err != nil {
		s.t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		s.t.Fatalf("WaitReady with a ready task took %v", d)
	}
	s.fetchOne("q")
	// Nothing ready: returns by max.
	start = time.Now()
	if err := s.b.WaitReady(s.ctx, broker.WaitParams{Queues: []string{"q"}, Max: 50 * time.Millisecond}); err != nil {
		s.t.Fatal(err)
	}
	if d := time.Since(start); d > 10*time.Second {
		s.t.Fatalf("WaitReady(max 50ms) took %v", d)
	}
	// Woken by an enqueue from elsewhere.
	done := make(chan error, 1)
	go func() { done <- s.b.WaitReady(s.ctx, broker.WaitParams{Queues: []string{"q"}, Max: 20 * time.Second}) }()
	time.Sleep(20 * time.Millisecond)
	s.enqueue(newTask("q", "b"))
	select {
	case err := <-done:
		if err != nil {
			s.t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		s.t.Fatal("WaitReady not woken by Enqueue")
	}
	// Cancelled ctx.
	ctx, cancel := context.WithCancel(s.ctx)
	cancel()
	if err := s.b.WaitReady(ctx, broker.WaitParams{Queues: []string{"empty"}, Max: 20 * time.Second}); err == nil {
		// Spurious nil returns are allowed, but it must not block.
		s.t.Log("WaitReady with a cancelled ctx returned nil")
	}
}

func testExtendLeases(s *suite) {
	s.enqueue(newTask("q", "a"), newTask("q", "b"))
	a, b := s.fetchOne("q"), s.fetchOne("q")
	s.clock.Advance(20 * time.Second)
	stale := ref(b) // a and b: the tasks in the order fetched
	stale.Token += 1000
	missing := broker.LeaseRef{Queue: "q", ID: "nope", Token: 1}
	res, err := s.b.ExtendLeases(s.ctx, broker.ExtendParams{Leases: []broker.LeaseRef{ref(a), stale, missing}, Lease: time.Minute})
	if err != nil {
		s.t.Fatal(err)
	}
	lost := res.Lost
	if len(res.Cancelled) != 0 {
		s.t.Fatalf("cancelled = %v, want none", res.Cancelled)
	}
	sort.Slice(lost, func(i, j int) bool { return lost[i].ID < lost[j].ID })
	if len(lost) != 2 || lost[0] != stale || lost[1] != missing {
		s.t.Fatalf("lost = %v, want [%v %v]", lost, stale, missing)
	}
	if got := s.get("q", a.ID); !sameTime(got.LeaseUntil, s.clock.Now().Add(time.Minute)) || got.Token != a.Token {
		s.t.Fatalf("after extend lease until %v token %d, want %v token %d", got.LeaseUntil, got.Token, s.clock.Now().Add(time.Minute), a.Token)
	}
	// The extended lease outlives the original one.
	s.clock.Advance(30 * time.Second)
	if n, err := s.b.Recover(s.ctx); err != nil || n != 1 {
		s.t.Fatalf("Recover = %d, %v; want 1 (only b expired)", n, err)
	}
	s.wantState("q", a.ID, broker.StateActive)
	s.wantState("q", b.ID, broker.StatePending)
	if res, err := s.b.ExtendLeases(s.ctx, broker.ExtendParams{Leases: nil, Lease: time.Minute}); err != nil || len(res.Lost)+len(res.Cancelled) != 0 {
		s.t.Fatalf("ExtendLeases(nil) = %+v, %v", res, err)
	}
}

func testFencing(s *suite) {
	s.enqueue(newTask("q", "a"))
	old := s.fetchOne("q")
	s.clock.Advance(lease + time.Millisecond)
	if n, err := s.b.Recover(s.ctx); err != nil || n != 1 {
		s.t.Fatalf("Recover = %d, %v", n, err)
	}
	cur := s.fetchOne("q")
	if cur.Token == old.Token {
		s.t.Fatal("re-fetched task kept its old token")
	}
	stale := ref(old)
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: stale}); !errors.Is(err, broker.ErrLeaseLost) {
		s.t.Fatalf("Complete with stale token = %v, want ErrLeaseLost", err)
	}
	if err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: stale, Error: broker.AttemptError{Message: "x"}}); !errors.Is(err, broker.ErrLeaseLost) {
		s.t.Fatalf("Fail with stale token = %v, want ErrLeaseLost", err)
	}
	if err := s.b.Requeue(s.ctx, stale); !errors.Is(err, broker.ErrLeaseLost) {
		s.t.Fatalf("Requeue with stale token = %v, want ErrLeaseLost", err)
	}
	if res, err := s.b.ExtendLeases(s.ctx, broker.ExtendParams{Leases: []broker.LeaseRef{stale}, Lease: lease}); err != nil || len(res.Lost) != 1 {
		s.t.Fatalf("ExtendLeases with stale token = %+v, %v; want it lost", res, err)
	}
	got := s.wantState("q", "a", broker.StateActive)
	if got.Token != cur.Token || got.Attempts != 1 {
		s.t.Fatalf("stale calls changed the task: token %d attempts %d", got.Token, got.Attempts)
	}
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(cur)}); err != nil {
		s.t.Fatalf("Complete with the current token: %v", err)
	}
	// Once completed, no token works.
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(cur)}); !errors.Is(err, broker.ErrLeaseLost) {
		s.t.Fatalf("second Complete = %v, want ErrLeaseLost", err)
	}
}

func testRecover(s *suite) {
	s.enqueue(newTask("q", "a"), newTask("q", "b"))
	a := s.fetchOne("q") // a and b: the tasks in the order fetched
	s.clock.Advance(10 * time.Second)
	b := s.fetchOne("q")
	if n, err := s.b.Recover(s.ctx); err != nil || n != 0 {
		s.t.Fatalf("Recover before expiry = %d, %v", n, err)
	}
	s.clock.Advance(lease - 10*time.Second) // a's lease ends now; b's has 10s left
	if n, err := s.b.Recover(s.ctx); err != nil || n != 1 {
		s.t.Fatalf("Recover = %d, %v; want 1", n, err)
	}
	got := s.wantState("q", a.ID, broker.StatePending)
	if got.Attempts != 1 || len(got.Errors) != 1 || got.Errors[0].Kind != "lease_expired" || got.Errors[0].Attempt != 1 {
		s.t.Fatalf("recovered task: attempts %d errors %+v; want 1 lease_expired", got.Attempts, got.Errors)
	}
	if got.Token != 0 && got.Token == a.Token {
		s.t.Fatal("recovered task kept its lease token")
	}
	s.wantState("q", b.ID, broker.StateActive)
	if again := s.fetchOne("q"); again.ID != a.ID || again.Attempts != 1 {
		s.t.Fatalf("refetched %s attempts %d, want %s with 1", again.ID, again.Attempts, a.ID)
	}
}

func testRecoverToDead(s *suite) {
	t := newTask("q", "a")
	t.MaxRetries = 1
	s.enqueue(t)
	for i := range 2 {
		s.fetchOne("q")
		s.clock.Advance(lease)
		if n, err := s.b.Recover(s.ctx); err != nil || n != 1 {
			s.t.Fatalf("Recover #%d = %d, %v", i+1, n, err)
		}
	}
	got := s.wantState("q", "a", broker.StateDead)
	if got.Attempts != 2 || len(got.Errors) != 2 {
		s.t.Fatalf("dead task attempts %d errors %d, want 2 and 2", got.Attempts, len(got.Errors))
	}
}

func testFailRetryAndHistory(s *suite) {
	s.enqueue(newTask("q", "a"))
	t := s.fetchOne("q")
	now := s.clock.Now()
	err := s.b.Fail(s.ctx, broker.Failure{
		LeaseRef: ref(t),
		Error:    broker.AttemptError{Attempt: 1, At: now, Kind: "error", Message: "boom 1"},
		RetryAt:  now.Add(5 * time.Second),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	got := s.wantState("q", "a", broker.StateRetry)
	if got.Attempts != 1 || len(got.Errors) != 1 || got.Errors[0].Message != "boom 1" || got.Errors[0].Kind != "error" || got.Errors[0].Attempt != 1 {
		s.t.Fatalf("after Fail: attempts %d errors %+v", got.Attempts, got.Errors)
	}
	if got := s.fetch(1, "q"); len(got) != 0 {
		s.t.Fatal("a task waiting to retry was fetched")
	}
	if n, _ := s.b.Forward(s.ctx); n != 0 {
		s.t.Fatalf("Forward before RetryAt moved %d", n)
	}
	s.clock.Advance(5 * time.Second)
	if n, err := s.b.Forward(s.ctx); err != nil || n != 1 {
		s.t.Fatalf("Forward at RetryAt = %d, %v", n, err)
	}
	t = s.fetchOne("q")
	if t.Attempts != 1 {
		t2 := t
		s.t.Fatalf("second attempt sees Attempts %d, want 1", t2.Attempts)
	}
	// A zero RetryAt makes it pending at once.
	err = s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(t), Error: broker.AttemptError{Attempt: 2, Kind: "panic", Message: "boom 2", Stack: "stack"}})
	if err != nil {
		s.t.Fatal(err)
	}
	got = s.wantState("q", "a", broker.StatePending)
	if got.Attempts != 2 || len(got.Errors) != 2 || got.Errors[1].Message != "boom 2" || got.Errors[1].Stack != "stack" || got.Errors[1].Attempt != 2 {
		s.t.Fatalf("history after two failures: attempts %d errors %+v", got.Attempts, got.Errors)
	}
	if got.Errors[1].At.IsZero() {
		s.t.Fatal("AttemptError.At left zero; the broker must fill it")
	}
}

func testFailDead(s *suite) {
	s.enqueue(newTask("q", "a"))
	t := s.fetchOne("q")
	err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(t), Error: broker.AttemptError{Attempt: 1, Message: "fatal"}, RetryAt: s.clock.Now().Add(time.Second), Dead: true})
	if err != nil {
		s.t.Fatal(err)
	}
	got := s.wantState("q", "a", broker.StateDead)
	if got.Attempts != 1 || len(got.Errors) != 1 || got.Errors[0].Message != "fatal" {
		s.t.Fatalf("dead task: %+v", got)
	}
	s.clock.Advance(time.Minute)
	s.b.Forward(s.ctx)
	s.b.Recover(s.ctx)
	s.b.Cleanup(s.ctx)
	s.wantState("q", "a", broker.StateDead)
}

func testRequeue(s *suite) {
	s.enqueue(newTask("q", "a"))
	t := s.fetchOne("q")
	if err := s.b.Requeue(s.ctx, ref(t)); err != nil {
		s.t.Fatal(err)
	}
	got := s.wantState("q", "a", broker.StatePending)
	if got.Attempts != 0 || len(got.Errors) != 0 {
		s.t.Fatalf("Requeue counted an attempt: %+v", got)
	}
	if again := s.fetchOne("q"); again.Attempts != 0 {
		s.t.Fatalf("refetched Attempts %d", again.Attempts)
	}
}

func testCompleteWithoutRetention(s *suite) {
	s.enqueue(newTask("q", "a"))
	t := s.fetchOne("q")
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(t), Result: []byte("r")}); err != nil {
		s.t.Fatal(err)
	}
	s.wantNotFound("q", "a")
	// The ID is free again.
	s.enqueue(newTask("q", "a"))
	s.wantState("q", "a", broker.StatePending)
}

func testCompleteRetentionCleanup(s *suite) {
	t := newTask("q", "a")
	t.Retention = time.Minute
	s.enqueue(t)
	ft := s.fetchOne("q")
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(ft), Result: []byte("result")}); err != nil {
		s.t.Fatal(err)
	}
	got := s.wantState("q", "a", broker.StateCompleted)
	if string(got.Result) != "result" || !sameTime(got.CompletedAt, s.clock.Now()) {
		s.t.Fatalf("completed task result %q completed at %v", got.Result, got.CompletedAt)
	}
	s.clock.Advance(59 * time.Second)
	if n, err := s.b.Cleanup(s.ctx); err != nil || n != 0 {
		s.t.Fatalf("Cleanup before retention ends = %d, %v", n, err)
	}
	s.wantState("q", "a", broker.StateCompleted)
	s.clock.Advance(time.Second)
	if n, err := s.b.Cleanup(s.ctx); err != nil || n != 1 {
		s.t.Fatalf("Cleanup after retention = %d, %v; want 1", n, err)
	}
	s.wantNotFound("q", "a")
}

func testAwaitTask(s *suite) {
	t := newTask("q", "a")
	t.Retention = time.Hour
	d := newTask("q", "d")
	d.Retention = time.Hour
	s.enqueue(t, d)

	type res struct {
		t   *broker.Task
		err error
	}
	await := func(queue, id string) chan res {
		ch := make(chan res, 1)
		go func() {
			got, err := s.b.AwaitTask(s.ctx, queue, id)
			ch <- res{got, err}
		}()
		return ch
	}
	chA, chD := await("q", "a"), await("", "d")
	time.Sleep(20 * time.Millisecond)
	both := s.fetchN(2, "q")
	ta, td := both["a"], both["d"]
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(ta), Result: []byte("ok")}); err != nil {
		s.t.Fatal(err)
	}
	if err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(td), Error: broker.AttemptError{Attempt: 1, Message: "no"}, Dead: true}); err != nil {
		s.t.Fatal(err)
	}
	for _, c := range []struct {
		ch    chan res
		state broker.State
	}{{chA, broker.StateCompleted}, {chD, broker.StateDead}} {
		select {
		case r := <-c.ch:
			if r.err != nil || r.t.State != c.state {
				s.t.Fatalf("AwaitTask = %+v, %v; want %s", r.t, r.err, c.state)
			}
		case <-time.After(10 * time.Second):
			s.t.Fatal("AwaitTask did not return after the task finished")
		}
	}
	// Already finished: at once, with the result.
	got, err := s.b.AwaitTask(s.ctx, "q", "a")
	if err != nil || string(got.Result) != "ok" {
		s.t.Fatalf("AwaitTask of a completed task = %+v, %v", got, err)
	}
	if _, err := s.b.AwaitTask(s.ctx, "q", "missing"); !errors.Is(err, broker.ErrTaskNotFound) {
		s.t.Fatalf("AwaitTask(missing) = %v, want ErrTaskNotFound", err)
	}
	// ctx ends first.
	s.enqueue(newTask("q", "slow"))
	ctx, cancel := context.WithTimeout(s.ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.b.AwaitTask(ctx, "q", "slow"); !errors.Is(err, context.DeadlineExceeded) {
		s.t.Fatalf("AwaitTask past ctx deadline = %v, want DeadlineExceeded", err)
	}
	// Deleted while awaited.
	ch := await("q", "slow")
	time.Sleep(20 * time.Millisecond)
	if err := s.b.DeleteTask(s.ctx, "q", "slow"); err != nil {
		s.t.Fatal(err)
	}
	select {
	case r := <-ch:
		if !errors.Is(r.err, broker.ErrTaskNotFound) {
			s.t.Fatalf("AwaitTask of a deleted task = %v, want ErrTaskNotFound", r.err)
		}
	case <-time.After(10 * time.Second):
		s.t.Fatal("AwaitTask did not return after the task was deleted")
	}
}

// testAwaitTasks: one call answers every ID once, each as it finishes
// (done, dead, missing, deleted while awaited, finished before the
// call), one answer at a time; ctx ending first returns its error and
// leaves the rest unanswered.
func testAwaitTasks(s *suite) {
	var ts []*broker.Task
	for _, id := range []string{"a", "d", "old", "del"} {
		t := newTask("q", id)
		t.Retention = time.Hour
		ts = append(ts, t)
	}
	s.enqueue(ts...)
	old := s.fetchN(1, "q")["a"] // FIFO: a
	if old == nil {
		s.t.Fatal("fetch: no task a")
	}
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(old), Result: []byte("A")}); err != nil {
		s.t.Fatal(err)
	}
	got, ret := s.startAwaitTasks("q", []string{"a", "d", "missing", "old", "del"})
	time.Sleep(20 * time.Millisecond)
	rest := s.fetchN(2, "q")
	if err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(rest["d"]), Error: broker.AttemptError{Attempt: 1, Message: "no"}, Dead: true}); err != nil {
		s.t.Fatal(err)
	}
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(rest["old"]), Result: []byte("O")}); err != nil {
		s.t.Fatal(err)
	}
	if err := s.b.DeleteTask(s.ctx, "q", "del"); err != nil {
		s.t.Fatal(err)
	}
	s.awaitReturned(ret)
	for id, want := range map[string]broker.State{"a": broker.StateCompleted, "d": broker.StateDead, "old": broker.StateCompleted} {
		if a := got[id]; a.err != nil || a.t == nil || a.t.State != want {
			s.t.Fatalf("AwaitTasks %s = %+v, %v; want %s", id, a.t, a.err, want)
		}
	}
	if string(got["a"].t.Result) != "A" || string(got["old"].t.Result) != "O" {
		s.t.Fatalf("results: %q, %q", got["a"].t.Result, got["old"].t.Result)
	}
	for _, id := range []string{"missing", "del"} {
		if !errors.Is(got[id].err, broker.ErrTaskNotFound) {
			s.t.Fatalf("AwaitTasks %s = %v, want ErrTaskNotFound", id, got[id].err)
		}
	}
	s.awaitPastDeadline("q", "q")
}

// testAwaitTasksAnyQueue: AwaitTasks with queue "" finds each ID in its
// own queue, answers each once and one at a time (finished before the
// call, finished while awaited, missing), and stops at ctx's end.
func testAwaitTasksAnyQueue(s *suite) {
	var ts []*broker.Task
	for _, qi := range [][2]string{{"q1", "a"}, {"q2", "b"}, {"q1", "c"}, {"q2", "d"}} {
		t := newTask(qi[0], qi[1])
		t.Retention = time.Hour
		ts = append(ts, t)
	}
	s.enqueue(ts...)
	first := s.fetchN(1, "q1")["a"]
	if first == nil {
		s.t.Fatal("fetch: no task a")
	}
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(first), Result: []byte("A")}); err != nil {
		s.t.Fatal(err)
	}
	got, ret := s.startAwaitTasks("", []string{"d", "a", "missing", "b", "c"})
	time.Sleep(20 * time.Millisecond)
	for _, q := range []string{"q1", "q2"} {
		for id, t := range s.fetchN(map[string]int{"q1": 1, "q2": 2}[q], q) {
			if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(t), Result: []byte(strings.ToUpper(id))}); err != nil {
				s.t.Fatal(err)
			}
		}
	}
	s.awaitReturned(ret)
	for id, q := range map[string]string{"a": "q1", "b": "q2", "c": "q1", "d": "q2"} {
		a := got[id]
		if a.err != nil || a.t == nil || a.t.State != broker.StateCompleted || a.t.Queue != q || string(a.t.Result) != strings.ToUpper(id) {
			s.t.Fatalf("AwaitTasks %s = %+v, %v; want completed in %s with result %q", id, a.t, a.err, q, strings.ToUpper(id))
		}
	}
	if !errors.Is(got["missing"].err, broker.ErrTaskNotFound) {
		s.t.Fatalf("AwaitTasks missing = %v, want ErrTaskNotFound", got["missing"].err)
	}
	s.awaitPastDeadline("q2", "")
}

// awaitAnswer is one answer of an AwaitTasks call.
type awaitAnswer struct {
	t   *broker.Task
	err error
}

// startAwaitTasks starts AwaitTasks on ids of queue in the background. It
// records each answer by ID in the map it returns, which must be read
// only after the call has returned on ret, and fails the test when done
// is called concurrently or twice for an ID.
func (s *suite) startAwaitTasks(queue string, ids []string) (map[string]awaitAnswer, <-chan error) {
	got := map[string]awaitAnswer{}
	var mu sync.Mutex
	var inDone atomic.Int32
	ret := make(chan error, 1)
	go func() {
		ret <- s.b.AwaitTasks(s.ctx, broker.AwaitParams{Queue: queue, IDs: ids}, func(i int, t *broker.Task, err error) {
			if inDone.Add(1) != 1 {
				s.t.Error("AwaitTasks called done concurrently")
			}
			defer inDone.Add(-1)
			mu.Lock()
			defer mu.Unlock()
			if _, dup := got[ids[i]]; dup {
				s.t.Errorf("AwaitTasks answered %s twice", ids[i])
			}
			got[ids[i]] = awaitAnswer{t, err}
		})
	}()
	return got, ret
}

// awaitReturned waits for the AwaitTasks call of startAwaitTasks to
// return nil on ret, within 10 s.
func (s *suite) awaitReturned(ret <-chan error) {
	s.t.Helper()
	select {
	case err := <-ret:
		if err != nil {
			s.t.Fatalf("AwaitTasks = %v", err)
		}
	case <-time.After(10 * time.Second):
		s.t.Fatalf("AwaitTasks did not return within 10s")
	}
}

// awaitPastDeadline: ctx ends first. AwaitTasks on a new pending task
// "slow" of queue q and on the finished "a" (awaitQueue: the queue to
// name, "" for every queue) returns ctx's error after answering a only.
func (s *suite) awaitPastDeadline(q, awaitQueue string) {
	s.t.Helper()
	s.enqueue(newTask(q, "slow"))
	ctx, cancel := context.WithTimeout(s.ctx, 50*time.Millisecond)
	defer cancel()
	var answered []string
	err := s.b.AwaitTasks(ctx, broker.AwaitParams{Queue: awaitQueue, IDs: []string{"slow", "a"}}, func(i int, _ *broker.Task, _ error) {
		answered = append(answered, []string{"slow", "a"}[i])
	})
	if !errors.Is(err, context.DeadlineExceeded) || len(answered) != 1 || answered[0] != "a" {
		s.t.Fatalf("AwaitTasks past ctx deadline = %v, answered %v; want DeadlineExceeded after a", err, answered)
	}
}

func testQueues(s *suite) {
	now := s.clock.Now()
	sched := newTask("a", "s")
	sched.ProcessAt = now.Add(time.Hour)
	kept := newTask("a", "c")
	kept.Retention = time.Hour
	s.enqueue(newTask("a", "p1"), newTask("a", "p2"), sched, kept, newTask("a", "r"), newTask("a", "d"), newTask("a", "act"), newTask("b", "x"))
	// Fetch in enqueue order: p1 p2 c r d act; put back p1, p2.
	ts := s.fetch(6, "a")
	byID := map[string]*broker.Task{}
	for _, t := range ts {
		byID[t.ID] = t
	}
	must := func(err error) {
		s.t.Helper()
		if err != nil {
			s.t.Fatal(err)
		}
	}
	must(s.b.Requeue(s.ctx, ref(byID["p1"]), ref(byID["p2"])))
	must(s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(byID["c"])}))
	must(s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(byID["r"]), Error: broker.AttemptError{Attempt: 1, Message: "x"}, RetryAt: now.Add(time.Hour)}))
	must(s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(byID["d"]), Error: broker.AttemptError{Attempt: 1, Message: "x"}, Dead: true}))
	must(s.b.Pause(s.ctx, "b"))

	qs, err := s.b.Queues(s.ctx)
	must(err)
	got := map[string]broker.QueueInfo{}
	for _, q := range qs {
		got[q.Name] = q
	}
	a, b := got["a"], got["b"]
	want := map[broker.State]int64{
		broker.StatePending: 2, broker.StateScheduled: 1, broker.StateActive: 1,
		broker.StateRetry: 1, broker.StateDead: 1, broker.StateCompleted: 1,
	}
	for st, n := range want {
		if a.Counts[st] != n {
			s.t.Fatalf("queue a %s = %d, want %d (counts %v)", st, a.Counts[st], n, a.Counts)
		}
	}
	if a.Paused || !b.Paused || b.Name != "b" || b.Counts[broker.StatePending] != 1 {
		s.t.Fatalf("queues = %+v", qs)
	}
}

func testListTasks(s *suite) {
	var want []string
	for i := range 7 {
		id := fmt.Sprintf("t%d", i)
		want = append(want, id)
		s.enqueue(newTask("q", id))
		// Distinct ages: "oldest first" is then one order, also over the
		// shards of a sharded queue.
		s.clock.Advance(time.Millisecond)
	}
	var got []string
	for off := 0; ; off += 3 {
		page, err := s.b.ListTasks(s.ctx, broker.ListParams{Queue: "q", State: broker.StatePending, Offset: off, Limit: 3})
		if err != nil {
			s.t.Fatal(err)
		}
		if len(page) > 3 {
			s.t.Fatalf("page of %d tasks, limit 3", len(page))
		}
		for _, t := range page {
			if t.State != broker.StatePending || t.Queue != "q" {
				s.t.Fatalf("listed %+v", t)
			}
		}
		got = append(got, ids(page)...)
		if len(page) < 3 {
			break
		}
	}
	if !slices.Equal(got, want) {
		s.t.Fatalf("pages = %v, want %v (oldest first)", got, want)
	}
	if page, err := s.b.ListTasks(s.ctx, broker.ListParams{Queue: "q", State: broker.StatePending, Offset: 100, Limit: 3}); err != nil || len(page) != 0 {
		s.t.Fatalf("page past the end = %v, %v", ids(page), err)
	}
	if page, err := s.b.ListTasks(s.ctx, broker.ListParams{Queue: "q", State: broker.StateDead, Offset: 0, Limit: 10}); err != nil || len(page) != 0 {
		s.t.Fatalf("dead tasks = %v, %v", ids(page), err)
	}
	if page, err := s.b.ListTasks(s.ctx, broker.ListParams{Queue: "nosuchqueue", State: broker.StatePending, Offset: 0, Limit: 10}); err != nil || len(page) != 0 {
		s.t.Fatalf("tasks of an unknown queue = %v, %v", ids(page), err)
	}
	t := s.fetchOne("q")
	if page, err := s.b.ListTasks(s.ctx, broker.ListParams{Queue: "q", State: broker.StateActive, Offset: 0, Limit: 10}); err != nil || !slices.Equal(ids(page), []string{t.ID}) {
		s.t.Fatalf("active tasks = %v, %v", ids(page), err)
	}
}

func testDeleteTask(s *suite) {
	sched := newTask("q", "s")
	sched.ProcessAt = s.clock.Now().Add(time.Second)
	s.enqueue(newTask("q", "p"), newTask("q", "act"), sched)
	if err := s.b.DeleteTask(s.ctx, "q", "p"); err != nil {
		s.t.Fatal(err)
	}
	s.wantNotFound("q", "p")
	act := s.fetchOne("q")
	if act.ID != "act" {
		s.t.Fatalf("fetched %s after deleting p, want act", act.ID)
	}
	if err := s.b.DeleteTask(s.ctx, "q", "act"); !errors.Is(err, broker.ErrInvalidState) {
		s.t.Fatalf("DeleteTask(active) = %v, want ErrInvalidState", err)
	}
	if err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(act), Error: broker.AttemptError{Attempt: 1, Message: "x"}, Dead: true}); err != nil {
		s.t.Fatal(err)
	}
	if err := s.b.DeleteTask(s.ctx, "", "act"); err != nil {
		s.t.Fatalf("DeleteTask(dead, any queue): %v", err)
	}
	if err := s.b.DeleteTask(s.ctx, "q", "s"); err != nil {
		s.t.Fatal(err)
	}
	s.clock.Advance(time.Second)
	if n, _ := s.b.Forward(s.ctx); n != 0 {
		s.t.Fatalf("Forward moved %d deleted tasks", n)
	}
	if err := s.b.DeleteTask(s.ctx, "q", "missing"); !errors.Is(err, broker.ErrTaskNotFound) {
		s.t.Fatalf("DeleteTask(missing) = %v, want ErrTaskNotFound", err)
	}
	qs, err := s.b.Queues(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, q := range qs {
		for st, n := range q.Counts {
			if n != 0 {
				s.t.Fatalf("queue %s still counts %d %s tasks", q.Name, n, st)
			}
		}
	}
}

func testRetryTask(s *suite) {
	sched := newTask("q", "s")
	sched.ProcessAt = s.clock.Now().Add(time.Hour)
	s.enqueue(newTask("q", "d"), newTask("q", "r"), sched)
	ts := s.fetch(2, "q")
	if err := s.b.Fail(s.ctx,
		broker.Failure{LeaseRef: ref(ts[0]), Error: broker.AttemptError{Attempt: 1, Message: "x"}, Dead: true},
		broker.Failure{LeaseRef: ref(ts[1]), Error: broker.AttemptError{Attempt: 1, Message: "y"}, RetryAt: s.clock.Now().Add(time.Hour)},
	); err != nil {
		s.t.Fatal(err)
	}
	for _, id := range []string{"d", "r", "s"} {
		if err := s.b.RetryTask(s.ctx, "q", id); err != nil {
			s.t.Fatalf("RetryTask(%s): %v", id, err)
		}
		if got := s.wantState("q", id, broker.StatePending); id == "d" && (got.Attempts != 1 || len(got.Errors) != 1) {
			s.t.Fatalf("RetryTask lost the history: %+v", got)
		}
	}
	if err := s.b.RetryTask(s.ctx, "q", "d"); !errors.Is(err, broker.ErrInvalidState) {
		s.t.Fatalf("RetryTask(pending) = %v, want ErrInvalidState", err)
	}
	if err := s.b.RetryTask(s.ctx, "q", "missing"); !errors.Is(err, broker.ErrTaskNotFound) {
		s.t.Fatalf("RetryTask(missing) = %v, want ErrTaskNotFound", err)
	}
	if got := s.fetch(10, "q"); len(got) != 3 {
		s.t.Fatalf("after RetryTask fetched %v, want 3 tasks", ids(got))
	}
	// Their old due times no longer apply.
	s.clock.Advance(2 * time.Hour)
	if n, _ := s.b.Forward(s.ctx); n != 0 {
		s.t.Fatalf("Forward moved %d retried tasks again", n)
	}
}

func testBatchErrorPerItem(s *suite) {
	s.enqueue(newTask("q", "a"), newTask("q", "b"), newTask("q", "c"))
	ts := s.fetch(3, "q")
	bogus := broker.LeaseRef{Queue: "q", ID: "nope", Token: 99}
	err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(ts[0])}, broker.Ack{LeaseRef: bogus})
	wantItemErr(s.t, err, 2, 1, broker.ErrLeaseLost)
	s.wantNotFound("q", ts[0].ID)
	err = s.b.Fail(s.ctx, broker.Failure{LeaseRef: bogus, Error: broker.AttemptError{Message: "x"}}, broker.Failure{LeaseRef: ref(ts[1]), Error: broker.AttemptError{Attempt: 1, Message: "x"}})
	wantItemErr(s.t, err, 2, 0, broker.ErrLeaseLost)
	s.wantState("q", ts[1].ID, broker.StatePending)
	err = s.b.Requeue(s.ctx, ref(ts[2]), bogus)
	wantItemErr(s.t, err, 2, 1, broker.ErrLeaseLost)
	s.wantState("q", ts[2].ID, broker.StatePending)
	// Empty batches are no-ops.
	if err := s.b.Complete(s.ctx); err != nil {
		s.t.Fatalf("Complete() = %v", err)
	}
	if err := s.b.Enqueue(s.ctx); err != nil {
		s.t.Fatalf("Enqueue() = %v", err)
	}
}

func testConcurrentFetch(s *suite) {
	const n, workers = 600, 8
	var tasks []*broker.Task
	for i := range n {
		tasks = append(tasks, newTask(fmt.Sprintf("q%d", i%3), fmt.Sprintf("t%d", i)))
	}
	s.enqueue(tasks...)
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				got, err := s.b.Fetch(s.ctx, broker.FetchParams{Queues: []string{"q0", "q1", "q2"}, Max: 1 + w%4, Lease: lease, WorkerID: fmt.Sprintf("w%d", w)})
				if err != nil {
					errs <- err
					return
				}
				if len(got) == 0 {
					return
				}
				acks := make([]broker.Ack, len(got))
				mu.Lock()
				for i, t := range got {
					seen[t.Queue+"/"+t.ID]++
					acks[i] = broker.Ack{LeaseRef: ref(t)}
				}
				mu.Unlock()
				if err := s.b.Complete(s.ctx, acks...); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		s.t.Fatal(err)
	}
	if len(seen) != n {
		s.t.Fatalf("%d distinct tasks fetched, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			s.t.Fatalf("task %s leased %d times", id, c)
		}
	}
}

func testClose(s *suite) {
	s.enqueue(newTask("q", "a"))
	waitErr := make(chan error, 1)
	go func() {
		_, err := s.b.AwaitTask(s.ctx, "q", "a")
		waitErr <- err
	}()
	time.Sleep(20 * time.Millisecond)
	if err := s.b.Close(); err != nil {
		s.t.Fatal(err)
	}
	select {
	case err := <-waitErr:
		if err == nil {
			s.t.Fatal("AwaitTask returned no error after Close")
		}
	case <-time.After(10 * time.Second):
		s.t.Fatal("AwaitTask still blocked after Close")
	}
	if err := s.b.Enqueue(s.ctx, newTask("q", "b")); !errors.Is(err, broker.ErrClosed) {
		s.t.Fatalf("Enqueue after Close = %v, want ErrClosed", err)
	}
	if _, err := s.b.Fetch(s.ctx, broker.FetchParams{Queues: []string{"q"}, Max: 1, Lease: lease, WorkerID: "w"}); !errors.Is(err, broker.ErrClosed) {
		s.t.Fatalf("Fetch after Close = %v, want ErrClosed", err)
	}
}
