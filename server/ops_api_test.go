package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	"github.com/conqhq/conq/queue/broker/memory"
)

// opsBrokers runs fn against the memory broker and the Redis one.
func opsBrokers(t *testing.T, fn func(t *testing.T, b broker.Broker)) {
	t.Run("memory", func(t *testing.T) { fn(t, nil) })
	t.Run("redis", func(t *testing.T) { fn(t, redisBroker(t)) })
}

func TestCancelTaskAPI(t *testing.T) {
	opsBrokers(t, func(t *testing.T, b broker.Broker) {
		ts := newTestServer(t, Config{Broker: b})
		pending := enqueue(t, ts.b, "k", []byte(`{}`), queue.Queue("c"))
		r := ts.do(t, "POST", "/api/v1/tasks/"+pending.ID+"/cancel", nil)
		expectStatus(t, r, http.StatusOK)
		m := r.json(t)
		task, _ := m["task"].(map[string]any)
		if m["was"] != "pending" || task["state"] != "dead" {
			t.Fatalf("cancel pending: %s", r.body)
		}
		errs, _ := task["errors"].([]any)
		if len(errs) != 1 || errs[0].(map[string]any)["kind"] != "cancelled" {
			t.Fatalf("cancelled task errors: %s", r.body)
		}
		// Dead now: cancelling again conflicts; unknown IDs are 404.
		r = ts.do(t, "POST", "/api/v1/tasks/"+pending.ID+"/cancel", nil)
		if r.status != http.StatusConflict || r.errCode(t) != "invalid_state" {
			t.Fatalf("second cancel: %d %s", r.status, r.body)
		}
		expectStatus(t, ts.do(t, "POST", "/api/v1/tasks/nope/cancel", nil), http.StatusNotFound)
		expectStatus(t, ts.do(t, "GET", "/api/v1/tasks/"+pending.ID+"/cancel", nil), http.StatusMethodNotAllowed)

		// An active task is flagged and stays active until its worker ends it.
		active := enqueue(t, ts.b, "k", nil, queue.Queue("c"))
		leased, err := ts.b.Fetch(context.Background(), broker.FetchParams{Queues: []string{"c"}, Max: 1, Lease: time.Minute, WorkerID: "w"})
		if err != nil || len(leased) != 1 || leased[0].ID != active.ID {
			t.Fatalf("fetch: %v %v", leased, err)
		}
		r = ts.do(t, "POST", "/api/v1/tasks/"+active.ID+"/cancel?queue=c", nil)
		expectStatus(t, r, http.StatusOK)
		m = r.json(t)
		if m["was"] != "active" || m["task"].(map[string]any)["state"] != "active" {
			t.Fatalf("cancel active: %s", r.body)
		}
		ref := broker.LeaseRef{Queue: "c", ID: active.ID, Token: leased[0].Token}
		if res, err := ts.b.ExtendLeases(context.Background(), broker.ExtendParams{Leases: []broker.LeaseRef{ref}, Lease: time.Minute}); err != nil || len(res.Cancelled) != 1 {
			t.Fatalf("the lease is not reported cancelled: %+v %v", res, err)
		}
	})
}

func TestWorkersAPI(t *testing.T) {
	opsBrokers(t, func(t *testing.T, b broker.Broker) {
		ts := newTestServer(t, Config{Broker: b})
		r := ts.do(t, "GET", "/api/v1/workers", nil)
		expectStatus(t, r, http.StatusOK)
		if ws := r.json(t)["workers"].([]any); len(ws) != 0 {
			t.Fatalf("workers before any: %s", r.body)
		}
		release := make(chan struct{})
		started := make(chan struct{}, 1)
		w, err := queue.NewWorker(ts.b, queue.WorkerConfig{
			Queues: map[string]int{"wq": 1}, Concurrency: 3, HeartbeatInterval: 20 * time.Millisecond,
			PollInterval: 20 * time.Millisecond, Logger: quietLogger(),
		})
		if err != nil {
			t.Fatal(err)
		}
		w.HandleFunc("block", func(ctx context.Context, _ *queue.TaskInfo) ([]byte, error) {
			started <- struct{}{}
			<-release
			return nil, nil
		})
		if err := w.Start(context.Background()); err != nil {
			t.Fatal(err)
		}
		defer func() {
			close(release)
			if err := w.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
			r := ts.do(t, "GET", "/api/v1/workers", nil)
			if ws := r.json(t)["workers"].([]any); len(ws) != 0 {
				t.Errorf("workers after shutdown: %s", r.body)
			}
		}()
		task := enqueue(t, ts.b, "block", nil, queue.Queue("wq"))
		<-started
		deadline := time.Now().Add(10 * time.Second)
		for {
			r = ts.do(t, "GET", "/api/v1/workers", nil)
			expectStatus(t, r, http.StatusOK)
			ws := r.json(t)["workers"].([]any)
			if len(ws) == 1 {
				wk := ws[0].(map[string]any)
				if run := wk["running"].([]any); len(run) == 1 {
					rt := run[0].(map[string]any)
					if wk["id"] != w.ID() || wk["concurrency"] != 3.0 || rt["id"] != task.ID || rt["kind"] != "block" || rt["queue"] != "wq" ||
						wk["heartbeat_at"] == "" || wk["started_at"] == "" {
						t.Fatalf("worker: %s", r.body)
					}
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("the running worker is not listed: %s", r.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

func TestSchedulesAPI(t *testing.T) {
	opsBrokers(t, func(t *testing.T, b broker.Broker) {
		ts := newTestServer(t, Config{Broker: b})
		for _, id := range []string{"s1", "s2"} {
			// The first publish is at once; the records live 3 intervals,
			// so a 1 s interval keeps them between the API's read and the
			// page's on a loaded machine (at 20 ms, a late beat let both
			// expire in between: the page showed no entry in CI).
			s, err := queue.NewScheduler(ts.b, queue.SchedulerConfig{ID: id, PublishInterval: time.Second, Logger: quietLogger()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.RegisterEntry(queue.Entry{Name: "nightly", Spec: "@daily", Task: queue.NewTask("report", nil, queue.Queue("reports"))}); err != nil {
				t.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			r := ts.do(t, "GET", "/api/v1/schedules", nil)
			expectStatus(t, r, http.StatusOK)
			es := r.json(t)["schedules"].([]any)
			if len(es) == 1 && len(es[0].(map[string]any)["schedulers"].([]any)) == 2 {
				e := es[0].(map[string]any)
				next, err := time.Parse(time.RFC3339Nano, e["next"].(string))
				if e["name"] != "nightly" || e["spec"] != "@daily" || e["kind"] != "report" || e["queue"] != "reports" || err != nil ||
					!next.After(time.Now()) || next.After(time.Now().Add(24*time.Hour)) {
					t.Fatalf("schedule: %s", r.body)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("schedules: %s", r.body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// The dashboard page lists it.
		r := ts.do(t, "GET", "/schedules", nil)
		expectStatus(t, r, http.StatusOK)
		if !strings.Contains(string(r.body), `data-entry-row="nightly"`) {
			t.Fatalf("schedules page lacks the entry:\n%s", r.body)
		}
	})
}

func TestExactThroughputAPI(t *testing.T) {
	opsBrokers(t, func(t *testing.T, b broker.Broker) {
		ts := newTestServer(t, Config{Broker: b})
		ctx := context.Background()
		for range 3 {
			enqueue(t, ts.b, "k", nil, queue.Queue("tq"))
		}
		enqueue(t, ts.b, "k", nil, queue.Queue("other"))
		leased, err := ts.b.Fetch(ctx, broker.FetchParams{Queues: []string{"tq", "other"}, Max: 4, Lease: time.Minute, WorkerID: "w"})
		if err != nil || len(leased) != 4 {
			t.Fatalf("fetch: %v %v", leased, err)
		}
		var acks []broker.Ack
		for _, l := range leased[:3] {
			acks = append(acks, broker.Ack{LeaseRef: broker.LeaseRef{Queue: l.Queue, ID: l.ID, Token: l.Token}})
		}
		if err := ts.b.Complete(ctx, acks...); err != nil {
			t.Fatal(err)
		}
		l := leased[3]
		if err := ts.b.Fail(ctx, broker.Failure{LeaseRef: broker.LeaseRef{Queue: l.Queue, ID: l.ID, Token: l.Token}, Dead: true}); err != nil {
			t.Fatal(err)
		}
		sum := func(v []any) (n float64) {
			for _, x := range v {
				n += x.(float64)
			}
			return n
		}
		// The current second is left out until it is over.
		deadline := time.Now().Add(5 * time.Second)
		for {
			r := ts.do(t, "GET", "/api/v1/throughput", nil)
			expectStatus(t, r, http.StatusOK)
			m := r.json(t)
			p, f := m["processed"].([]any), m["failed"].([]any)
			if len(p) != 3600 || m["interval_seconds"] != 1.0 || m["source"] != "broker" {
				t.Fatalf("throughput: %.300s", r.body)
			}
			if sum(p) == 3 && sum(f) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("throughput sums %v processed %v failed, want 3 and 1", sum(p), sum(f))
			}
			time.Sleep(100 * time.Millisecond)
		}
		r := ts.do(t, "GET", "/api/v1/throughput?queue=tq&minutes=2", nil)
		expectStatus(t, r, http.StatusOK)
		m := r.json(t)
		if p := m["processed"].([]any); len(p) != 120 || sum(p) != 3 || sum(m["failed"].([]any)) != 0 || m["queue"] != "tq" {
			t.Fatalf("per queue: %.300s", r.body)
		}
		for _, q := range []string{"minutes=0", "minutes=61", "minutes=x", "queue=a{b}"} {
			if r := ts.do(t, "GET", "/api/v1/throughput?"+q, nil); r.status != http.StatusBadRequest {
				t.Errorf("%s: %d %s", q, r.status, r.body)
			}
		}
	})
}

func TestOpsNotSupported(t *testing.T) {
	ts := newTestServer(t, Config{Broker: brokertest.WithoutOptional(memory.New(memory.Config{})), SampleInterval: -1})
	for _, path := range []string{"/api/v1/workers", "/api/v1/schedules"} {
		r := ts.do(t, "GET", path, nil)
		if r.status != http.StatusNotImplemented || r.errCode(t) != "not_supported" {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
}
