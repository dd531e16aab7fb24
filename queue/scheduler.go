package queue

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/conqhq/conq/internal/startstop"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/internal/backoff"
	"github.com/conqhq/conq/queue/internal/check"
	"github.com/conqhq/conq/queue/internal/heartbeat"
	"github.com/conqhq/conq/queue/internal/ident"
)

// MissedPolicy says what a scheduler does about ticks that passed while no
// scheduler was running.
type MissedPolicy int

const (
	// MissedSkip drops them: an entry first fires at its first tick after
	// the scheduler starts. The default.
	MissedSkip MissedPolicy = iota
	// MissedRunOnce fires the entry once at start (for the latest missed
	// tick) if a tick passed since the last one any scheduler fired, as
	// recorded in the broker. However many were missed, it runs once.
	MissedRunOnce
)

func (p MissedPolicy) String() string {
	switch p {
	case MissedSkip:
		return "skip"
	case MissedRunOnce:
		return "run_once"
	}
	return fmt.Sprintf("MissedPolicy(%d)", int(p))
}

// ParseMissedPolicy accepts "skip" and "run_once" (or "run-once").
func ParseMissedPolicy(s string) (MissedPolicy, error) {
	switch s {
	case "", "skip":
		return MissedSkip, nil
	case "run_once", "run-once", "runonce":
		return MissedRunOnce, nil
	}
	return 0, invalid("missed-tick policy %q: want skip or run_once", s)
}

// SchedulerConfig configures a Scheduler. The zero value is ready to use.
type SchedulerConfig struct {
	// Location is the time zone of cron specs without a CRON_TZ= prefix.
	// Default UTC, so that schedulers on machines with different local
	// zones agree.
	Location *time.Location
	// Missed is the policy for ticks missed while no scheduler ran.
	Missed MissedPolicy
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// ID names the scheduler in the entries it publishes. Default
	// host:pid:random.
	ID string
	// PublishInterval is how often a running scheduler publishes its
	// entries with their next ticks to a broker that keeps them
	// (broker.ScheduleRegistry), for the dashboard. They expire after
	// three intervals and are removed on Shutdown. Default 5s; negative
	// for none.
	PublishInterval time.Duration
}

// Entry is a periodic task.
type Entry struct {
	// Name identifies the entry among all schedulers sharing the broker:
	// schedulers that register the same name share its ticks. Letters,
	// digits and "_-.:" (up to 128). Default: the task kind and a digest
	// of spec, queue, kind and payload.
	Name string
	// Spec says when it fires (see Scheduler.Register).
	Spec string
	// Task is enqueued at every tick, with Options.
	Task    *Task
	Options []Option
}

// Scheduler enqueues periodic tasks. Any number of schedulers may run with
// the same entries against one broker: the broker's atomic claim of each
// (entry, tick) makes every tick enqueue exactly once. The broker must
// claim ticks (the built-in ones do).
//
// Ticks that fall due while the scheduler runs are fired when due; if the
// scheduler falls behind by several ticks of an entry (process paused,
// broker unreachable, clock jump) it fires the latest one only.
type Scheduler struct {
	b      Broker
	clock  broker.Clock
	cfg    SchedulerConfig
	client *Client
	log    *slog.Logger

	life startstop.Once
	loop startstop.Base

	mu      sync.Mutex
	entries []*schedEntry
	byName  map[string]*schedEntry
	hb      *heartbeat.Heartbeat
}

type schedEntry struct {
	Entry
	sched schedule
	kind  string
	queue string
	ttl   time.Duration // of tick claims

	init  bool
	next  time.Time
	prev  time.Time
	fired int64
	err   string
}

// NewScheduler returns a scheduler of b.
func NewScheduler(b Broker, cfg SchedulerConfig) (*Scheduler, error) {
	if b == nil {
		return nil, invalid("NewScheduler: nil broker")
	}
	if !b.Capabilities().Has(broker.CapTicks) {
		return nil, fmt.Errorf("queue: NewScheduler: periodic tasks need a broker that claims ticks; %T does not: %w", b, ErrUnsupported)
	}
	if cfg.Missed != MissedSkip && cfg.Missed != MissedRunOnce {
		return nil, invalid("SchedulerConfig.Missed = %v", cfg.Missed)
	}
	cfg.Location = cmp.Or(cfg.Location, time.UTC)
	cfg.Logger = cmp.Or(cfg.Logger, slog.Default())
	cfg.ID = cmp.Or(cfg.ID, ident.New())
	cfg.PublishInterval = cmp.Or(cfg.PublishInterval, 5*time.Second)
	c, err := NewClient(b, ClientConfig{Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	return &Scheduler{b: b, clock: b.Clock(), cfg: cfg, client: c, log: cfg.Logger, byName: make(map[string]*schedEntry)}, nil
}

// Register adds an entry enqueueing task with opts at every tick of spec
// and returns its name. spec is
//
//   - a cron expression of 5 fields (minute hour day-of-month month
//     day-of-week) or 6 with seconds first ("*/5 * * * * *": every 5s),
//     optionally prefixed with "CRON_TZ=Europe/Paris " (or "TZ=...") to
//     set its time zone, otherwise SchedulerConfig.Location;
//   - @yearly, @monthly, @weekly, @daily or @hourly;
//   - "@every 30s": fixed intervals (at least 1s) aligned to the Unix
//     epoch, so every scheduler process agrees on the ticks.
//
// A bad spec or option is an error naming the entry. Entries may be added
// while the scheduler runs.
func (s *Scheduler) Register(spec string, task *Task, opts ...Option) (string, error) {
	return s.RegisterEntry(Entry{Spec: spec, Task: task, Options: opts})
}

// RegisterEntry adds e and returns its name (see Entry.Name).
func (s *Scheduler) RegisterEntry(e Entry) (string, error) {
	label := e.Name
	if label == "" {
		label = "(unnamed)"
		if e.Task != nil {
			label = fmt.Sprintf("of kind %q", e.Task.Kind)
		}
	}
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("queue: periodic entry %s: %w", label, err)
	}
	if e.Name != "" {
		if err := validQueueName(e.Name); err != nil {
			return fail(fmt.Errorf("bad name: %w", err))
		}
	}
	sched, err := parseSchedule(e.Spec, s.cfg.Location)
	if err != nil {
		return fail(fmt.Errorf("%w: %w", err, ErrInvalidOption))
	}
	now := s.clock.Now()
	t, u, err := s.client.buildUnique(e.Task, e.Options, now)
	if err != nil {
		return fail(err)
	}
	if u.key != "" {
		return fail(invalid("Unique is not supported on periodic tasks (each tick enqueues exactly once already)"))
	}
	if u.idSet {
		return fail(invalid("TaskID is not supported on periodic tasks (each tick's ID is derived from the entry and the tick)"))
	}
	if e.Name == "" {
		e.Name = t.Kind + "." + digest(e.Spec, t.Queue, t.Kind, string(t.Payload))[:12]
		if len(e.Name) > check.MaxQueueName || validQueueName(e.Name) != nil {
			e.Name = "entry." + digest(e.Spec, t.Queue, t.Kind, string(t.Payload))[:16]
		}
	}
	if sched.next(now).IsZero() {
		return fail(invalid("spec %q never fires", e.Spec))
	}
	// Claims outlive any gap a scheduler could still act on, and are kept
	// a day at least so MissedRunOnce knows the last tick.
	ttl := max(24*time.Hour, 3*period(sched, now))
	se := &schedEntry{Entry: e, sched: sched, kind: t.Kind, queue: t.Queue, ttl: ttl}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.byName[e.Name]; dup {
		return fail(invalid("an entry named %q is already registered", e.Name))
	}
	s.entries = append(s.entries, se)
	s.byName[e.Name] = se
	return e.Name, nil
}

func digest(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// tickID is the task ID of an entry's tick: the same in every scheduler, so
// an enqueue retried after a crash or a timeout is idempotent.
func tickID(name string, tick time.Time) string {
	return "periodic:" + name + ":" + strconv.FormatInt(tick.UnixMilli(), 10)
}

// Entries lists the registered entries by name, with their next ticks, as
// Inspector.Schedules shows them; Fired counts the ticks this scheduler
// enqueued, Prev the last tick handled by any, Error the last enqueue
// error until one succeeds.
func (s *Scheduler) Entries() []ScheduleInfo {
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ScheduleInfo, 0, len(s.entries))
	for _, e := range s.entries {
		next := e.next
		if !e.init {
			next = e.sched.next(now)
		}
		out = append(out, ScheduleInfo{Name: e.Name, Spec: e.Spec, Kind: e.kind, Queue: e.queue, Next: next, Prev: e.prev, Fired: e.fired, Error: e.err,
			Schedulers: []string{s.cfg.ID}})
	}
	slices.SortFunc(out, func(a, b ScheduleInfo) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// start computes an entry's first tick according to the missed-tick
// policy, and the last tick recorded if the policy reads it. It does not
// touch e's mutable fields: it runs without s.mu, since it may call the
// broker.
func (s *Scheduler) start(ctx context.Context, e *schedEntry, now time.Time) (next, prev time.Time) {
	next = e.sched.next(now)
	if s.cfg.Missed != MissedRunOnce {
		return next, time.Time{}
	}
	last, err := s.b.LastTick(ctx, e.queue, e.Name)
	if err != nil {
		s.log.Warn("queue: scheduler: reading the last tick failed; missed ticks are skipped", "entry", e.Name, "err", err)
		return next, time.Time{}
	}
	if last.IsZero() {
		return next, time.Time{} // no history: nothing was missed
	}
	if n := e.sched.next(last); !n.IsZero() && !n.After(now) {
		next = n // due now: RunDue fires the latest missed tick, once
	}
	return next, last
}

// RunDue fires every entry whose tick has come, by the scheduler's clock,
// and returns how many ticks this call enqueued (ticks claimed by other
// schedulers are not counted). Start calls it in a loop; call it directly
// to drive a scheduler by hand (e.g. with a manual clock in tests).
func (s *Scheduler) RunDue(ctx context.Context) (int, error) {
	now := s.clock.Now()
	s.mu.Lock()
	entries := slices.Clone(s.entries)
	s.mu.Unlock()
	n := 0
	var errs []error
	for _, e := range entries {
		s.mu.Lock()
		if !e.init {
			s.mu.Unlock()
			next, prev := s.start(ctx, e, now) // not under mu: it may call the broker
			s.mu.Lock()
			if !e.init {
				e.init, e.next, e.prev = true, next, prev
			}
		}
		next := e.next
		s.mu.Unlock()
		if next.IsZero() || next.After(now) {
			continue
		}
		tick := e.sched.latest(now)
		if tick.Before(next) {
			tick = next
		}
		claimed, err := s.fire(ctx, e, tick, now)
		s.mu.Lock()
		if err != nil {
			e.err = err.Error()
			errs = append(errs, err)
		} else {
			e.err = ""
			e.prev = tick
			e.next = e.sched.next(tick)
			if claimed {
				e.fired++
				n++
			}
		}
		s.mu.Unlock()
	}
	return n, errors.Join(errs...)
}

func (s *Scheduler) fire(ctx context.Context, e *schedEntry, tick, now time.Time) (bool, error) {
	t, _, err := s.client.buildUnique(e.Task, e.Options, now)
	if err != nil {
		return false, fmt.Errorf("queue: periodic entry %s: %w", e.Name, err)
	}
	t.ID = tickID(e.Name, tick)
	claimed, err := s.b.ClaimTick(ctx, broker.ClaimParams{Key: e.Name, Tick: tick, TTL: e.ttl, Task: t})
	if err != nil {
		err = broker.Only(err)
		return false, fmt.Errorf("queue: periodic entry %s: enqueue tick %s: %w", e.Name, tick.Format(time.RFC3339), err)
	}
	if claimed {
		s.log.Info("queue: periodic task enqueued", "entry", e.Name, "tick", tick, "task_id", t.ID, "kind", t.Kind, "queue", t.Queue)
	} else {
		s.log.Debug("queue: periodic tick already enqueued by another scheduler", "entry", e.Name, "tick", tick)
	}
	return claimed, nil
}

// maxSchedulerSleep bounds one wait of the scheduler loop, so that entries
// registered while it runs and wall-clock jumps are noticed.
const maxSchedulerSleep = time.Second

// Start runs the scheduler in the background; ctx's values reach its
// broker calls, its cancellation does not (Shutdown stops it; Run ties the
// two together).
func (s *Scheduler) Start(ctx context.Context) error {
	if err := s.life.Start(); err != nil {
		return fmt.Errorf("queue: Scheduler.Start: already started: %w", ErrWorkerState)
	}
	if s.cfg.PublishInterval > 0 && s.b.Capabilities().Has(broker.CapSchedules) {
		ttl := 3 * s.cfg.PublishInterval
		s.mu.Lock()
		s.hb = heartbeat.New("schedule publisher", s.cfg.PublishInterval,
			func(ctx context.Context) error { return s.b.PublishEntries(ctx, s.cfg.ID, s.published(), ttl) },
			func(ctx context.Context) error { return s.b.RemoveEntries(ctx, s.cfg.ID) },
			s.log)
		s.mu.Unlock()
	}
	if err := s.loop.Start(ctx, s.run); err != nil {
		return err
	}
	if s.hb != nil {
		if err := s.hb.Start(ctx); err != nil {
			return err
		}
	}
	s.mu.Lock()
	n := len(s.entries)
	s.mu.Unlock()
	s.log.Info("queue: scheduler started", "entries", n, "missed", s.cfg.Missed.String())
	return nil
}

func (s *Scheduler) run(ctx context.Context) {
	var bo backoff.Backoff
	for {
		_, err := s.RunDue(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := maxSchedulerSleep
		if err != nil {
			wait = min(wait, bo.Next())
			s.log.Error("queue: scheduler: enqueueing periodic tasks failed; retrying", "err", err, "retry_in", wait)
		} else {
			bo.Reset()
			now := s.clock.Now()
			s.mu.Lock()
			for _, e := range s.entries {
				if e.init && !e.next.IsZero() {
					wait = min(wait, e.next.Sub(now))
				}
			}
			s.mu.Unlock()
		}
		t := time.NewTimer(max(wait, time.Millisecond))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Shutdown stops the scheduler and waits for its loop (or ctx).
func (s *Scheduler) Shutdown(ctx context.Context) error {
	if err := s.life.Stop(); err != nil {
		return fmt.Errorf("queue: Scheduler.Shutdown: not running: %w", ErrWorkerState)
	}
	if err := s.loop.Stop(ctx); err != nil {
		return err
	}
	if s.hb != nil {
		if err := s.hb.Stop(ctx); err != nil {
			return fmt.Errorf("queue: scheduler: removing its published entries: %w", err)
		}
	}
	s.log.Info("queue: scheduler stopped")
	return nil
}

// ID returns the scheduler's ID, as its published entries name it.
func (s *Scheduler) ID() string { return s.cfg.ID }

// published is Entries in the broker's form.
func (s *Scheduler) published() []broker.ScheduleEntry {
	now := s.clock.Now()
	es := s.Entries()
	out := make([]broker.ScheduleEntry, len(es))
	for i, e := range es {
		out[i] = broker.ScheduleEntry{Name: e.Name, Spec: e.Spec, Kind: e.Kind, Queue: e.Queue, Next: e.Next, Prev: e.Prev,
			Fired: e.Fired, Error: e.Error, SchedulerID: s.cfg.ID, UpdatedAt: now}
	}
	return out
}

// Run starts the scheduler, blocks until ctx ends, then shuts it down.
func (s *Scheduler) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return s.Shutdown(sctx)
}
