package memory

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// The operational capabilities of broker/ext.go: cancelling tasks,
// throughput counters, and the records of workers and schedulers.

var (
	_ broker.Canceler         = (*Broker)(nil)
	_ broker.StatsReader      = (*Broker)(nil)
	_ broker.WorkerRegistry   = (*Broker)(nil)
	_ broker.ScheduleRegistry = (*Broker)(nil)
)

// statSlots is the length of a queue's ring of per-second counters.
const statSlots = int(broker.StatsWindow / time.Second)

type statSlot struct {
	sec               int64 // Unix second the counts belong to
	processed, failed int64
}

type opsState struct {
	stats     map[string][]statSlot // queue -> ring indexed by second
	workers   map[string]workerRec
	schedules map[string]scheduleRec
}

type workerRec struct {
	info  broker.WorkerInfo
	until time.Time
}

type scheduleRec struct {
	entries []broker.ScheduleEntry
	until   time.Time
}

// count adds to the counters of queue's current second (under b.mu).
func (o *opsState) count(queue string, now time.Time, processed, failed int64) {
	if o.stats == nil {
		o.stats = make(map[string][]statSlot)
	}
	ring := o.stats[queue]
	if ring == nil {
		ring = make([]statSlot, statSlots)
		o.stats[queue] = ring
	}
	sec := now.Unix()
	s := &ring[int(sec%int64(statSlots))]
	if s.sec != sec {
		*s = statSlot{sec: sec}
	}
	s.processed += processed
	s.failed += failed
}

// Throughput implements broker.StatsReader.
func (b *Broker) Throughput(ctx context.Context, p broker.ThroughputParams) ([]broker.Point, error) {
	queue, from, to := p.Queue, p.From, p.To
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	start, end := from.Unix(), to.Unix()
	if end <= start {
		return nil, nil
	}
	ring := b.ops.stats[queue]
	out := make([]broker.Point, 0, end-start)
	for sec := start; sec < end; sec++ {
		p := broker.Point{At: time.Unix(sec, 0)}
		if ring != nil {
			if s := ring[int(((sec%int64(statSlots))+int64(statSlots))%int64(statSlots))]; s.sec == sec {
				p.Processed, p.Failed = s.processed, s.failed
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func cancelError(attempts int, now time.Time, msg string) broker.AttemptError {
	return broker.AttemptError{Attempt: attempts, At: now, Kind: broker.ErrorKindCancelled, Message: msg}
}

// CancelTask implements broker.Canceler.
func (b *Broker) CancelTask(ctx context.Context, queue, id string) (broker.State, error) {
	if err := b.lock(ctx); err != nil {
		return "", err
	}
	defer b.mu.Unlock()
	e := b.find(queue, id)
	if e == nil {
		return "", notFound(queue, id)
	}
	now := b.clock.Now()
	st := e.t.State
	switch st {
	case broker.StatePending, broker.StateScheduled, broker.StateRetry:
		e.t.Errors = append(e.t.Errors, cancelError(e.t.Attempts, now, "cancelled while waiting to run"))
		b.setState(e, broker.StateDead, now)
	case broker.StateActive:
		e.cancel = true
	default:
		return st, fmt.Errorf("cancel task %q in queue %q: it is %s: %w", id, e.q.name, st, broker.ErrInvalidState)
	}
	return st, nil
}

// Heartbeat implements broker.WorkerRegistry.
func (b *Broker) Heartbeat(ctx context.Context, info broker.WorkerInfo, ttl time.Duration) error {
	if info.ID == "" {
		return errors.New("heartbeat: empty worker ID")
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if b.ops.workers == nil {
		b.ops.workers = make(map[string]workerRec)
	}
	info.Queues = slices.Clone(info.Queues)
	info.Running = slices.Clone(info.Running)
	info.Kinds = slices.Clone(info.Kinds)
	b.ops.workers[info.ID] = workerRec{info: info, until: b.clock.Now().Add(ttl)}
	return nil
}

// ListWorkers implements broker.WorkerRegistry.
func (b *Broker) ListWorkers(ctx context.Context) ([]broker.WorkerInfo, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	now := b.clock.Now()
	out := []broker.WorkerInfo{}
	for id, r := range b.ops.workers {
		if !r.until.After(now) {
			delete(b.ops.workers, id)
			continue
		}
		info := r.info
		info.Queues, info.Running, info.Kinds = slices.Clone(info.Queues), slices.Clone(info.Running), slices.Clone(info.Kinds)
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b broker.WorkerInfo) int { return cmp.Compare(a.ID, b.ID) })
	return out, nil
}

// RemoveWorker implements broker.WorkerRegistry.
func (b *Broker) RemoveWorker(ctx context.Context, id string) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	delete(b.ops.workers, id)
	return nil
}

// PublishEntries implements broker.ScheduleRegistry.
func (b *Broker) PublishEntries(ctx context.Context, id string, entries []broker.ScheduleEntry, ttl time.Duration) error {
	if id == "" {
		return errors.New("publish entries: empty scheduler ID")
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if b.ops.schedules == nil {
		b.ops.schedules = make(map[string]scheduleRec)
	}
	es := slices.Clone(entries)
	for i := range es {
		es[i].SchedulerID = id
	}
	b.ops.schedules[id] = scheduleRec{entries: es, until: b.clock.Now().Add(ttl)}
	return nil
}

// ListEntries implements broker.ScheduleRegistry.
func (b *Broker) ListEntries(ctx context.Context) ([]broker.ScheduleEntry, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	now := b.clock.Now()
	out := []broker.ScheduleEntry{}
	for id, r := range b.ops.schedules {
		if !r.until.After(now) {
			delete(b.ops.schedules, id)
			continue
		}
		out = append(out, r.entries...)
	}
	broker.SortEntries(out)
	return out, nil
}

// RemoveEntries implements broker.ScheduleRegistry.
func (b *Broker) RemoveEntries(ctx context.Context, id string) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	delete(b.ops.schedules, id)
	return nil
}
