package redis_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// TestAwaitPushed: with a poll schedule of an hour, a waiter still learns
// of its task's end, completed, dead or cancelled while pending, from the
// ID the settling script publishes: the push alone answers it, whether
// the wait names the queue or not (queue "": the task is looked up
// first, then waits in the queue it was found in).
func TestAwaitPushed(t *testing.T) {
	// Before the brokers are made: each copies the schedule.
	lo, hi := redisbroker.SetAwaitPoll(time.Hour, time.Hour)
	defer redisbroker.SetAwaitPoll(lo, hi)
	t.Run("standalone", func(t *testing.T) {
		br, c := newTestBroker(t, nil)
		awaitPushed(t, br, c)
	})
	t.Run("cluster", func(t *testing.T) {
		c := testenv.RedisClusterClient(t)
		awaitPushed(t, newClusterBroker(t, c, redisbroker.Config{}), c)
	})
}

func awaitPushed(t *testing.T, br *redisbroker.Broker, c goredis.UniversalClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const q = "pushq"
	ts := []*broker.Task{
		{ID: "ok", Kind: "k", Queue: q, Retention: time.Minute},
		{ID: "bad", Kind: "k", Queue: q, Retention: time.Minute},
		{ID: "any", Kind: "k", Queue: q, Retention: time.Minute},
		{ID: "gone", Kind: "k", Queue: q, Retention: time.Minute},
	}
	if err := br.Enqueue(ctx, ts...); err != nil {
		t.Fatal(err)
	}
	type res struct {
		id  string
		t   *broker.Task
		err error
	}
	got := make(chan res, len(ts))
	for _, x := range ts {
		go func() {
			wq := q
			if x.ID == "any" {
				wq = "" // every queue
			}
			t, err := br.AwaitTask(ctx, wq, x.ID)
			got <- res{x.ID, t, err}
		}()
	}
	// The first read of each waiter is at once; then only a push can wake
	// them. Wait until the poller listens (its key exists).
	key := br.Prefix() + ":{" + q + "}:awaiting"
	for c.Exists(ctx, key).Val() == 0 {
		if ctx.Err() != nil {
			t.Fatal("the awaiting key never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	for numSub(ctx, c, key) == 0 { // the subscription is sent before the key is set; wait until it landed
		if ctx.Err() != nil {
			t.Fatal("the poller never subscribed")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The waiter of "any" first finds its task, then waits on the shared
	// poller too: wait until all four are there, so that every one of them
	// can only learn of its task's end from a push.
	for redisbroker.AwaitWaiters(br) < len(ts) {
		if ctx.Err() != nil {
			t.Fatalf("%d waiters registered, want %d", redisbroker.AwaitWaiters(br), len(ts))
		}
		time.Sleep(10 * time.Millisecond)
	}
	leased, err := br.Fetch(ctx, broker.FetchParams{Queues: []string{q}, Max: 3, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(leased) != 3 {
		t.Fatalf("fetch: %v %v", leased, err)
	}
	if _, err := br.CancelTask(ctx, q, "gone"); err != nil {
		t.Fatal(err)
	}
	for _, l := range leased {
		switch l.ID {
		case "ok", "any":
			err = br.Complete(ctx, broker.Ack{LeaseRef: l.Ref(), Result: []byte(`1`)})
		default:
			err = br.Fail(ctx, broker.Failure{LeaseRef: l.Ref(), Error: broker.AttemptError{Kind: "error", Message: "boom"}, Dead: true})
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	for range ts {
		r := <-got
		if r.err != nil {
			t.Fatalf("await %s: %v", r.id, r.err)
		}
		want := map[string]broker.State{"ok": broker.StateCompleted, "bad": broker.StateDead, "any": broker.StateCompleted, "gone": broker.StateDead}[r.id]
		if r.t.State != want {
			t.Fatalf("await %s: state %s, want %s", r.id, r.t.State, want)
		}
	}
}

// numSub counts the subscribers of channel on every node (on a cluster a
// subscription is known only to the node it was made on).
func numSub(ctx context.Context, c goredis.UniversalClient, channel string) int64 {
	cc, ok := c.(*goredis.ClusterClient)
	if !ok {
		return c.PubSubNumSub(ctx, channel).Val()[channel]
	}
	var n atomic.Int64
	_ = cc.ForEachShard(ctx, func(ctx context.Context, node *goredis.Client) error {
		n.Add(node.PubSubNumSub(ctx, channel).Val()[channel])
		return nil
	})
	return n.Load()
}
