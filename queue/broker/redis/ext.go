package redis

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// The optional capabilities of broker/ext.go. Unique locks and tick
// records live in per-queue hashes (locks, tasklocks, ticks), so the
// scripts that end a task can release its lock with declared keys. Limits
// are global to the prefix: each name has its own hash tag.

// newTaskArgs prepares t for a single-task script: it fills the ID and
// EnqueuedAt like Enqueue and returns (msg, meta, score); meta and score are
// "" for a task pending now.
func newTaskArgs(t *broker.Task, now time.Time) (msg []byte, meta, score string) {
	if t.ID == "" {
		t.ID = newID()
	}
	if t.EnqueuedAt.IsZero() {
		t.EnqueuedAt = now
	}
	if t.ProcessAt.After(now) {
		t.State = broker.StateScheduled
		return encodeMsg(t), newMeta(t, broker.StateScheduled), strconv.FormatInt(millis(t.ProcessAt), 10)
	}
	t.State = broker.StatePending
	return encodeMsg(t), "", ""
}

// register adds queue to the set of known queues (cached like Enqueue).
func (b *Broker) register(ctx context.Context, queue string) error {
	reg := b.toRegister([]string{queue})
	if len(reg) == 0 {
		return nil
	}
	if err := b.rdb.SAdd(ctx, queuesKey(b.cfg.Prefix), reg...).Err(); err != nil {
		b.forgetRegistered(reg)
		return err
	}
	return nil
}

// EnqueueUnique stores t and takes the lock key of t's queue for ttl, in
// one script. In a sharded queue the task goes to the shard of its key
// (over the queue's fixed unique count), where its lock lives, so one key
// is always checked in one place.
func (b *Broker) EnqueueUnique(ctx context.Context, p broker.UniqueParams) error {
	t, key, ttl := p.Task, p.Key, p.TTL
	if err := b.check(); err != nil {
		return err
	}
	if t == nil {
		return fmt.Errorf("%w: nil task", errInvalidArg)
	}
	if err := validQueue(t.Queue); err != nil {
		return err
	}
	set, err := b.ensureShards(ctx, t.Queue)
	if err != nil {
		return wrapErr("enqueue unique", err)
	}
	if err := b.register(ctx, t.Queue); err != nil {
		return wrapErr("enqueue unique", err)
	}
	now := b.cfg.Clock.Now()
	t.Shard = shardOf(key, set.uniqueCount())
	msg, meta, score := newTaskArgs(t, now)
	tag := set.tag(t.Queue, t.Shard)
	r, err := b.runOne(ctx, scriptEnqueueUnique, tag,
		t.ID, msg, meta, score, key, millis(now), millis(now.Add(ttl)))
	if err != nil {
		return wrapErr("enqueue unique", err)
	}
	switch r.code {
	case 1:
		return fmt.Errorf("%w: %s in queue %s", broker.ErrTaskIDConflict, t.ID, t.Queue)
	case 2:
		return fmt.Errorf("%w: unique key %q of queue %s is held", broker.ErrDuplicateTask, key, t.Queue)
	}
	if r.notReplicated != nil {
		return fmt.Errorf("enqueue unique %s in queue %s: %w", t.ID, t.Queue, r.notReplicated)
	}
	return nil
}

// oneResult is the integer reply of a single script call, and whether
// replicas confirmed it (Config.WaitReplicas).
type oneResult struct {
	code          int64
	notReplicated error
}

// runOne runs one storing script on the shard with tag, through
// runScriptsAcked.
func (b *Broker) runOne(ctx context.Context, s *script, tag string, args ...any) (oneResult, error) {
	c := &scriptCall{script: s, keys: b.keysFor(s, tag), args: args}
	if err := b.runScriptsAcked(ctx, []*scriptCall{c}, nil); err != nil {
		return oneResult{}, err
	}
	r, err := c.cmd.Int64()
	if err != nil {
		return oneResult{}, err
	}
	return oneResult{code: r, notReplicated: c.notReplicated}, nil
}

// ClaimTick enqueues t if tick is later than the last tick claimed for key
// in t's queue. Ticks are compared to the millisecond. Tick records and
// their tasks are always in shard 0: a tick must be claimed in one place.
func (b *Broker) ClaimTick(ctx context.Context, p broker.ClaimParams) (bool, error) {
	key, tick, ttl, t := p.Key, p.Tick, p.TTL, p.Task
	if err := b.check(); err != nil {
		return false, err
	}
	if t == nil {
		return false, fmt.Errorf("%w: nil task", errInvalidArg)
	}
	if err := validQueue(t.Queue); err != nil {
		return false, err
	}
	if err := b.register(ctx, t.Queue); err != nil {
		return false, wrapErr("claim tick", err)
	}
	now := b.cfg.Clock.Now()
	t.Shard = 0
	msg, meta, score := newTaskArgs(t, now)
	r, err := b.runOne(ctx, scriptClaimTick, t.Queue,
		key, millis(tick), millis(now), millis(now.Add(ttl)), t.ID, msg, meta, score)
	if err != nil {
		return false, wrapErr("claim tick", err)
	}
	if r.code == 1 && r.notReplicated != nil {
		return true, fmt.Errorf("claim tick %s of %s: %w", t.ID, key, r.notReplicated)
	}
	return r.code == 1, nil
}

// LastTick returns the last tick claimed for key in queue, or zero.
func (b *Broker) LastTick(ctx context.Context, queue, key string) (time.Time, error) {
	if err := b.check(); err != nil {
		return time.Time{}, err
	}
	if err := validQueue(queue); err != nil {
		return time.Time{}, err
	}
	v, err := b.rdb.HGet(ctx, b.queueKeys(queue)[kTicks], key).Result()
	if isNil(err) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, wrapErr("last tick", err)
	}
	tick, exp, ok := strings.Cut(v, ",")
	tms, err1 := strconv.ParseInt(tick, 10, 64)
	ems, err2 := strconv.ParseInt(exp, 10, 64)
	if !ok || err1 != nil || err2 != nil {
		return time.Time{}, fmt.Errorf("%w: tick record %q", errCorrupt, v)
	}
	if ems <= millis(b.cfg.Clock.Now()) {
		return time.Time{}, nil
	}
	return time.UnixMilli(tms), nil
}

func validLimitName(name string) error {
	if name == "" || strings.ContainsAny(name, "{}") {
		return fmt.Errorf("%w: limit name %q (empty, or contains '{' or '}')", errInvalidArg, name)
	}
	return nil
}

// keyTTL is how long an unused limit key lives in Redis (server time):
// longer than any lease, so only abandoned names expire.
func keyTTL(lease time.Duration) int64 { return (2*lease + time.Hour).Milliseconds() }

// AcquireSlot takes one of limit slots of name for holder until now+lease.
func (b *Broker) AcquireSlot(ctx context.Context, p broker.SlotParams) (bool, error) {
	name, holder, limit, lease := p.Name, p.Holder, p.Limit, p.Lease
	if err := b.check(); err != nil {
		return false, err
	}
	if err := validLimitName(name); err != nil {
		return false, err
	}
	now := b.cfg.Clock.Now()
	r, err := b.run(ctx, scriptSlotAcquire, []string{limitKey(b.cfg.Prefix, name, "slots")},
		holder, limit, millis(now), millis(now.Add(lease)), keyTTL(lease)).Int64()
	if err != nil {
		return false, wrapErr("acquire slot", err)
	}
	return r == 1, nil
}

// ExtendSlots renews the leases of holders' slots to now+lease.
func (b *Broker) ExtendSlots(ctx context.Context, p broker.ExtendSlotsParams) error {
	name, holders, lease := p.Name, p.Holders, p.Lease
	if err := b.check(); err != nil {
		return err
	}
	if err := validLimitName(name); err != nil {
		return err
	}
	if len(holders) == 0 {
		return nil
	}
	now := b.cfg.Clock.Now()
	args := make([]any, 0, 3+len(holders))
	args = append(args, millis(now), millis(now.Add(lease)), keyTTL(lease))
	for _, h := range holders {
		args = append(args, h)
	}
	if err := b.run(ctx, scriptSlotExtend, []string{limitKey(b.cfg.Prefix, name, "slots")}, args...).Err(); err != nil && !isNil(err) {
		return wrapErr("extend slots", err)
	}
	return nil
}

// ReleaseSlot frees holder's slot.
func (b *Broker) ReleaseSlot(ctx context.Context, name, holder string) error {
	if err := b.check(); err != nil {
		return err
	}
	if err := validLimitName(name); err != nil {
		return err
	}
	if err := b.rdb.ZRem(ctx, limitKey(b.cfg.Prefix, name, "slots"), holder).Err(); err != nil {
		return wrapErr("release slot", err)
	}
	return nil
}

// TakeToken takes a token from the bucket name (rate tokens a second, at
// most burst), or reports how long until one is available.
func (b *Broker) TakeToken(ctx context.Context, p broker.TokenParams) (time.Duration, error) {
	name, rate, burst := p.Name, p.Rate, p.Burst
	if err := b.check(); err != nil {
		return 0, err
	}
	if err := validLimitName(name); err != nil {
		return 0, err
	}
	if !(rate > 0) || burst < 1 {
		return 0, fmt.Errorf("%w: token bucket %q needs rate > 0 and burst >= 1 (got %v, %d)", errInvalidArg, name, rate, burst)
	}
	fill := time.Duration(float64(burst) / rate * float64(time.Second))
	r, err := b.run(ctx, scriptTokenTake, []string{limitKey(b.cfg.Prefix, name, "bucket")},
		strconv.FormatFloat(rate, 'g', -1, 64), burst, millis(b.cfg.Clock.Now()), keyTTL(fill)).Int64()
	if err != nil {
		return 0, wrapErr("take token", err)
	}
	return time.Duration(r) * time.Millisecond, nil
}
