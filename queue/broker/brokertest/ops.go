package brokertest

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Cases of the operational capabilities (cancel, throughput, worker and
// scheduler records) and of behaviours the brokers must agree on.
func init() {
	cases = append(cases, []testCase{
		{"CompleteRetentionCountsAttempt", 0, testCompleteRetentionCountsAttempt},
		{"ListTasksDefaultLimit", 0, testListTasksDefaultLimit},
		{"CancelWaiting", broker.CapCancel, testCancelWaiting},
		{"CancelActive", broker.CapCancel, testCancelActive},
		{"CancelActiveRequeueRecover", broker.CapCancel, testCancelActiveRequeueRecover},
		{"Throughput", broker.CapStats, testThroughput},
		{"WorkerRegistry", broker.CapWorkers, testWorkerRegistry},
		{"ScheduleRegistry", broker.CapSchedules, testScheduleRegistry},
	}...)
}

func (s *suite) canceler() broker.Canceler { return s.b }

func testCompleteRetentionCountsAttempt(s *suite) {
	t := newTask("q", "a")
	t.Retention = time.Minute
	s.enqueue(t)
	ft := s.fetchOne("q")
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(ft)}); err != nil {
		s.t.Fatal(err)
	}
	if got := s.wantState("q", "a", broker.StateCompleted); got.Attempts != 1 {
		s.t.Fatalf("completed task has Attempts %d, want 1 (the attempt that completed counts)", got.Attempts)
	}
	// After a failed attempt: 2.
	t = newTask("q", "b")
	t.Retention = time.Minute
	s.enqueue(t)
	ft = s.fetchOne("q")
	if err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(ft), Error: broker.AttemptError{Message: "x"}}); err != nil {
		s.t.Fatal(err)
	}
	ft = s.fetchOne("q")
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(ft)}); err != nil {
		s.t.Fatal(err)
	}
	if got := s.wantState("q", "b", broker.StateCompleted); got.Attempts != 2 || len(got.Errors) != 1 {
		s.t.Fatalf("completed task has Attempts %d and %d errors, want 2 and 1", got.Attempts, len(got.Errors))
	}
}

func testListTasksDefaultLimit(s *suite) {
	n := broker.DefaultListLimit + 5
	ts := make([]*broker.Task, n)
	for i := range ts {
		ts[i] = newTask("q", fmt.Sprintf("t%03d", i))
		// Distinct ages: oldest first is one order, shards or not.
		ts[i].EnqueuedAt = s.clock.Now().Add(time.Duration(i-n) * time.Millisecond)
	}
	s.enqueue(ts...)
	for _, limit := range []int{0, -1} {
		got, err := s.b.ListTasks(s.ctx, broker.ListParams{Queue: "q", State: broker.StatePending, Offset: 0, Limit: limit})
		if err != nil || len(got) != broker.DefaultListLimit {
			s.t.Fatalf("ListTasks(limit %d) = %d tasks, %v; want %d", limit, len(got), err, broker.DefaultListLimit)
		}
		if got[0].ID != "t000" {
			s.t.Fatalf("first task %s, want t000", got[0].ID)
		}
	}
	got, err := s.b.ListTasks(s.ctx, broker.ListParams{Queue: "q", State: broker.StatePending, Offset: broker.DefaultListLimit, Limit: 0})
	if err != nil || len(got) != 5 || got[0].ID != fmt.Sprintf("t%03d", broker.DefaultListLimit) {
		s.t.Fatalf("ListTasks(offset %d, limit 0) = %v, %v; want the last 5", broker.DefaultListLimit, ids(got), err)
	}
}

// wantCancelled checks the task is dead with a last error of kind
// "cancelled" and attempts as given.
func (s *suite) wantCancelled(queue, id string, attempts int) *broker.Task {
	s.t.Helper()
	got := s.wantState(queue, id, broker.StateDead)
	if n := len(got.Errors); n == 0 || got.Errors[n-1].Kind != broker.ErrorKindCancelled || got.Errors[n-1].Message == "" {
		s.t.Fatalf("cancelled task errors %+v, want the last of kind %q", got.Errors, broker.ErrorKindCancelled)
	}
	if got.Attempts != attempts {
		s.t.Fatalf("cancelled task has Attempts %d, want %d", got.Attempts, attempts)
	}
	return got
}

func testCancelWaiting(s *suite) {
	c := s.canceler()
	sched := newTask("q", "s")
	sched.ProcessAt = s.clock.Now().Add(time.Hour)
	s.enqueue(newTask("q", "p"), sched, newTask("q", "r"), newTask("q", "keep"))
	// r: one failed attempt, waiting to retry; p and keep back to pending.
	got := s.fetchN(3, "q")
	if err := s.b.Requeue(s.ctx, ref(got["p"]), ref(got["keep"])); err != nil {
		s.t.Fatal(err)
	}
	if err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(got["r"]), Error: broker.AttemptError{Message: "boom"}, RetryAt: s.clock.Now().Add(time.Minute)}); err != nil {
		s.t.Fatal(err)
	}
	for id, want := range map[string]broker.State{"p": broker.StatePending, "s": broker.StateScheduled, "r": broker.StateRetry} {
		st, err := c.CancelTask(s.ctx, "q", id)
		if err != nil || st != want {
			s.t.Fatalf("CancelTask(%s) = %q, %v; want %q", id, st, err, want)
		}
	}
	s.wantCancelled("q", "p", 0)
	s.wantCancelled("q", "s", 0)
	if got := s.wantCancelled("q", "r", 1); len(got.Errors) != 2 || got.Errors[0].Message != "boom" {
		s.t.Fatalf("cancelled retry task errors %+v, want its history kept", got.Errors)
	}
	// Nothing cancelled is fetched or forwarded.
	s.clock.Advance(2 * time.Hour)
	if _, err := s.b.Forward(s.ctx); err != nil {
		s.t.Fatal(err)
	}
	if got := s.fetch(10, "q"); len(got) != 1 || got[0].ID != "keep" {
		s.t.Fatalf("fetched %v after cancels, want [keep]", ids(got))
	}
	// Dead tasks cannot be cancelled; unknown ones are not found; the
	// queue may be left out.
	if _, err := c.CancelTask(s.ctx, "q", "p"); !errors.Is(err, broker.ErrInvalidState) {
		s.t.Fatalf("CancelTask(dead) = %v, want ErrInvalidState", err)
	}
	if _, err := c.CancelTask(s.ctx, "q", "nope"); !errors.Is(err, broker.ErrTaskNotFound) {
		s.t.Fatalf("CancelTask(unknown) = %v, want ErrTaskNotFound", err)
	}
	s.enqueue(newTask("q", "any"))
	if st, err := c.CancelTask(s.ctx, "", "any"); err != nil || st != broker.StatePending {
		s.t.Fatalf("CancelTask(queue \"\") = %q, %v", st, err)
	}
	s.wantCancelled("q", "any", 0)
	if qs, err := s.b.Queues(s.ctx); err != nil || qs[0].Counts[broker.StateDead] != 4 || qs[0].Counts[broker.StatePending] != 0 {
		s.t.Fatalf("Queues = %+v, %v; want 4 dead, 0 pending", qs, err)
	}
}

func testCancelActive(s *suite) {
	c := s.canceler()
	s.enqueue(newTask("q", "a"), newTask("q", "b"))
	both := s.fetchN(2, "q")
	ta, tb := both["a"], both["b"]
	st, err := c.CancelTask(s.ctx, "q", "a")
	if err != nil || st != broker.StateActive {
		s.t.Fatalf("CancelTask(active) = %q, %v", st, err)
	}
	if _, err := c.CancelTask(s.ctx, "q", "a"); err != nil {
		s.t.Fatalf("second CancelTask(active) = %v, want nil", err)
	}
	s.wantState("q", "a", broker.StateActive) // until the worker ends the attempt
	s.clock.Advance(10 * time.Second)
	res, err := s.b.ExtendLeases(s.ctx, broker.ExtendParams{Leases: []broker.LeaseRef{ref(ta), ref(tb)}, Lease: lease})
	if err != nil || len(res.Lost) != 0 || len(res.Cancelled) != 1 || res.Cancelled[0] != ref(ta) {
		s.t.Fatalf("ExtendLeases = lost %v, cancelled %v, %v; want cancelled [a]", res.Lost, res.Cancelled, err)
	}
	if got := s.get("q", "a"); !sameTime(got.LeaseUntil, s.clock.Now().Add(lease)) {
		s.t.Fatalf("cancelled task's lease is %v, want renewed to %v", got.LeaseUntil, s.clock.Now().Add(lease))
	}
	// The flag lasts until the attempt ends: the next renewal reports it
	// again, and still renews the lease.
	s.clock.Advance(10 * time.Second)
	if res, err := s.b.ExtendLeases(s.ctx, broker.ExtendParams{Leases: []broker.LeaseRef{ref(ta)}, Lease: lease}); err != nil || len(res.Lost) != 0 || len(res.Cancelled) != 1 {
		s.t.Fatalf("second ExtendLeases = %+v, %v; want a cancelled again", res, err)
	}
	if got := s.get("q", "a"); !sameTime(got.LeaseUntil, s.clock.Now().Add(lease)) {
		s.t.Fatalf("cancelled task's lease is %v after the second renewal, want %v", got.LeaseUntil, s.clock.Now().Add(lease))
	}
	// The worker fails the attempt: dead whatever it asked, kind cancelled.
	if err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(ta), Error: broker.AttemptError{Kind: "error", Message: "context canceled"}}); err != nil {
		s.t.Fatal(err)
	}
	s.wantCancelled("q", "a", 1)
	// b was not flagged: a normal failure retries it.
	if err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(tb), Error: broker.AttemptError{Message: "x"}}); err != nil {
		s.t.Fatal(err)
	}
	s.wantState("q", "b", broker.StatePending)
	// The flag does not outlive the attempt: b runs again unflagged.
	tb = s.fetchOne("q")
	if res, err := s.b.ExtendLeases(s.ctx, broker.ExtendParams{Leases: []broker.LeaseRef{ref(tb)}, Lease: lease}); err != nil || len(res.Cancelled) != 0 {
		s.t.Fatalf("ExtendLeases(b) cancelled %v, %v", res.Cancelled, err)
	}
	// A worker that records kind cancelled itself keeps its message.
	if _, err := c.CancelTask(s.ctx, "q", "b"); err != nil {
		s.t.Fatal(err)
	}
	if err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(tb), Dead: true, Error: broker.AttemptError{Kind: broker.ErrorKindCancelled, Message: "stopped by request"}}); err != nil {
		s.t.Fatal(err)
	}
	if got := s.wantCancelled("q", "b", 2); got.Errors[1].Message != "stopped by request" {
		s.t.Fatalf("errors %+v", got.Errors)
	}
}

func testCancelActiveRequeueRecover(s *suite) {
	c := s.canceler()
	s.enqueue(newTask("q", "a"), newTask("q", "b"), newTask("q", "c"))
	three := s.fetchN(3, "q")
	ta, tb, tc := three["a"], three["b"], three["c"]
	for _, id := range []string{"a", "b"} {
		if _, err := c.CancelTask(s.ctx, "q", id); err != nil {
			s.t.Fatal(err)
		}
	}
	// Requeued (worker shutting down): dead, not pending; no attempt counted.
	if err := s.b.Requeue(s.ctx, ref(ta)); err != nil {
		s.t.Fatal(err)
	}
	s.wantCancelled("q", "a", 0)
	// Lease expired: dead, whatever retries are left.
	s.clock.Advance(lease + time.Second)
	if n, err := s.b.Recover(s.ctx); err != nil || n != 2 {
		s.t.Fatalf("Recover = %d, %v; want 2", n, err)
	}
	s.wantCancelled("q", "b", 1)
	s.wantState("q", "c", broker.StatePending)
	_ = tb
	_ = tc
	// Completed tasks cannot be cancelled.
	t := newTask("q", "d")
	t.Retention = time.Hour
	s.enqueue(t)
	var td *broker.Task
	for _, ft := range s.fetch(10, "q") {
		if ft.ID == "d" {
			td = ft
		}
	}
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(td)}); err != nil {
		s.t.Fatal(err)
	}
	if _, err := c.CancelTask(s.ctx, "q", "d"); !errors.Is(err, broker.ErrInvalidState) {
		s.t.Fatalf("CancelTask(completed) = %v, want ErrInvalidState", err)
	}
}

func testThroughput(s *suite) {
	sr := broker.StatsReader(s.b)
	s.clock.Set(s.clock.Now().Truncate(time.Minute).Add(59 * time.Second)) // cross a minute
	t0 := s.clock.Now().Truncate(time.Second)
	ts := make([]*broker.Task, 6)
	for i := range ts {
		ts[i] = newTask("q", fmt.Sprintf("t%d", i))
	}
	s.enqueue(ts...)
	s.enqueue(newTask("other", "o"))
	got := s.fetch(6, "q")
	// Second 0: 2 completed (one call), 1 failed.
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(got[0])}, broker.Ack{LeaseRef: ref(got[1])}); err != nil {
		s.t.Fatal(err)
	}
	if err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(got[2]), Error: broker.AttemptError{Message: "x"}, Dead: true}); err != nil {
		s.t.Fatal(err)
	}
	// A lease already lost counts nothing.
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(got[0])}); err == nil {
		s.t.Fatal("second Complete succeeded")
	}
	// Second 1 (the next minute): 1 completed, then 2 leases expire at 31.
	s.clock.Advance(time.Second)
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(got[3])}); err != nil {
		s.t.Fatal(err)
	}
	s.clock.Advance(lease)
	if n, err := s.b.Recover(s.ctx); err != nil || n != 2 {
		s.t.Fatalf("Recover = %d, %v", n, err)
	}
	points, err := sr.Throughput(s.ctx, broker.ThroughputParams{Queue: "q", From: t0.Add(-time.Second), To: t0.Add(lease + 3*time.Second)})
	if err != nil {
		s.t.Fatal(err)
	}
	if len(points) != int(lease/time.Second)+4 {
		s.t.Fatalf("%d points, want %d", len(points), int(lease/time.Second)+4)
	}
	want := map[int][2]int64{1: {2, 1}, 2: {1, 0}, 2 + int(lease/time.Second): {0, 2}}
	for i, p := range points {
		if !p.At.Equal(t0.Add(time.Duration(i-1) * time.Second)) {
			s.t.Fatalf("point %d at %v, want %v", i, p.At, t0.Add(time.Duration(i-1)*time.Second))
		}
		if w := want[i]; p.Processed != w[0] || p.Failed != w[1] {
			s.t.Fatalf("point %d (%v) = %d processed, %d failed; want %v", i, p.At, p.Processed, p.Failed, w)
		}
	}
	// Other queues are separate; empty ranges are empty.
	if ps, err := sr.Throughput(s.ctx, broker.ThroughputParams{Queue: "other", From: t0, To: t0.Add(2 * time.Second)}); err != nil || len(ps) != 2 || ps[0].Processed+ps[1].Processed != 0 {
		s.t.Fatalf("Throughput(other) = %+v, %v", ps, err)
	}
	if ps, err := sr.Throughput(s.ctx, broker.ThroughputParams{Queue: "q", From: t0, To: t0}); err != nil || len(ps) != 0 {
		s.t.Fatalf("Throughput(empty range) = %+v, %v", ps, err)
	}
}

func testWorkerRegistry(s *suite) {
	r := broker.WorkerRegistry(s.b)
	now := s.clock.Now()
	w1 := broker.WorkerInfo{ID: "w1", Host: "h", PID: 7, Queues: []string{"a", "b"}, Concurrency: 4, StartedAt: now, HeartbeatAt: now,
		Running: []broker.RunningTask{{ID: "t1", Queue: "a", Kind: "k", StartedAt: now}}}
	w2 := broker.WorkerInfo{ID: "w2", Host: "h2", Concurrency: 1, StartedAt: now, HeartbeatAt: now}
	if err := r.Heartbeat(s.ctx, w2, 10*time.Second); err != nil {
		s.t.Fatal(err)
	}
	if err := r.Heartbeat(s.ctx, w1, 30*time.Second); err != nil {
		s.t.Fatal(err)
	}
	list := func() []broker.WorkerInfo {
		s.t.Helper()
		ws, err := r.ListWorkers(s.ctx)
		if err != nil {
			s.t.Fatal(err)
		}
		return ws
	}
	ws := list()
	if len(ws) != 2 || ws[0].ID != "w1" || ws[1].ID != "w2" {
		s.t.Fatalf("ListWorkers = %+v", ws)
	}
	g := ws[0]
	if g.Host != "h" || g.PID != 7 || !slices.Equal(g.Queues, w1.Queues) || g.Concurrency != 4 || !sameTime(g.StartedAt, now) ||
		len(g.Running) != 1 || g.Running[0].ID != "t1" || g.Running[0].Kind != "k" || !sameTime(g.Running[0].StartedAt, now) {
		s.t.Fatalf("worker record %+v, want %+v", g, w1)
	}
	// A heartbeat replaces the record; records expire with their TTL.
	w1.Running = nil
	if err := r.Heartbeat(s.ctx, w1, 30*time.Second); err != nil {
		s.t.Fatal(err)
	}
	s.clock.Advance(10 * time.Second)
	if ws := list(); len(ws) != 1 || ws[0].ID != "w1" || len(ws[0].Running) != 0 {
		s.t.Fatalf("after w2's TTL: %+v", ws)
	}
	if err := r.RemoveWorker(s.ctx, "w1"); err != nil {
		s.t.Fatal(err)
	}
	if err := r.RemoveWorker(s.ctx, "absent"); err != nil {
		s.t.Fatal(err)
	}
	if ws := list(); len(ws) != 0 {
		s.t.Fatalf("after RemoveWorker: %+v", ws)
	}
}

func testScheduleRegistry(s *suite) {
	r := broker.ScheduleRegistry(s.b)
	now := s.clock.Now()
	e := broker.ScheduleEntry{Name: "b", Spec: "@every 1m", Kind: "k", Queue: "q", Next: now.Add(time.Minute), Prev: now, Fired: 3}
	if err := r.PublishEntries(s.ctx, "s1", []broker.ScheduleEntry{e, {Name: "a", Spec: "@hourly", Kind: "k2", Queue: "q", Next: now.Add(time.Hour)}}, 10*time.Second); err != nil {
		s.t.Fatal(err)
	}
	if err := r.PublishEntries(s.ctx, "s2", []broker.ScheduleEntry{e}, 30*time.Second); err != nil {
		s.t.Fatal(err)
	}
	es, err := r.ListEntries(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	var got []string
	for _, x := range es {
		got = append(got, x.Name+"@"+x.SchedulerID)
	}
	if !slices.Equal(got, []string{"a@s1", "b@s1", "b@s2"}) {
		s.t.Fatalf("ListEntries = %v", got)
	}
	if x := es[1]; x.Spec != e.Spec || x.Kind != "k" || x.Queue != "q" || !sameTime(x.Next, e.Next) || !sameTime(x.Prev, now) || x.Fired != 3 {
		s.t.Fatalf("entry %+v, want %+v", x, e)
	}
	s.clock.Advance(10 * time.Second)
	if es, err := r.ListEntries(s.ctx); err != nil || len(es) != 1 || es[0].SchedulerID != "s2" {
		s.t.Fatalf("after s1's TTL: %+v, %v", es, err)
	}
	if err := r.RemoveEntries(s.ctx, "s2"); err != nil {
		s.t.Fatal(err)
	}
	if es, err := r.ListEntries(s.ctx); err != nil || len(es) != 0 {
		s.t.Fatalf("after RemoveEntries: %+v, %v", es, err)
	}
}
