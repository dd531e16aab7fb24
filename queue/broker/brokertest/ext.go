package brokertest

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Cases of the optional roles unique tasks, tick claims and limits. On a
// broker without the role, Run checks instead that its calls fail with
// broker.ErrUnsupported.
func init() {
	cases = append(cases, []testCase{
		{"UniqueDuplicateAndRelease", broker.CapUnique, testUniqueDuplicateAndRelease},
		{"UniqueReleasedOnDeadAndDelete", broker.CapUnique, testUniqueReleasedOnDeadAndDelete},
		{"UniqueTTL", broker.CapUnique, testUniqueTTL},
		{"UniqueScheduled", broker.CapUnique, testUniqueScheduled},
		{"ClaimTick", broker.CapTicks, testClaimTick},
		{"ClaimTickConcurrent", broker.CapTicks, testClaimTickConcurrent},
		{"LimiterSlots", broker.CapLimits, testLimiterSlots},
		{"LimiterSlotLease", broker.CapLimits, testLimiterSlotLease},
		{"LimiterTokenBucket", broker.CapLimits, testLimiterTokenBucket},
	}...)
}

// The role a case needs, as its interface, for readability; Run has
// already checked the broker's Capabilities.
func (s *suite) unique() broker.UniqueEnqueuer { return s.b }

func (s *suite) claimer() broker.TickClaimer { return s.b }

func (s *suite) limiter() broker.Limiter { return s.b }

func (s *suite) enqueueUnique(u broker.UniqueEnqueuer, t *broker.Task, key string, ttl time.Duration, want error) {
	s.t.Helper()
	err := u.EnqueueUnique(s.ctx, broker.UniqueParams{Task: t, Key: key, TTL: ttl})
	if want == nil && err != nil || want != nil && !errors.Is(err, want) {
		s.t.Fatalf("EnqueueUnique(%s, key %q) = %v, want %v", t.ID, key, err, want)
	}
}

func testUniqueDuplicateAndRelease(s *suite) {
	u := s.unique()
	s.enqueueUnique(u, newTask("q", "a"), "k", time.Hour, nil)
	s.wantState("q", "a", broker.StatePending)
	s.enqueueUnique(u, newTask("q", "b"), "k", time.Hour, broker.ErrDuplicateTask)
	s.wantNotFound("q", "b")
	// Keys are per queue, and an ID conflict is reported as such.
	s.enqueueUnique(u, newTask("other", "b"), "k", time.Hour, nil)
	s.enqueueUnique(u, newTask("q", "a"), "k2", time.Hour, broker.ErrTaskIDConflict)
	// Held while active; released when the task completes.
	a := s.fetchOne("q")
	s.enqueueUnique(u, newTask("q", "c"), "k", time.Hour, broker.ErrDuplicateTask)
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(a)}); err != nil {
		s.t.Fatal(err)
	}
	tc := newTask("q", "c")
	tc.Retention = time.Hour
	s.enqueueUnique(u, tc, "k", time.Hour, nil)
	// The key "k2" was not taken by the failed enqueue of "a".
	s.enqueueUnique(u, newTask("q", "d"), "k2", time.Hour, nil)
	// Completed and kept (retention): released too.
	c := s.fetchN(2, "q")["c"]
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(c)}); err != nil {
		s.t.Fatal(err)
	}
	s.wantState("q", "c", broker.StateCompleted)
	s.enqueueUnique(u, newTask("q", "e"), "k", time.Hour, nil)
}

func testUniqueReleasedOnDeadAndDelete(s *suite) {
	u := s.unique()
	t := newTask("q", "a")
	t.MaxRetries = 0
	s.enqueueUnique(u, t, "k", time.Hour, nil)
	// A retry keeps the lock; death releases it.
	a := s.fetchOne("q")
	err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(a), Error: broker.AttemptError{Message: "x"}, RetryAt: s.clock.Now().Add(time.Minute)})
	if err != nil {
		s.t.Fatal(err)
	}
	s.enqueueUnique(u, newTask("q", "b"), "k", time.Hour, broker.ErrDuplicateTask)
	s.clock.Advance(2 * time.Minute)
	if _, err := s.b.Forward(s.ctx); err != nil {
		s.t.Fatal(err)
	}
	a = s.fetchOne("q")
	if err := s.b.Fail(s.ctx, broker.Failure{LeaseRef: ref(a), Error: broker.AttemptError{Message: "x"}, Dead: true}); err != nil {
		s.t.Fatal(err)
	}
	s.wantState("q", "a", broker.StateDead)
	s.enqueueUnique(u, newTask("q", "b"), "k", time.Hour, nil)
	// Deleting releases it.
	if err := s.b.DeleteTask(s.ctx, "q", "b"); err != nil {
		s.t.Fatal(err)
	}
	s.enqueueUnique(u, newTask("q", "c"), "k", time.Hour, nil)
	// A lease that expires with retries left keeps the lock.
	s.fetchOne("q")
	s.clock.Advance(lease + time.Second)
	if _, err := s.b.Recover(s.ctx); err != nil {
		s.t.Fatal(err)
	}
	s.wantState("q", "c", broker.StatePending)
	s.enqueueUnique(u, newTask("q", "d"), "k", time.Hour, broker.ErrDuplicateTask)
}

func testUniqueTTL(s *suite) {
	u := s.unique()
	s.enqueueUnique(u, newTask("q", "a"), "k", 10*time.Second, nil)
	s.clock.Advance(9 * time.Second)
	s.enqueueUnique(u, newTask("q", "b"), "k", 10*time.Second, broker.ErrDuplicateTask)
	s.clock.Advance(2 * time.Second)
	// The lock expired though "a" has not run: a duplicate is accepted.
	s.enqueueUnique(u, newTask("q", "b"), "k", 10*time.Second, nil)
	// "a" ending does not release "b"'s lock.
	a := s.fetchOne("q")
	if a.ID != "a" {
		s.t.Fatalf("fetched %s, want a", a.ID)
	}
	if err := s.b.Complete(s.ctx, broker.Ack{LeaseRef: ref(a)}); err != nil {
		s.t.Fatal(err)
	}
	s.enqueueUnique(u, newTask("q", "c"), "k", 10*time.Second, broker.ErrDuplicateTask)
}

func testUniqueScheduled(s *suite) {
	u := s.unique()
	t := newTask("q", "a")
	t.ProcessAt = s.clock.Now().Add(time.Minute)
	s.enqueueUnique(u, t, "k", time.Hour, nil)
	s.wantState("q", "a", broker.StateScheduled)
	s.enqueueUnique(u, newTask("q", "b"), "k", time.Hour, broker.ErrDuplicateTask)
}

func testClaimTick(s *suite) {
	c := s.claimer()
	tick := s.clock.Now().Truncate(time.Second).Add(time.Second)
	claim := func(key string, tick time.Time, id string, want bool) {
		s.t.Helper()
		got, err := c.ClaimTick(s.ctx, broker.ClaimParams{Key: key, Tick: tick, TTL: time.Hour, Task: newTask("q", id)})
		if err != nil || got != want {
			s.t.Fatalf("ClaimTick(%s, %s, %s) = %v, %v; want %v", key, tick, id, got, err, want)
		}
	}
	if last, err := c.LastTick(s.ctx, "q", "e"); err != nil || !last.IsZero() {
		s.t.Fatalf("LastTick before any claim = %v, %v; want zero", last, err)
	}
	claim("e", tick, "e-1", true)
	s.wantState("q", "e-1", broker.StatePending)
	claim("e", tick, "e-1", false)                       // the same tick again
	claim("e", tick.Add(-time.Second), "e-0", false)     // an older one
	s.wantNotFound("q", "e-0")                           // ... enqueues nothing
	claim("e", tick.Add(time.Second), "e-1", false)      // a newer tick whose task exists (a retry)
	claim("e", tick.Add(2*time.Second), "e-3", true)     // the next tick
	claim("other", tick.Add(2*time.Second), "o-3", true) // keys are independent
	last, err := c.LastTick(s.ctx, "q", "e")
	if err != nil || !sameTime(last, tick.Add(2*time.Second)) {
		s.t.Fatalf("LastTick = %v, %v; want %v", last, err, tick.Add(2*time.Second))
	}
	// A task scheduled for later is stored as scheduled.
	t := newTask("q", "e-4")
	t.ProcessAt = s.clock.Now().Add(time.Hour)
	if ok, err := c.ClaimTick(s.ctx, broker.ClaimParams{Key: "e", Tick: tick.Add(3 * time.Second), TTL: time.Hour, Task: t}); !ok || err != nil {
		s.t.Fatalf("ClaimTick(scheduled) = %v, %v", ok, err)
	}
	s.wantState("q", "e-4", broker.StateScheduled)
	got := s.fetch(10, "q")
	if len(got) != 3 {
		s.t.Fatalf("fetched %v, want e-1, e-3, o-3", ids(got))
	}
}

func testClaimTickConcurrent(s *suite) {
	c := s.claimer()
	tick := s.clock.Now().Truncate(time.Second)
	for round := range 5 {
		at := tick.Add(time.Duration(round) * time.Second)
		var wins atomic.Int32
		var wg sync.WaitGroup
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ok, err := c.ClaimTick(s.ctx, broker.ClaimParams{Key: "e", Tick: at, TTL: time.Hour, Task: newTask("q", fmt.Sprintf("t%d", round))})
				if err != nil {
					s.t.Errorf("ClaimTick #%d: %v", i, err)
				}
				if ok {
					wins.Add(1)
				}
			}()
		}
		wg.Wait()
		if n := wins.Load(); n != 1 {
			s.t.Fatalf("round %d: %d claims won, want 1", round, n)
		}
	}
	if got := s.fetch(100, "q"); len(got) != 5 {
		s.t.Fatalf("fetched %d tasks, want 5", len(got))
	}
}

func testLimiterSlots(s *suite) {
	l := s.limiter()
	acquire := func(h string, want bool) {
		s.t.Helper()
		got, err := l.AcquireSlot(s.ctx, broker.SlotParams{Name: "n", Holder: h, Limit: 2, Lease: time.Minute})
		if err != nil || got != want {
			s.t.Fatalf("AcquireSlot(%s) = %v, %v; want %v", h, got, err, want)
		}
	}
	acquire("a", true)
	acquire("b", true)
	acquire("c", false)
	acquire("a", true) // a holder renews its own slot
	if ok, err := l.AcquireSlot(s.ctx, broker.SlotParams{Name: "other", Holder: "c", Limit: 2, Lease: time.Minute}); !ok || err != nil {
		s.t.Fatalf("AcquireSlot(other name) = %v, %v", ok, err)
	}
	if err := l.ReleaseSlot(s.ctx, "n", "a"); err != nil {
		s.t.Fatal(err)
	}
	if err := l.ReleaseSlot(s.ctx, "n", "never"); err != nil {
		s.t.Fatalf("ReleaseSlot(not held) = %v", err)
	}
	acquire("c", true)
	acquire("a", false)
}

func testLimiterSlotLease(s *suite) {
	l := s.limiter()
	acquire := func(h string, want bool) {
		s.t.Helper()
		got, err := l.AcquireSlot(s.ctx, broker.SlotParams{Name: "n", Holder: h, Limit: 1, Lease: 10 * time.Second})
		if err != nil || got != want {
			s.t.Fatalf("AcquireSlot(%s) = %v, %v; want %v", h, got, err, want)
		}
	}
	acquire("a", true)
	s.clock.Advance(8 * time.Second)
	if err := l.ExtendSlots(s.ctx, broker.ExtendSlotsParams{Name: "n", Holders: []string{"a", "ghost"}, Lease: 10 * time.Second}); err != nil {
		s.t.Fatal(err)
	}
	s.clock.Advance(8 * time.Second)
	acquire("b", false) // extended: still a's
	s.clock.Advance(3 * time.Second)
	acquire("b", true) // a's lease ran out (its holder died)
	// Extending an expired slot does not bring it back.
	if err := l.ExtendSlots(s.ctx, broker.ExtendSlotsParams{Name: "n", Holders: []string{"a"}, Lease: 10 * time.Second}); err != nil {
		s.t.Fatal(err)
	}
	acquire("a", false)
}

func testLimiterTokenBucket(s *suite) {
	l := s.limiter()
	take := func() time.Duration {
		s.t.Helper()
		d, err := l.TakeToken(s.ctx, broker.TokenParams{Name: "n", Rate: 2, Burst: 2})
		if err != nil {
			s.t.Fatal(err)
		}
		return d
	}
	for i := range 2 {
		if d := take(); d != 0 {
			s.t.Fatalf("a full bucket of 2 refused token %d: wait %v", i+1, d)
		}
	}
	d := take()
	if d < 450*time.Millisecond || d > 500*time.Millisecond {
		s.t.Fatalf("empty bucket at 2/s: wait %v, want ~500ms", d)
	}
	s.clock.Advance(250 * time.Millisecond)
	if d := take(); d < 200*time.Millisecond || d > 250*time.Millisecond {
		s.t.Fatalf("half-refilled token: wait %v, want ~250ms", d)
	}
	s.clock.Advance(250 * time.Millisecond)
	if d := take(); d != 0 {
		s.t.Fatalf("after 500ms at 2/s: wait %v, want a token", d)
	}
	// Refill is capped at burst.
	s.clock.Advance(time.Hour)
	got := []time.Duration{take(), take(), take()}
	if got[0] != 0 || got[1] != 0 || got[2] == 0 {
		s.t.Fatalf("after an idle hour: waits %v; the bucket should hold exactly 2 tokens", got)
	}
	if _, err := l.TakeToken(s.ctx, broker.TokenParams{Name: "other", Rate: 0, Burst: 1}); err == nil {
		s.t.Fatal("TakeToken with rate 0 succeeded")
	}
}
