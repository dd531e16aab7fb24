package memory_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/memory"
)

// Long runs through the pending FIFO (compaction, stale entries after
// deletes and retries) keep order and counts exact.
func TestPendingFIFOUnderChurn(t *testing.T) {
	ctx := context.Background()
	b := memory.New(memory.Config{})
	defer b.Close()
	next, want := 0, []string{}
	add := func(n int) {
		for range n {
			id := fmt.Sprintf("t%06d", next)
			next++
			if err := b.Enqueue(ctx, &broker.Task{ID: id, Kind: "k", Queue: "q"}); err != nil {
				t.Fatal(err)
			}
			want = append(want, id)
		}
	}
	take := func(n int) {
		ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: n, Lease: time.Minute, WorkerID: "w"})
		if err != nil {
			t.Fatal(err)
		}
		for i, task := range ts {
			if task.ID != want[i] {
				t.Fatalf("fetched %s, want %s", task.ID, want[i])
			}
		}
		want = want[len(ts):]
		acks := make([]broker.Ack, len(ts))
		for i, task := range ts {
			acks[i] = broker.Ack{LeaseRef: broker.LeaseRef{Queue: "q", ID: task.ID, Token: task.Token}}
		}
		if err := b.Complete(ctx, acks...); err != nil {
			t.Fatal(err)
		}
	}
	for round := range 20 {
		add(3000)
		// Delete every 7th waiting task.
		kept := want[:0:0]
		for i, id := range want {
			if i%7 == round%7 {
				if err := b.DeleteTask(ctx, "q", id); err != nil {
					t.Fatal(err)
				}
				continue
			}
			kept = append(kept, id)
		}
		want = kept
		take(2500)
	}
	qs, _ := b.Queues(ctx)
	if got := qs[0].Counts[broker.StatePending]; got != int64(len(want)) {
		t.Fatalf("pending count %d, want %d", got, len(want))
	}
	take(len(want) + 10)
	if len(want) != 0 {
		t.Fatalf("%d tasks left", len(want))
	}
}

func BenchmarkEnqueueFetchComplete(b *testing.B) {
	ctx := context.Background()
	br := memory.New(memory.Config{})
	defer br.Close()
	const batch = 100
	tasks := make([]*broker.Task, batch)
	acks := make([]broker.Ack, batch)
	b.ReportAllocs()
	for i := 0; i < b.N; i += batch {
		for j := range tasks {
			tasks[j] = &broker.Task{ID: fmt.Sprint(i + j), Kind: "k", Queue: "q"}
		}
		if err := br.Enqueue(ctx, tasks...); err != nil {
			b.Fatal(err)
		}
		ts, _ := br.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: batch, Lease: time.Minute, WorkerID: "w"})
		for j, t := range ts {
			acks[j] = broker.Ack{LeaseRef: broker.LeaseRef{Queue: "q", ID: t.ID, Token: t.Token}}
		}
		if err := br.Complete(ctx, acks[:len(ts)]...); err != nil {
			b.Fatal(err)
		}
	}
}
