package redis_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

func chord(id, q string, n int) *broker.Workflow {
	w := &broker.Workflow{ID: id}
	list := broker.Input{Step: -1}
	for i := range n {
		w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: id + "." + strconv.Itoa(i), Kind: "m", Queue: q, Encoding: "json"}})
		list.List = append(list.List, broker.Input{Step: i})
	}
	w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: id + ".body", Kind: "body", Queue: q, Encoding: "json"}, Input: &list})
	w.Output = broker.Input{Step: n}
	return w
}

// TestWorkflowLimits: a workflow above MaxWorkflowSteps, or with steps in
// two queues, is refused with an error naming the problem, and nothing is
// stored.
func TestWorkflowLimits(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	b, c := newTestBrokerWith(t, redisbroker.Config{MaxWorkflowSteps: 5})
	err := b.CreateWorkflow(ctx, chord("big", "q", 5))
	if !errors.Is(err, broker.ErrWorkflowTooLarge) || !strings.Contains(err.Error(), "6 steps") || !strings.Contains(err.Error(), "limit of 5") {
		t.Fatalf("CreateWorkflow(6 steps, limit 5) = %v", err)
	}
	if _, err := b.GetWorkflow(ctx, "big"); !errors.Is(err, broker.ErrTaskNotFound) {
		t.Fatalf("GetWorkflow of a refused workflow = %v", err)
	}
	if n, _ := c.Keys(ctx, b.Prefix()+":*").Result(); len(n) != 0 {
		t.Fatalf("a refused workflow left keys %v", n)
	}
	// Steps in two queues are accepted (the conformance suite runs them,
	// brokertest WorkflowCrossQueue*); a bad queue name is still refused.
	w := chord("two", "q", 2)
	w.Steps[1].Task.Queue = "other"
	if err := b.CreateWorkflow(ctx, w); err != nil {
		t.Fatalf("CreateWorkflow(two queues) = %v", err)
	}
	w = chord("bad", "q", 2)
	w.Steps[1].Task.Queue = "a{b"
	if err := b.CreateWorkflow(ctx, w); err == nil {
		t.Fatal("CreateWorkflow with a queue named a{b succeeded")
	}
	if err := b.CreateWorkflow(ctx, chord("ok", "q", 4)); err != nil {
		t.Fatal(err)
	}
	// The same ID again, in another queue: a conflict.
	if err := b.CreateWorkflow(ctx, chord("ok", "q2", 1)); !errors.Is(err, broker.ErrTaskIDConflict) {
		t.Fatalf("CreateWorkflow(same ID, other queue) = %v", err)
	}
}

// TestWorkflowJSONStrings: error messages and kinds of every byte (invalid
// UTF-8, controls, HTML, U+2028) reach a tolerant body as json.Marshal
// writes them: the Lua encoder matches Go's.
func TestWorkflowJSONStrings(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	b, _ := newTestBroker(t, nil)
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "é", "\u2028", "\u2029", "\xff", "\xe2\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x00", "\x1f", "\x7f",
		"<", ">", "&", "\"", "\\", "\n", "\t", "\b", "\f", "\U0001F600", "\xef\xbf\xbd", "\xc0\xaf", "\xe0\x9f\xbf"}
	for n := range 60 {
		var kb strings.Builder
		for range r.IntN(12) {
			kb.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		kind := "k" + kb.String()
		id := "js" + strconv.Itoa(n)
		w := &broker.Workflow{ID: id, Steps: []broker.WorkflowStep{
			{Task: broker.Task{ID: id + ".0", Kind: kind, Queue: "js", Encoding: "json"}},
			{Task: broker.Task{ID: id + ".1", Kind: "after", Queue: "js", Encoding: "json"}, Input: &broker.Input{Step: 0}},
			{Task: broker.Task{ID: id + ".2", Kind: "body", Queue: "js", Encoding: "json"}, Tolerant: true,
				Input: &broker.Input{Step: -1, List: []broker.Input{{Step: 1}}}},
		}, Output: broker.Input{Step: 2}}
		if err := b.CreateWorkflow(ctx, w); err != nil {
			t.Fatal(err)
		}
		ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"js"}, Max: 1, Lease: time.Minute})
		if err != nil || len(ts) != 1 {
			t.Fatalf("Fetch = %v, %v", ts, err)
		}
		if err := b.Fail(ctx, broker.Failure{LeaseRef: ts[0].Ref(), Error: broker.AttemptError{Message: "boom " + kb.String()}, Dead: true}); err != nil {
			t.Fatal(err)
		}
		ts, err = b.Fetch(ctx, broker.FetchParams{Queues: []string{"js"}, Max: 1, Lease: time.Minute})
		if err != nil || len(ts) != 1 {
			t.Fatalf("Fetch body = %v, %v", ts, err)
		}
		got, err := b.GetWorkflow(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := broker.InputValue(*w.Steps[2].Input, true, func(i int) broker.StepResult {
			s := got.Steps[i]
			return broker.StepResult{OK: s.State == broker.StepCompleted, Result: s.Result, Error: s.Error}
		})
		if string(ts[0].Payload) != string(want) {
			t.Fatalf("kind %q: body payload\n %q\nwant\n %q", kind, ts[0].Payload, want)
		}
		if !strings.Contains(got.Steps[1].Error, kind) {
			t.Fatalf("step 1 error %q does not name kind %q", got.Steps[1].Error, kind)
		}
	}
}

// TestWorkflowMemory measures Redis memory per workflow member (for
// docs/workflows.md): a chord of 10,000 members with a 10-byte payload,
// while every member is pending, then after every member completed with
// a 1-byte result (tasks without retention are gone; the workflow keeps
// each result). Run with CONQ_MEASURE=1.
func TestWorkflowMemory(t *testing.T) {
	if os.Getenv("CONQ_MEASURE") == "" {
		t.Skip("a measurement: run with CONQ_MEASURE=1")
	}
	testenv.RedisURL(t)
	ctx := context.Background()
	b, c := newTestBroker(t, nil)
	used := func() int64 {
		s, err := c.Info(ctx, "memory").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(s, "\r\n") {
			if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				return n
			}
		}
		t.Fatal("no used_memory")
		return 0
	}
	const n = 10_000
	w := chord("mem", "mq", n)
	for i := range n {
		w.Steps[i].Task.Payload = []byte(`"abcdefgh"`)
	}
	before := used()
	if err := b.CreateWorkflow(ctx, w); err != nil {
		t.Fatal(err)
	}
	pending := used()
	for done := 0; done < n; {
		ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"mq"}, Max: 1000, Lease: time.Minute})
		if err != nil || len(ts) == 0 {
			t.Fatal(err)
		}
		acks := make([]broker.Ack, len(ts))
		for i, tk := range ts {
			acks[i] = broker.Ack{LeaseRef: tk.Ref(), Result: []byte("1")}
		}
		if err := b.Complete(ctx, acks...); err != nil {
			t.Fatal(err)
		}
		done += len(ts)
	}
	finished := used()
	wf, _ := c.MemoryUsage(ctx, b.Prefix()+":{mq}:wf", 0).Result()
	t.Logf("redis: %d members: %.0f bytes/member with every member pending (workflow + tasks), %.0f bytes/member once the members completed (workflow records, results kept); MEMORY USAGE of the wf hash %d bytes",
		n, float64(pending-before)/n, float64(finished-before)/n, wf)
}

// TestWorkflowCreateCancelled: callers whose ctx ends while their create
// waits for a batch (or while its batch is on its way) leave the group
// commit working: every create not cancelled succeeds, each cancelled one
// is stored or not but never half (GetWorkflow finds it whole or not at
// all), and nothing hangs.
func TestWorkflowCreateCancelled(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	b, _ := newTestBroker(t, nil)
	runCallers(t, 32, 60, func(c, k int) error {
		id := "cx" + strconv.Itoa(c) + "_" + strconv.Itoa(k)
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if (c+k)%3 == 0 {
			// Ends at once, or while waiting, or in flight.
			cctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(1500))*time.Microsecond)
		}
		err := b.CreateWorkflow(cctx, chord(id, "cx", 3))
		cancel()
		switch {
		case err == nil:
		case (c+k)%3 == 0 && cctx.Err() != nil:
			if _, gerr := b.GetWorkflow(ctx, id); gerr != nil && !errors.Is(gerr, broker.ErrTaskNotFound) {
				return fmt.Errorf("GetWorkflow %s after a cancelled create: %v", id, gerr)
			}
		default:
			return fmt.Errorf("CreateWorkflow %s: %v", id, err)
		}
		return nil
	})
	if err := b.CreateWorkflow(ctx, chord("cx_after", "cx", 3)); err != nil {
		t.Fatalf("CreateWorkflow after the cancelled ones: %v", err)
	}
}

// TestWorkflowConcurrentCreate: concurrent creates are combined into
// shared script calls, and still each decided as if alone: of 20 creates
// of one ID exactly one wins, and of workflows sharing a step task ID
// exactly one is stored.
func TestWorkflowConcurrentCreate(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	b, _ := newTestBroker(t, nil)
	for round := range 5 {
		id := "same" + strconv.Itoa(round)
		errs := make(chan error, 20)
		for range 20 {
			go func() { errs <- b.CreateWorkflow(ctx, chord(id, "cc", 3)) }()
		}
		wins := 0
		for range 20 {
			err := <-errs
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, broker.ErrTaskIDConflict):
				t.Fatalf("CreateWorkflow: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d creates of one ID succeeded", round, wins)
		}
		// Different workflow IDs, the same step task IDs.
		for k := range 20 {
			go func() {
				w := chord("other"+strconv.Itoa(round)+"_"+strconv.Itoa(k), "cc", 2)
				for i := range w.Steps {
					w.Steps[i].Task.ID = "shared" + strconv.Itoa(round) + "." + strconv.Itoa(i)
				}
				errs <- b.CreateWorkflow(ctx, w)
			}()
		}
		wins = 0
		for range 20 {
			err := <-errs
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, broker.ErrTaskIDConflict):
				t.Fatalf("CreateWorkflow: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("round %d: %d workflows with the same step task IDs were stored", round, wins)
		}
	}
}

// TestListWorkflowsScanCap: with a state filter that matches few
// workflows, each wf_list call stops after a few index entries; paging
// still lists every match once, newest first, across three shards.
func TestListWorkflowsScanCap(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	defer redisbroker.SetWorkflowListScan(redisbroker.SetWorkflowListScan(3))
	clock := brokertest.NewManualClock(time.Time{})
	b, _ := newTestBroker(t, clock)
	if err := b.SetShards(ctx, broker.ShardParams{Queue: "sc", Shards: 3}); err != nil {
		t.Fatal(err)
	}
	var all, cancelled []string
	for i := range 30 {
		clock.Advance(time.Millisecond)
		id := "sc" + strconv.Itoa(100+i)
		if err := b.CreateWorkflow(ctx, chord(id, "sc", 1)); err != nil {
			t.Fatal(err)
		}
		all = append([]string{id}, all...)
		if i%5 == 0 {
			if err := b.CancelWorkflow(ctx, id); err != nil {
				t.Fatal(err)
			}
			cancelled = append([]string{id}, cancelled...)
		}
	}
	list := func(p broker.WorkflowListParams) []string {
		var out []string
		for range 100 {
			page, err := b.ListWorkflows(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range page.Workflows {
				out = append(out, w.ID)
			}
			if page.Next == "" {
				return out
			}
			p.Cursor = page.Next
		}
		t.Fatal("more than 100 pages")
		return nil
	}
	for _, limit := range []int{1, 2, 7, 100} {
		if got := list(broker.WorkflowListParams{State: broker.WorkflowCancelled, Limit: limit}); strings.Join(got, " ") != strings.Join(cancelled, " ") {
			t.Fatalf("cancelled, limit %d: %v, want %v", limit, got, cancelled)
		}
		if got := list(broker.WorkflowListParams{Limit: limit}); strings.Join(got, " ") != strings.Join(all, " ") {
			t.Fatalf("all, limit %d: %v, want %v", limit, got, all)
		}
	}
}

// TestWorkflowIndex: the global index entry of a workflow (written by
// wf_create off Cluster) is written for a created workflow only; an entry
// naming another shard with no such workflow there (a create that died
// before its script) is taken over; one naming a shard that holds the
// workflow is a conflict.
func TestWorkflowIndex(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	b, c := newTestBroker(t, nil)
	idx := b.Prefix() + ":workflows"
	if err := b.CreateWorkflow(ctx, chord("ix1", "iq", 2)); err != nil {
		t.Fatal(err)
	}
	if tag, _ := c.HGet(ctx, idx, "ix1").Result(); tag != "iq" {
		t.Fatalf("index entry of ix1 = %q, want iq", tag)
	}
	// A step task ID taken: refused, and no index entry left.
	w := chord("ix2", "iq", 2)
	w.Steps[0].Task.ID = "ix1.0"
	if err := b.CreateWorkflow(ctx, w); !errors.Is(err, broker.ErrTaskIDConflict) {
		t.Fatalf("CreateWorkflow(taken step ID) = %v", err)
	}
	if n, _ := c.HExists(ctx, idx, "ix2").Result(); n {
		t.Fatal("a refused create left its index entry")
	}
	// A stale entry naming another queue's shard: taken over.
	c.HSet(ctx, idx, "ix3", "elsewhere")
	if err := b.CreateWorkflow(ctx, chord("ix3", "iq", 2)); err != nil {
		t.Fatalf("CreateWorkflow over a stale index entry = %v", err)
	}
	if tag, _ := c.HGet(ctx, idx, "ix3").Result(); tag != "iq" {
		t.Fatalf("index entry of ix3 = %q, want iq", tag)
	}
	if w, err := b.GetWorkflow(ctx, "ix3"); err != nil || len(w.Steps) != 3 {
		t.Fatalf("GetWorkflow(ix3) = %v, %v", w, err)
	}
	// The entry names a shard holding the workflow: a conflict, the entry
	// unchanged.
	if err := b.CreateWorkflow(ctx, chord("ix1", "iq2", 2)); !errors.Is(err, broker.ErrTaskIDConflict) {
		t.Fatalf("CreateWorkflow(ix1 in another queue) = %v", err)
	}
	if tag, _ := c.HGet(ctx, idx, "ix1").Result(); tag != "iq" {
		t.Fatalf("index entry of ix1 = %q after a refused create elsewhere", tag)
	}
	// Concurrent creates of one ID in two queues: one wins, and the index
	// names its shard.
	for round := range 5 {
		id := "ixr" + strconv.Itoa(round)
		errs := make(chan error, 2)
		for _, q := range []string{"iq", "iq2"} {
			go func() { errs <- b.CreateWorkflow(ctx, chord(id, q, 2)) }()
		}
		wins := 0
		for range 2 {
			if err := <-errs; err == nil {
				wins++
			} else if !errors.Is(err, broker.ErrTaskIDConflict) {
				t.Fatal(err)
			}
		}
		w, err := b.GetWorkflow(ctx, id)
		if wins != 1 || err != nil {
			t.Fatalf("round %d: %d wins; GetWorkflow = %v", round, wins, err)
		}
		if q := w.Steps[0].Task.Queue; !slices.Contains([]string{"iq", "iq2"}, q) {
			t.Fatalf("round %d: queue %q", round, q)
		}
	}
}

// TestWorkflowLinkForms: a step's wfsteps link carries its dependents
// when it fits in 64 bytes (its completion then reads no step record),
// else it is the short form and the completion reads the record: both
// move the same workflow the same way. A fan-out of 30 steps (a
// dependents list too long for a link) into a tolerant body, run with a
// short and a 70-byte workflow ID, one member failing.
func TestWorkflowLinkForms(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	b, c := newTestBroker(t, nil)
	const fan = 30
	build := func(id string) *broker.Workflow {
		// Kept once completed (a retention), so their links stay to look at.
		w := &broker.Workflow{ID: id, Retention: time.Hour}
		w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: id + ".root", Kind: "root", Queue: "lf", Encoding: "json"}})
		list := broker.Input{Step: -1}
		for i := 1; i <= fan; i++ {
			w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: id + "." + strconv.Itoa(i), Kind: "m", Queue: "lf", Encoding: "json"}, Input: &broker.Input{Step: 0}})
			list.List = append(list.List, broker.Input{Step: i})
		}
		w.Steps = append(w.Steps, broker.WorkflowStep{Task: broker.Task{ID: id + ".body", Kind: "body", Queue: "lf", Encoding: "json"}, Input: &list, Tolerant: true})
		w.Output = broker.Input{Step: fan + 1}
		return w
	}
	short, long := "lfs", "lfl"+strings.Repeat("x", 67)
	var bodies []string
	for _, id := range []string{short, long} {
		if err := b.CreateWorkflow(ctx, build(id)); err != nil {
			t.Fatal(err)
		}
		for ran := 0; ran < fan+2; {
			ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"lf"}, Max: 7, Lease: time.Minute})
			if err != nil || len(ts) == 0 {
				t.Fatalf("%s: Fetch after %d tasks = %v, %v", id, ran, ts, err)
			}
			var acks []broker.Ack
			for _, tk := range ts {
				ran++
				switch {
				case tk.Kind == "body":
					bodies = append(bodies, string(tk.Payload))
					acks = append(acks, broker.Ack{LeaseRef: tk.Ref(), Result: tk.Payload})
				case tk.Step == 5:
					if err := b.Fail(ctx, broker.Failure{LeaseRef: tk.Ref(), Error: broker.AttemptError{Message: "no"}, Dead: true}); err != nil {
						t.Fatal(err)
					}
				default:
					acks = append(acks, broker.Ack{LeaseRef: tk.Ref(), Result: []byte(`{"s": ` + strconv.Itoa(tk.Step) + `}`)})
				}
			}
			if err := b.Complete(ctx, acks...); err != nil {
				t.Fatal(err)
			}
		}
		w, err := b.GetWorkflow(ctx, id)
		if err != nil || w.State != broker.WorkflowCompleted {
			t.Fatalf("%s: GetWorkflow = %+v, %v", id, w, err)
		}
		if string(w.Result) != bodies[len(bodies)-1] {
			t.Fatalf("%s: result %s, body payload %s", id, w.Result, bodies[len(bodies)-1])
		}
		links, err := c.HGetAll(ctx, b.Prefix()+":{lf}:wfsteps").Result()
		if err != nil {
			t.Fatal(err)
		}
		withDeps := 0
		for tid, link := range links {
			if !strings.HasPrefix(tid, id+".") {
				continue
			}
			// The long form has its dependents after a colon before the
			// first comma: "<step>:<deps>,<handle>,<id>".
			colon, comma := strings.Index(link, ":"), strings.Index(link, ",")
			hasDeps := colon >= 0 && colon < comma
			if len(link) > 64 && hasDeps {
				t.Errorf("link %q of %s is longer than 64 bytes", link, tid)
			}
			if hasDeps {
				withDeps++
			}
		}
		want := 0
		if id == short {
			want = fan + 1 // the members and the body; not the root (30 dependents)
		}
		if withDeps != want {
			t.Errorf("%s: %d links with dependents, want %d: %v", id, withDeps, want, links)
		}
	}
	if bodies[0] != bodies[1] || !strings.Contains(bodies[0], `{"ok":true,"result":{"s":1}}`) || !strings.Contains(bodies[0], `"ok":false`) {
		t.Fatalf("bodies differ or are wrong:\n %s\n %s", bodies[0], bodies[1])
	}
}

// TestWorkflowTagCacheStale: a process remembers the shard of a workflow
// it read; after the workflow is cleaned up and its ID created again in
// another shard by another process, the first still finds it (the cached
// shard has nothing, so it asks the index again).
func TestWorkflowTagCacheStale(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	clock := brokertest.NewManualClock(time.Time{})
	b1, c := newTestBroker(t, clock)
	b2, err := redisbroker.New(redisbroker.Config{Client: c, Prefix: b1.Prefix(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b2.Close() })
	w := chord("ret", "tca", 1)
	w.Retention = time.Minute
	if err := b1.CreateWorkflow(ctx, w); err != nil {
		t.Fatal(err)
	}
	if _, err := b1.GetWorkflow(ctx, "ret"); err != nil {
		t.Fatal(err)
	}
	if err := b1.CancelWorkflow(ctx, "ret"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Minute)
	if _, err := b1.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b2.CreateWorkflow(ctx, chord("ret", "tcb", 1)); err != nil {
		t.Fatal(err)
	}
	got, err := b1.GetWorkflow(ctx, "ret")
	if err != nil || got.Steps[0].Task.Queue != "tcb" {
		t.Fatalf("GetWorkflow from the process that cached the old shard = %+v, %v; want the workflow of queue tcb", got, err)
	}
	redisbroker.SetWorkflowTag(b1, "ret", "tca") // cached again above: stale once more
	if o, err := b1.GetWorkflowOutcome(ctx, "ret"); err != nil || o.State != broker.WorkflowRunning {
		t.Fatalf("GetWorkflowOutcome = %+v, %v; want running", o, err)
	}
	redisbroker.SetWorkflowTag(b1, "ret", "tca")
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := b1.AwaitWorkflowOutcome(wctx, "ret"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AwaitWorkflowOutcome of the running workflow = %v, want the deadline", err)
	}
	redisbroker.SetWorkflowTag(b1, "ret", "tca")
	if _, err := b1.AwaitWorkflow(wctx, "ret"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("AwaitWorkflow of the running workflow = %v, want the deadline", err)
	}
}

// TestWorkflowCleanupLeavesNoFields: once a finished workflow's retention
// has passed, Cleanup leaves none of its fields in the shard's wf hash,
// including those a failure writes (ne, a step's error).
func TestWorkflowCleanupLeavesNoFields(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	clock := brokertest.NewManualClock(time.Time{})
	b, c := newTestBroker(t, clock)
	w := chord("cl", "wcl", 2)
	w.Retention = time.Minute
	if err := b.CreateWorkflow(ctx, w); err != nil {
		t.Fatal(err)
	}
	ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"wcl"}, Max: 2, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(ts) != 2 {
		t.Fatalf("fetch = %d, %v", len(ts), err)
	}
	if err := b.Complete(ctx, broker.Ack{LeaseRef: ts[0].Ref(), Result: []byte(`{"a": 1}`)}); err != nil {
		t.Fatal(err)
	}
	if err := b.Fail(ctx, broker.Failure{LeaseRef: ts[1].Ref(), Error: broker.AttemptError{Attempt: 1, Message: "no"}, Dead: true}); err != nil {
		t.Fatal(err)
	}
	if got, err := b.GetWorkflowOutcome(ctx, "cl"); err != nil || got.State != broker.WorkflowFailed {
		t.Fatalf("workflow = %+v, %v; want failed", got, err)
	}
	key := b.Prefix() + ":{wcl}:wf"
	if n, _ := c.HLen(ctx, key).Result(); n == 0 {
		t.Fatalf("%s is empty before the cleanup: the test reads the wrong key", key)
	}
	clock.Advance(2 * time.Minute)
	if _, err := b.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if left, _ := c.HGetAll(ctx, key).Result(); len(left) != 0 {
		t.Fatalf("fields left after the workflow's cleanup: %v", left)
	}
}
