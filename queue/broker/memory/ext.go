package memory

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

var (
	_ broker.UniqueEnqueuer = (*Broker)(nil)
	_ broker.TickClaimer    = (*Broker)(nil)
	_ broker.Limiter        = (*Broker)(nil)
)

// extState holds the broker-wide state of the optional capabilities.
type extState struct {
	slots   map[string]map[string]time.Time // name -> holder -> lease end
	buckets map[string]*bucket
}

type uniqueLock struct {
	id    string
	until time.Time
}

type tickClaim struct {
	tick  time.Time
	until time.Time
}

type bucket struct {
	tokens float64
	at     time.Time
}

// releaseUnique drops e's unique lock if it is still e's.
func (q *queueState) releaseUnique(e *entry) {
	if l, ok := q.uniques[e.unique]; ok && l.id == e.t.ID {
		delete(q.uniques, e.unique)
	}
	e.unique = ""
}

// EnqueueUnique implements broker.UniqueEnqueuer.
func (b *Broker) EnqueueUnique(ctx context.Context, p broker.UniqueParams) error {
	t, key, ttl := p.Task, p.Key, p.TTL
	if key == "" {
		return errors.New("enqueue unique: empty key")
	}
	if ttl <= 0 {
		return fmt.Errorf("enqueue unique: ttl %v must be positive", ttl)
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	if t == nil || t.Queue == "" {
		return b.enqueue(t, b.clock.Now()) // reports the malformed task
	}
	now := b.clock.Now()
	q := b.queue(t.Queue)
	if l, ok := q.uniques[key]; ok {
		if l.until.After(now) {
			return fmt.Errorf("task %q in queue %q: unique key %q is held by task %q: %w", t.ID, t.Queue, key, l.id, broker.ErrDuplicateTask)
		}
		if e := q.tasks[l.id]; e != nil && e.unique == key {
			e.unique = "" // expired: the task no longer holds it
		}
		delete(q.uniques, key)
	}
	if err := b.enqueue(t, now); err != nil {
		return err
	}
	if q.uniques == nil {
		q.uniques = make(map[string]uniqueLock)
	}
	q.uniques[key] = uniqueLock{id: t.ID, until: now.Add(ttl)}
	q.tasks[t.ID].unique = key
	return nil
}

// ClaimTick implements broker.TickClaimer.
func (b *Broker) ClaimTick(ctx context.Context, p broker.ClaimParams) (bool, error) {
	key, tick, ttl, t := p.Key, p.Tick, p.TTL, p.Task
	if key == "" {
		return false, errors.New("claim tick: empty key")
	}
	if err := b.lock(ctx); err != nil {
		return false, err
	}
	defer b.mu.Unlock()
	if t == nil || t.Queue == "" {
		return false, b.enqueue(t, b.clock.Now())
	}
	now := b.clock.Now()
	q := b.queue(t.Queue)
	if c, ok := q.ticks[key]; ok && c.until.After(now) && !tick.After(c.tick) {
		return false, nil
	}
	if q.ticks == nil {
		q.ticks = make(map[string]tickClaim)
	}
	if _, ok := q.tasks[t.ID]; ok {
		// Enqueued by an earlier call for this tick.
		q.ticks[key] = tickClaim{tick: tick, until: now.Add(ttl)}
		return false, nil
	}
	if err := b.enqueue(t, now); err != nil {
		return false, err
	}
	q.ticks[key] = tickClaim{tick: tick, until: now.Add(ttl)}
	return true, nil
}

// LastTick implements broker.TickClaimer.
func (b *Broker) LastTick(ctx context.Context, queue, key string) (time.Time, error) {
	if err := b.lock(ctx); err != nil {
		return time.Time{}, err
	}
	defer b.mu.Unlock()
	if q := b.queues[queue]; q != nil {
		if c, ok := q.ticks[key]; ok && c.until.After(b.clock.Now()) {
			return c.tick, nil
		}
	}
	return time.Time{}, nil
}

// AcquireSlot implements broker.Limiter.
func (b *Broker) AcquireSlot(ctx context.Context, p broker.SlotParams) (bool, error) {
	name, holder, limit, lease := p.Name, p.Holder, p.Limit, p.Lease
	if err := b.lock(ctx); err != nil {
		return false, err
	}
	defer b.mu.Unlock()
	now := b.clock.Now()
	slots := b.ext.slots[name]
	if slots == nil {
		if b.ext.slots == nil {
			b.ext.slots = make(map[string]map[string]time.Time)
		}
		slots = make(map[string]time.Time)
		b.ext.slots[name] = slots
	}
	for h, until := range slots {
		if !until.After(now) {
			delete(slots, h)
		}
	}
	if _, ok := slots[holder]; !ok && len(slots) >= limit {
		return false, nil
	}
	slots[holder] = now.Add(lease)
	return true, nil
}

// ExtendSlots implements broker.Limiter.
func (b *Broker) ExtendSlots(ctx context.Context, p broker.ExtendSlotsParams) error {
	name, holders, lease := p.Name, p.Holders, p.Lease
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	now := b.clock.Now()
	slots := b.ext.slots[name]
	for _, h := range holders {
		if until, ok := slots[h]; ok && until.After(now) {
			slots[h] = now.Add(lease)
		}
	}
	return nil
}

// ReleaseSlot implements broker.Limiter.
func (b *Broker) ReleaseSlot(ctx context.Context, name, holder string) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	delete(b.ext.slots[name], holder)
	return nil
}

// TakeToken implements broker.Limiter.
func (b *Broker) TakeToken(ctx context.Context, p broker.TokenParams) (time.Duration, error) {
	name, rate, burst := p.Name, p.Rate, p.Burst
	if rate <= 0 || burst <= 0 {
		return 0, fmt.Errorf("take token: rate %v and burst %d must be positive", rate, burst)
	}
	if err := b.lock(ctx); err != nil {
		return 0, err
	}
	defer b.mu.Unlock()
	now := b.clock.Now()
	bk := b.ext.buckets[name]
	if bk == nil {
		if b.ext.buckets == nil {
			b.ext.buckets = make(map[string]*bucket)
		}
		bk = &bucket{tokens: float64(burst), at: now}
		b.ext.buckets[name] = bk
	}
	if el := now.Sub(bk.at); el > 0 {
		bk.tokens = math.Min(float64(burst), bk.tokens+el.Seconds()*rate)
		bk.at = now
	}
	bk.tokens = math.Min(bk.tokens, float64(burst))
	if bk.tokens >= 1 {
		bk.tokens--
		return 0, nil
	}
	wait := time.Duration(math.Ceil((1 - bk.tokens) / rate * float64(time.Second)))
	return max(wait, time.Microsecond), nil
}
