package redis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Broker-level benchmarks against the private test Redis:
//
//	source scripts/redis.sh; redis_start
//	go test -run '^$' -bench . -benchmem ./queue/broker/redis/
//
// tasks/s is the figure to read.

func benchTasks(queue string, n, round int) []*broker.Task {
	ts := make([]*broker.Task, n)
	for i := range ts {
		ts[i] = &broker.Task{ID: fmt.Sprintf("%d-%d", round, i), Kind: "noop", Queue: queue, Payload: []byte(`{"n":1}`)}
	}
	return ts
}

func BenchmarkEnqueueBatch1000(b *testing.B) {
	br, _ := newTestBroker(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	round := 0
	for b.Loop() {
		round++
		if err := br.Enqueue(ctx, benchTasks("q", 1000, round)...); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkEnqueueBatch1000Parallel: several producers at once.
func BenchmarkEnqueueBatch1000Parallel(b *testing.B) {
	br, _ := newTestBroker(b, nil)
	ctx := context.Background()
	b.ReportAllocs()
	var round int64
	var mu = make(chan struct{}, 1)
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			mu <- struct{}{}
			round++
			r := int(round)
			<-mu
			if err := br.Enqueue(ctx, benchTasks("q", 1000, r)...); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "tasks/s")
}

func BenchmarkEnqueueOne(b *testing.B) {
	br, _ := newTestBroker(b, nil)
	ctx := context.Background()
	i := 0
	for b.Loop() {
		i++
		if err := br.Enqueue(ctx, &broker.Task{ID: fmt.Sprint(i), Kind: "noop", Queue: "q"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tasks/s")
}

// BenchmarkFetchComplete100 leases 100 tasks and completes them in one
// call each: the worker's hot path.
func BenchmarkFetchComplete100(b *testing.B) {
	br, _ := newTestBroker(b, nil)
	ctx := context.Background()
	const batch = 100
	round := 0
	refill := func() {
		for range 10 {
			round++
			if err := br.Enqueue(ctx, benchTasks("q", 1000, round)...); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportAllocs()
	left := 0
	for b.Loop() {
		if left == 0 {
			b.StopTimer()
			refill()
			left = 100
			b.StartTimer()
		}
		ts, err := br.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: batch, Lease: time.Minute, WorkerID: "w"})
		if err != nil || len(ts) != batch {
			b.Fatalf("fetch: %d, %v", len(ts), err)
		}
		acks := make([]broker.Ack, len(ts))
		for i, t := range ts {
			acks[i] = broker.Ack{LeaseRef: broker.LeaseRef{Queue: t.Queue, ID: t.ID, Token: t.Token}}
		}
		if err := br.Complete(ctx, acks...); err != nil {
			b.Fatal(err)
		}
		left--
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "tasks/s")
}
