package redis_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
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

// BenchmarkAwaitMany: 2,000 AwaitTask calls on unfinished tasks of one
// queue for one second, then the tasks complete. Reports the Redis calls a
// second while they wait (INFO commandstats) and how long after the
// completion the last waiter returned, with the shared poller and with a
// poller per waiter.
func BenchmarkAwaitMany(b *testing.B) {
	for _, mode := range []struct {
		name   string
		shared bool
	}{{"shared-poller", true}, {"poller-per-waiter", false}} {
		b.Run(mode.name, func(b *testing.B) {
			old := redisbroker.SetAwaitShared(mode.shared)
			defer redisbroker.SetAwaitShared(old)
			br, rdb := newTestBroker(b, nil)
			ctx := context.Background()
			const n = 2000
			var calls, lastMs, cpuMs, trips float64
			for r := range b.N {
				ts := benchTasks("aw", n, r)
				for _, t := range ts {
					t.Retention = time.Minute // kept, so waiters see it completed
				}
				if err := br.Enqueue(ctx, ts...); err != nil {
					b.Fatal(err)
				}
				var wg sync.WaitGroup
				var last atomic.Int64
				for _, t := range ts {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := br.AwaitTask(ctx, "aw", t.ID); err != nil {
							b.Error(err)
						}
						last.Store(time.Now().UnixNano())
					}()
				}
				time.Sleep(200 * time.Millisecond) // every waiter in its slow phase
				before, cpu0, trips0 := redisCalls(b, rdb)
				time.Sleep(time.Second)
				after, cpu1, trips1 := redisCalls(b, rdb)
				calls += float64(after - before)
				cpuMs += (cpu1 - cpu0) * 1000
				trips += float64(trips1 - trips0)
				got, err := br.Fetch(ctx, broker.FetchParams{Queues: []string{"aw"}, Max: n, Lease: time.Minute, WorkerID: "w"})
				if err != nil || len(got) != n {
					b.Fatal(len(got), err)
				}
				acks := make([]broker.Ack, n)
				for i, t := range got {
					acks[i] = broker.Ack{LeaseRef: t.Ref()}
				}
				if err := br.Complete(ctx, acks...); err != nil {
					b.Fatal(err)
				}
				done := time.Now()
				wg.Wait()
				lastMs += float64(time.Unix(0, last.Load()).Sub(done).Microseconds()) / 1000
			}
			b.ReportMetric(calls/float64(b.N), "redis-calls/s")
			b.ReportMetric(trips/float64(b.N), "client-cmds/s")
			b.ReportMetric(cpuMs/float64(b.N), "redis-cpu-ms/s")
			b.ReportMetric(lastMs/float64(b.N), "last-wake-ms")
		})
	}
}

// redisCalls reads the server's counters: commands run (INFO
// commandstats, scripts' own commands included), CPU seconds used, and
// commands sent by clients (EVALSHA and EVAL counted once each).
func redisCalls(b *testing.B, rdb *goredis.Client) (calls int64, cpu float64, trips int64) {
	info, err := rdb.Info(context.Background(), "commandstats", "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var inScripts int64
	for _, line := range strings.Split(info, "\n") {
		line = strings.TrimSpace(line)
		if k, v, ok := strings.Cut(line, ":"); ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
			f, _ := strconv.ParseFloat(v, 64)
			cpu += f
		}
		if i := strings.Index(line, "calls="); i >= 0 {
			v := line[i+len("calls="):]
			if j := strings.IndexByte(v, ','); j >= 0 {
				v = v[:j]
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			calls += n
			if strings.HasPrefix(line, "cmdstat_hget:") {
				inScripts += n
			}
		}
	}
	return calls, cpu, calls - inScripts
}

// BenchmarkWorkflowChain2: one 2-step chain per op, run to the end by one
// worker (create, fetch and complete step 0, fetch and complete step 1),
// with both steps in one queue and with the second in another queue (its
// start and end cross slots through the mover and the forwarder,
// xslot.go): the difference is what a step in another queue costs.
func BenchmarkWorkflowChain2(b *testing.B) {
	for _, other := range []string{"c1", "c2"} {
		b.Run(map[string]string{"c1": "OneQueue", "c2": "TwoQueues"}[other], func(b *testing.B) {
			br, _ := newTestBroker(b, nil)
			ctx := context.Background()
			fetch := func(q string) *broker.Task {
				for {
					ts, err := br.Fetch(ctx, broker.FetchParams{Queues: []string{q}, Max: 1, Lease: time.Minute, WorkerID: "w"})
					if err != nil {
						b.Fatal(err)
					}
					if len(ts) == 1 {
						return ts[0]
					}
				}
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				id := "w" + strconv.Itoa(i)
				w := &broker.Workflow{ID: id, Steps: []broker.WorkflowStep{
					{Task: broker.Task{ID: id + ".0", Kind: "a", Queue: "c1", Payload: []byte("1"), Encoding: "json"}},
					{Task: broker.Task{ID: id + ".1", Kind: "b", Queue: other, Encoding: "json"}, Input: &broker.Input{Step: 0}},
				}, Output: broker.Input{Step: 1}}
				if err := br.CreateWorkflow(ctx, w); err != nil {
					b.Fatal(err)
				}
				for _, q := range []string{"c1", other} {
					t := fetch(q)
					if err := br.Complete(ctx, broker.Ack{LeaseRef: t.Ref(), Result: []byte("2")}); err != nil {
						b.Fatal(err)
					}
				}
				if st, err := br.GetWorkflow(ctx, id); err != nil || st.State != broker.WorkflowCompleted {
					b.Fatalf("workflow %s: %v, %v", id, st, err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "workflows/s")
		})
	}
}

// BenchmarkChordCost: per op, 100 chords of 10 members and a body (1,100
// tasks, kept 24 h as a flow's steps are), created in calls of one chord,
// then fetched and completed 100 at a time until every body ran; "kept"
// is the same 1,100 tasks kept 24 h, enqueued 11 a call, without a
// workflow. Reports Redis CPU µs per task for the creation and for the
// fetches and completions: what the chord costs the server beyond the
// tasks it runs (bench/queue's TestWorkflowChordOverhead, end to end).
func BenchmarkChordCost(b *testing.B) {
	for _, side := range []string{"kept", "chord"} {
		b.Run(side, func(b *testing.B) {
			br, rdb := newTestBroker(b, nil)
			ctx := context.Background()
			const chords, members = 100, 10
			n := chords * (members + 1)
			var createCPU, settleCPU float64
			round := 0
			for b.Loop() {
				round++
				_, c0, _ := redisCalls(b, rdb)
				for c := range chords {
					id := fmt.Sprintf("%d.%d", round, c)
					task := func(k int) broker.Task {
						return broker.Task{ID: id + "." + strconv.Itoa(k), Kind: "noop", Queue: "q", Encoding: "json", Retention: 24 * time.Hour}
					}
					if side == "kept" {
						ts := make([]*broker.Task, members+1)
						for k := range ts {
							t := task(k)
							ts[k] = &t
						}
						if err := br.Enqueue(ctx, ts...); err != nil {
							b.Fatal(err)
						}
						continue
					}
					w := &broker.Workflow{ID: id, Retention: 24 * time.Hour, Output: broker.Input{Step: members}}
					body := broker.Input{Step: -1}
					for k := range members {
						w.Steps = append(w.Steps, broker.WorkflowStep{Task: task(k)})
						body.List = append(body.List, broker.Input{Step: k})
					}
					w.Steps = append(w.Steps, broker.WorkflowStep{Task: task(members), Input: &body})
					if err := br.CreateWorkflow(ctx, w); err != nil {
						b.Fatal(err)
					}
				}
				_, c1, _ := redisCalls(b, rdb)
				for done := 0; done < n; {
					ts, err := br.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: 100, Lease: time.Minute, WorkerID: "w"})
					if err != nil || len(ts) == 0 {
						b.Fatalf("fetch after %d of %d: %d, %v", done, n, len(ts), err)
					}
					acks := make([]broker.Ack, len(ts))
					for i, t := range ts {
						acks[i] = broker.Ack{LeaseRef: t.Ref()}
					}
					if err := br.Complete(ctx, acks...); err != nil {
						b.Fatal(err)
					}
					done += len(ts)
				}
				_, c2, _ := redisCalls(b, rdb)
				createCPU += c1 - c0
				settleCPU += c2 - c1
			}
			tasks := float64(b.N * n)
			b.ReportMetric(createCPU*1e6/tasks, "create-cpu-µs/task")
			b.ReportMetric(settleCPU*1e6/tasks, "settle-cpu-µs/task")
		})
	}
}

// BenchmarkScriptCallOverhead: one Complete of a lease that is not held,
// a script call that reads one field and changes nothing, so what it
// costs is the call itself: as a function of the library (FCALL) and with
// EVALSHA (Config.Eval), which runs common.lua and workflow.lua's
// definitions on every call (functions.go). Reports Redis CPU µs a call.
func BenchmarkScriptCallOverhead(b *testing.B) {
	for _, mode := range []string{"functions", "eval"} {
		b.Run(mode, func(b *testing.B) {
			br, c := newTestBrokerWith(b, redisbroker.Config{Eval: mode == "eval"})
			ctx := context.Background()
			if err := br.Enqueue(ctx, &broker.Task{ID: "x", Kind: "noop", Queue: "q"}); err != nil {
				b.Fatal(err)
			}
			lost := broker.Ack{LeaseRef: broker.LeaseRef{Queue: "q", ID: "x", Token: 5}}
			_ = br.Complete(ctx, lost) // loads the library
			_, c0, _ := redisCalls(b, c)
			for b.Loop() {
				if err := br.Complete(ctx, lost); !errors.Is(err, broker.ErrLeaseLost) {
					b.Fatalf("complete: %v", err)
				}
			}
			_, c1, _ := redisCalls(b, c)
			b.ReportMetric((c1-c0)*1e6/float64(b.N), "redis-cpu-µs/call")
		})
	}
}
