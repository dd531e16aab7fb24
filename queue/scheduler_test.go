package queue_test

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	"github.com/conqhq/conq/queue/broker/memory"
)

func (e *env) scheduler(cfg queue.SchedulerConfig) *queue.Scheduler {
	e.t.Helper()
	cfg.Logger = e.logger()
	s, err := queue.NewScheduler(e.b, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

func (e *env) runDue(s *queue.Scheduler) int {
	e.t.Helper()
	n, err := s.RunDue(e.ctx)
	if err != nil {
		e.t.Fatalf("RunDue: %v", err)
	}
	return n
}

// pendingIDs lists the IDs of pending tasks of queue.
func (e *env) pendingIDs(q string) []string {
	e.t.Helper()
	ts, err := e.mem.ListTasks(e.ctx, broker.ListParams{Queue: q, State: queue.StatePending, Offset: 0, Limit: 0})
	if err != nil {
		e.t.Fatal(err)
	}
	var out []string
	for _, t := range ts {
		out = append(out, t.ID)
	}
	return out
}

func TestSchedulerFiresEachTickOnceAcrossSchedulers(t *testing.T) {
	e := newEnv(t)
	e.clock.Set(time.Date(2030, 1, 1, 0, 0, 0, 500e6, time.UTC))
	var ss []*queue.Scheduler
	for range 3 {
		s := e.scheduler(queue.SchedulerConfig{})
		name, err := s.Register("* * * * * *", queue.NewTask("tick", []byte("p")), queue.Queue("cron"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(name, "tick.") {
			t.Fatalf("derived name %q", name)
		}
		ss = append(ss, s)
	}
	total := 0
	for range 5 {
		for _, s := range ss {
			total += e.runDue(s) // nothing due at first: 00:00:00 passed
		}
		e.clock.Advance(time.Second)
	}
	if total != 4 {
		t.Fatalf("%d ticks enqueued over 4 due ticks by 3 schedulers", total)
	}
	ids := e.pendingIDs("cron")
	if len(ids) != 4 {
		t.Fatalf("pending %v, want 4 tasks", ids)
	}
	fired := int64(0)
	for _, s := range ss {
		ents := s.Entries()
		if len(ents) != 1 || ents[0].Kind != "tick" || ents[0].Queue != "cron" {
			t.Fatalf("Entries() = %+v", ents)
		}
		if want := time.Date(2030, 1, 1, 0, 0, 5, 0, time.UTC); !ents[0].Next.Equal(want) {
			t.Fatalf("Next = %v, want %v", ents[0].Next, want)
		}
		fired += ents[0].Fired
	}
	if fired != 4 {
		t.Fatalf("Fired adds up to %d, want 4", fired)
	}
}

func TestSchedulerMissedTicks(t *testing.T) {
	for _, tc := range []struct {
		policy queue.MissedPolicy
		want   int
	}{{queue.MissedSkip, 0}, {queue.MissedRunOnce, 1}} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			e := newEnv(t)
			e.clock.Set(time.Date(2030, 1, 1, 0, 0, 30, 0, time.UTC))
			register := func(s *queue.Scheduler) {
				if _, err := s.RegisterEntry(queue.Entry{Name: "every-minute", Spec: "@every 1m", Task: queue.NewTask("m", nil)}); err != nil {
					t.Fatal(err)
				}
			}
			s1 := e.scheduler(queue.SchedulerConfig{Missed: tc.policy})
			register(s1)
			e.runDue(s1)
			e.clock.Advance(time.Minute) // 00:01:30
			if n := e.runDue(s1); n != 1 {
				t.Fatalf("first scheduler fired %d ticks, want 1", n)
			}
			// No scheduler runs for 5 minutes: ticks 00:02 ... 00:06 pass.
			e.clock.Advance(5 * time.Minute) // 00:06:30
			s2 := e.scheduler(queue.SchedulerConfig{Missed: tc.policy})
			register(s2)
			if n := e.runDue(s2); n != tc.want {
				t.Fatalf("restarted scheduler fired %d ticks at start, want %d", n, tc.want)
			}
			if tc.want == 1 {
				ids := e.pendingIDs("default")
				last := ids[len(ids)-1]
				if want := time.Date(2030, 1, 1, 0, 6, 0, 0, time.UTC).UnixMilli(); !strings.HasSuffix(last, ":"+strconv.FormatInt(want, 10)) {
					t.Fatalf("catch-up task %s, want the latest missed tick 00:06", last)
				}
			}
			// Then it keeps time as usual.
			e.clock.Advance(30 * time.Second) // 00:07:00
			if n := e.runDue(s2); n != 1 {
				t.Fatalf("fired %d at the next tick, want 1", n)
			}
			if n := e.runDue(s2); n != 0 {
				t.Fatalf("fired %d again at the same time", n)
			}
		})
	}
}

func TestSchedulerCoalescesWhenBehind(t *testing.T) {
	e := newEnv(t)
	e.clock.Set(time.Date(2030, 1, 1, 0, 0, 0, 100e6, time.UTC))
	s := e.scheduler(queue.SchedulerConfig{})
	if _, err := s.Register("@every 1s", queue.NewTask("k", nil)); err != nil {
		t.Fatal(err)
	}
	e.runDue(s)
	e.clock.Advance(10 * time.Second) // the loop was paused for 10 ticks
	if n := e.runDue(s); n != 1 {
		t.Fatalf("fired %d ticks after a pause, want 1 (coalesced)", n)
	}
}

func TestSchedulerTimeZones(t *testing.T) {
	e := newEnv(t)
	e.clock.Set(time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC))
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no tz database: %v", err)
	}
	s := e.scheduler(queue.SchedulerConfig{Location: ny})
	mustRegister := func(name, spec string) {
		t.Helper()
		if _, err := s.RegisterEntry(queue.Entry{Name: name, Spec: spec, Task: queue.NewTask("k", nil)}); err != nil {
			t.Fatal(err)
		}
	}
	mustRegister("utc", "0 9 * * *")
	mustRegister("tokyo", "CRON_TZ=Asia/Tokyo 0 9 * * *")
	mustRegister("berlin", "TZ=Europe/Berlin 30 0 9 * * *")
	mustRegister("daily", "@daily")
	next := map[string]time.Time{}
	for _, ent := range s.Entries() {
		next[ent.Name] = ent.Next.UTC()
	}
	want := map[string]time.Time{
		"utc":    time.Date(2030, 6, 1, 13, 0, 0, 0, time.UTC), // 09:00 EDT
		"tokyo":  time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC).Add(24 * time.Hour),
		"berlin": time.Date(2030, 6, 1, 7, 0, 30, 0, time.UTC), // 09:00:30 CEST
		"daily":  time.Date(2030, 6, 1, 4, 0, 0, 0, time.UTC),  // midnight EDT
	}
	for name, w := range want {
		if !next[name].Equal(w) {
			t.Errorf("%s: next %v, want %v", name, next[name], w)
		}
	}
}

func TestSchedulerBadSpec(t *testing.T) {
	e := newEnv(t)
	s := e.scheduler(queue.SchedulerConfig{})
	for _, spec := range []string{"", "* * *", "61 * * * *", "@every 10ms", "@every soon", "CRON_TZ=Mars/Olympus * * * * *", "@fortnightly",
		// A field of commas alone matches nothing (refused as never firing,
		// after seconds of searching, before its field was checked).
		", * * * * *", ",, * * * *", "* , * * *", "* * , * *", "* * * , *", "* * * * ,"} {
		_, err := s.RegisterEntry(queue.Entry{Name: "report", Spec: spec, Task: queue.NewTask("k", nil)})
		if err == nil {
			t.Errorf("spec %q accepted", spec)
			continue
		}
		if !strings.Contains(err.Error(), `report`) {
			t.Errorf("spec %q: error %q does not name the entry", spec, err)
		}
		if strings.Contains(spec, ",") && !strings.Contains(err.Error(), "field matches no value") {
			t.Errorf("spec %q: error %q does not name the empty field", spec, err)
		}
	}
	if _, err := s.Register("* * * * *", queue.NewTask("k", nil), queue.TaskID("x")); !errors.Is(err, queue.ErrInvalidOption) {
		t.Errorf("TaskID on a periodic entry: %v", err)
	}
	if _, err := s.Register("* * * * *", queue.NewTask("k", nil), queue.Unique(time.Hour)); !errors.Is(err, queue.ErrInvalidOption) {
		t.Errorf("Unique on a periodic entry: %v", err)
	}
	if _, err := s.RegisterEntry(queue.Entry{Name: "dup", Spec: "* * * * *", Task: queue.NewTask("k", nil)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RegisterEntry(queue.Entry{Name: "dup", Spec: "* * * * *", Task: queue.NewTask("k", nil)}); err == nil {
		t.Error("duplicate entry name accepted")
	}
}

func TestSchedulerNeedsTickClaimer(t *testing.T) {
	var b broker.Broker = brokertest.WithoutOptional(memory.New(memory.Config{}))
	if _, err := queue.NewScheduler(b, queue.SchedulerConfig{}); !errors.Is(err, queue.ErrUnsupported) {
		t.Fatalf("NewScheduler on a broker without TickClaimer: %v", err)
	}
}

func TestSchedulerRunLoop(t *testing.T) {
	mem := memory.New(memory.Config{})
	defer mem.Close()
	s, err := queue.NewScheduler(mem, queue.SchedulerConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Register("@every 1s", queue.NewTask("k", nil)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
	qs, _ := mem.Queues(context.Background())
	if len(qs) != 1 || qs[0].Counts[queue.StatePending] < 2 || qs[0].Counts[queue.StatePending] > 3 {
		t.Fatalf("after 2.5s of @every 1s: %+v", qs)
	}
}
