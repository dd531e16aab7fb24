package brokertest

import (
	"errors"
	"fmt"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Cases of sharded queues (broker.Sharder). On a broker without the role,
// Run checks that SetShards fails with broker.ErrUnsupported.
func init() {
	cases = append(cases, []testCase{
		{"ShardsSpread", broker.CapShards, testShardsSpread},
		{"ShardsGrowOnly", broker.CapShards, testShardsGrowOnly},
		{"ShardsPauseAndUnique", broker.CapShards | broker.CapUnique, testShardsPauseAndUnique},
	}...)
}

func (s *suite) setShards(queue string, n int) {
	s.t.Helper()
	if err := s.b.SetShards(s.ctx, broker.ShardParams{Queue: queue, Shards: n}); err != nil {
		s.t.Fatalf("SetShards(%s, %d): %v", queue, n, err)
	}
}

// shardsOf returns the shard detail of queue as Queues reports it.
func (s *suite) shardsOf(queue string) broker.QueueInfo {
	s.t.Helper()
	qs, err := s.b.Queues(s.ctx)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, q := range qs {
		if q.Name == queue {
			return q
		}
	}
	s.t.Fatalf("Queues has no queue %s: %+v", queue, qs)
	return broker.QueueInfo{}
}

func testShardsSpread(s *suite) {
	const n = 60
	s.setShards("hot", 3)
	var tasks []*broker.Task
	for i := range n {
		tasks = append(tasks, newTask("hot", fmt.Sprintf("t%02d", i)))
	}
	s.enqueue(tasks...)
	// One queue in the listing, its counts the sums of its shards'.
	q := s.shardsOf("hot")
	if q.Counts[broker.StatePending] != n || len(q.Shards) != 3 {
		s.t.Fatalf("queue hot = %+v, want %d pending over 3 shards", q, n)
	}
	var sum int64
	for i, sh := range q.Shards {
		if sh.Index != i || sh.Tag == "" || sh.Counts[broker.StatePending] == 0 {
			s.t.Fatalf("shard %d = %+v: want index %d, a tag and some of the %d tasks", i, sh, i, n)
		}
		sum += sh.Counts[broker.StatePending]
	}
	if sum != n {
		s.t.Fatalf("shards hold %d tasks, want %d", sum, n)
	}
	// Every task is found by ID, fetched once, FIFO per shard, and settled
	// through its lease (which names its shard).
	for _, t := range tasks {
		s.wantState("hot", t.ID, broker.StatePending)
		s.wantState("", t.ID, broker.StatePending)
	}
	var all []*broker.Task
	for {
		got := s.fetch(7, "hot")
		if len(got) == 0 {
			break
		}
		all = append(all, got...)
	}
	if len(all) != n {
		s.t.Fatalf("fetched %d tasks, want %d", len(all), n)
	}
	s.wantFIFOPerShard(all)
	// Fair: the first fetches take from every shard, not one after another.
	firsts := map[int]bool{}
	for _, t := range all[:7] {
		firsts[t.Shard] = true
	}
	if len(firsts) != 3 {
		s.t.Fatalf("the first fetch of 7 took from shards %v, want all 3", firsts)
	}
	res, err := s.b.ExtendLeases(s.ctx, broker.ExtendParams{Leases: []broker.LeaseRef{ref(all[0]), ref(all[1])}, Lease: lease})
	if err != nil || len(res.Lost) != 0 {
		s.t.Fatalf("ExtendLeases = %+v, %v", res, err)
	}
	wrong := ref(all[0])
	wrong.Shard = (wrong.Shard + 1) % 3
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: wrong}); !errors.Is(err, broker.ErrLeaseLost) {
		s.t.Fatalf("Complete naming another shard = %v, want ErrLeaseLost", err)
	}
	acks := make([]broker.Ack, 0, n)
	for _, t := range all[:n-2] {
		acks = append(acks, broker.Ack{LeaseRef: ref(t)})
	}
	if err := s.b.Complete(s.ctx, acks...); err != nil {
		s.t.Fatal(err)
	}
	dead, retry := all[n-2], all[n-1]
	if err := s.b.Fail(s.ctx,
		broker.Failure{LeaseRef: ref(dead), Error: broker.AttemptError{Attempt: 1, Message: "x"}, Dead: true},
		broker.Failure{LeaseRef: ref(retry), Error: broker.AttemptError{Attempt: 1, Message: "y"}, RetryAt: s.clock.Now().Add(time.Second)},
	); err != nil {
		s.t.Fatal(err)
	}
	// Maintenance and the per-task calls reach every shard.
	s.clock.Advance(time.Second)
	if n, err := s.b.Forward(s.ctx); err != nil || n != 1 {
		s.t.Fatalf("Forward = %d, %v; want 1", n, err)
	}
	if err := s.b.RetryTask(s.ctx, "hot", dead.ID); err != nil {
		s.t.Fatal(err)
	}
	if err := s.b.DeleteTask(s.ctx, "", retry.ID); err != nil {
		s.t.Fatal(err)
	}
	page, err := s.b.ListTasks(s.ctx, broker.ListParams{Queue: "hot", State: broker.StatePending, Limit: 10})
	if err != nil || len(page) != 1 || page[0].ID != dead.ID || page[0].Shard != dead.Shard {
		s.t.Fatalf("pending after retry and delete = %v, %v; want [%s] in shard %d", ids(page), err, dead.ID, dead.Shard)
	}
	t := s.fetchOne("hot")
	s.clock.Advance(lease)
	if n, err := s.b.Recover(s.ctx); err != nil || n != 1 {
		s.t.Fatalf("Recover = %d, %v; want 1", n, err)
	}
	s.wantState("hot", t.ID, broker.StatePending)
	if q := s.shardsOf("hot"); q.Counts[broker.StatePending] != 1 || q.Counts[broker.StateActive] != 0 {
		s.t.Fatalf("queue hot = %+v, want 1 pending", q.Counts)
	}
}

func testShardsGrowOnly(s *suite) {
	s.enqueue(newTask("g", "before"))
	// The broker may have given g shards of its own accord (a default).
	cur := max(1, len(s.shardsOf("g").Shards))
	s.setShards("g", cur+1)
	s.setShards("g", cur+1) // the same count again is a no-op
	s.setShards("g", cur+3)
	if err := s.b.SetShards(s.ctx, broker.ShardParams{Queue: "g", Shards: cur + 2}); err == nil {
		s.t.Fatalf("SetShards lowered the count of g from %d to %d", cur+3, cur+2)
	}
	for _, n := range []int{0, -1} {
		if err := s.b.SetShards(s.ctx, broker.ShardParams{Queue: "g", Shards: n}); err == nil {
			s.t.Fatalf("SetShards(g, %d) succeeded", n)
		}
	}
	if err := s.b.SetShards(s.ctx, broker.ShardParams{Queue: "bad{name}", Shards: 2}); err == nil {
		s.t.Fatal("SetShards accepted an invalid queue name")
	}
	// A task stored before the queue had shards is still found and run.
	s.wantState("g", "before", broker.StatePending)
	for i := range 20 {
		s.enqueue(newTask("g", fmt.Sprintf("after%d", i)))
	}
	if q := s.shardsOf("g"); len(q.Shards) != cur+3 || q.Counts[broker.StatePending] != 21 {
		s.t.Fatalf("queue g = %+v, want 21 pending over %d shards", q, cur+3)
	}
	if got := s.fetch(100, "g"); len(got) != 21 {
		s.t.Fatalf("fetched %d tasks of g, want 21", len(got))
	}
	// Setting shards registers the queue, tasks or not.
	s.setShards("empty", 5)
	if q := s.shardsOf("empty"); len(q.Shards) != 5 || q.Counts[broker.StatePending] != 0 {
		s.t.Fatalf("queue empty = %+v", q)
	}
}

func testShardsPauseAndUnique(s *suite) {
	// A paused queue stays paused when it grows: new shards start paused.
	if err := s.b.Pause(s.ctx, "p"); err != nil {
		s.t.Fatal(err)
	}
	s.setShards("p", 3)
	for i := range 9 {
		s.enqueue(newTask("p", fmt.Sprintf("p%d", i)))
	}
	if got := s.fetch(10, "p"); len(got) != 0 {
		s.t.Fatalf("fetched %v from a paused sharded queue", ids(got))
	}
	q := s.shardsOf("p")
	for _, sh := range q.Shards {
		if !sh.Paused {
			s.t.Fatalf("shard %d of paused p is not paused: %+v", sh.Index, q)
		}
	}
	if err := s.b.Resume(s.ctx, "p"); err != nil {
		s.t.Fatal(err)
	}
	if got := s.fetch(10, "p"); len(got) != 9 {
		s.t.Fatalf("fetched %d after Resume, want 9", len(got))
	}
	if q := s.shardsOf("p"); q.Paused {
		s.t.Fatalf("queue p still paused: %+v", q)
	}
	// One live task per unique key across shards: a key has one shard.
	s.setShards("u", 3)
	u := s.unique()
	for i := range 6 {
		s.enqueueUnique(u, newTask("u", fmt.Sprintf("u%d", i)), fmt.Sprintf("k%d", i), time.Hour, nil)
	}
	for i := range 6 {
		s.enqueueUnique(u, newTask("u", fmt.Sprintf("dup%d", i)), fmt.Sprintf("k%d", i), time.Hour, broker.ErrDuplicateTask)
	}
	got := s.fetch(10, "u")
	if len(got) != 6 {
		s.t.Fatalf("fetched %v, want the 6 unique tasks", ids(got))
	}
	acks := make([]broker.Ack, len(got))
	for i, t := range got {
		acks[i] = broker.Ack{LeaseRef: ref(t)}
	}
	if err := s.b.Complete(s.ctx, acks...); err != nil {
		s.t.Fatal(err)
	}
	// Completing released every lock, wherever it lived.
	for i := range 6 {
		s.enqueueUnique(u, newTask("u", fmt.Sprintf("again%d", i)), fmt.Sprintf("k%d", i), time.Hour, nil)
	}
}
