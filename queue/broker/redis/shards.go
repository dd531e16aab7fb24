package redis

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
)

// Sharded queues. A queue's tasks live in one or more shards, each a key
// base with its own hash tag (shardTag), hence its own Redis Cluster slot:
// shard 0 is the queue's own tag, so an unsharded queue is a queue with one
// shard and today's keys. Every script runs on one shard. Which shards a
// queue has is recorded in one global hash (shardsKey), field queue, value
// "<n>:<salt1>,...,<salt n-1>:<u>": the shard count, the salt of each shard
// after the first, and u, the number of shards unique keys are spread over,
// fixed when the record is first written so that a key always maps to the
// same shard (its lock lives there). Every process reads the record
// (cached for registerEvery), so placement is decided once, by whoever
// writes it.

// MaxShards caps a queue's shard count (broker.MaxShards).
const MaxShards = broker.MaxShards

// shardSet is a queue's shards as recorded; nil means unsharded (one
// shard, tag = queue name).
type shardSet struct {
	n      int
	salts  []int    // by shard index; salts[0] is unused (0)
	tags   []string // by shard index
	unique int      // shards unique keys are spread over: 1..n
}

func (s *shardSet) count() int {
	if s == nil {
		return 1
	}
	return s.n
}

// tag is the hash tag of shard i (0 <= i < count()).
func (s *shardSet) tag(queue string, i int) string {
	if i == 0 || s == nil {
		return queue
	}
	return s.tags[i]
}

func (s *shardSet) uniqueCount() int {
	if s == nil {
		return 1
	}
	return s.unique
}

func newShardSet(queue string, salts []int, unique int) *shardSet {
	s := &shardSet{n: len(salts), salts: salts, unique: unique, tags: make([]string, len(salts))}
	for i, salt := range salts {
		s.tags[i] = shardTag(queue, i, salt)
	}
	return s
}

func (s *shardSet) record() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(s.n))
	b.WriteByte(':')
	for i := 1; i < s.n; i++ {
		if i > 1 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(s.salts[i]))
	}
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(s.unique))
	return b.String()
}

func parseShardRecord(queue, v string) (*shardSet, error) {
	bad := func() (*shardSet, error) {
		return nil, fmt.Errorf("%w: shard record %q of queue %s", errCorrupt, v, queue)
	}
	parts := strings.Split(v, ":")
	if len(parts) != 3 {
		return bad()
	}
	n, err := strconv.Atoi(parts[0])
	if err != nil || n < 1 || n > MaxShards {
		return bad()
	}
	u, err := strconv.Atoi(parts[2])
	if err != nil || u < 1 || u > n {
		return bad()
	}
	salts := make([]int, n)
	if n > 1 {
		fs := strings.Split(parts[1], ",")
		if len(fs) != n-1 {
			return bad()
		}
		for i, f := range fs {
			if salts[i+1], err = strconv.Atoi(f); err != nil || salts[i+1] < 0 {
				return bad()
			}
		}
	} else if parts[1] != "" {
		return bad()
	}
	return newShardSet(queue, salts, u), nil
}

// shardOf is the shard of a task ID (or unique key) in a queue of n
// shards: FNV-1a, the same in every process and release.
func shardOf(id string, n int) int {
	if n <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return int(h.Sum64() % uint64(n))
}

// shardCache is the record hash as last read, refreshed every
// registerEvery so that a count set elsewhere is seen within that time.
type shardCache struct {
	m        atomic.Pointer[map[string]*shardSet]
	loadedAt atomic.Int64 // time.Now().UnixNano() of the last read
	mu       sync.Mutex   // one reader of the hash at a time
}

// shardsOf returns queue's shards (nil: unsharded). It reads the record
// hash when the cached copy is older than registerEvery; if that read
// fails the stale copy is used, and only the first read's error is
// returned.
func (b *Broker) shardsOf(ctx context.Context, queue string) (*shardSet, error) {
	m, err := b.shardMap(ctx)
	if err != nil {
		return nil, err
	}
	return m[queue], nil
}

func (b *Broker) shardMap(ctx context.Context) (map[string]*shardSet, error) {
	c := &b.shards
	m := c.m.Load()
	if m != nil && time.Since(time.Unix(0, c.loadedAt.Load())) < registerEvery {
		return *m, nil
	}
	if m != nil {
		// Someone is refreshing: the copy in hand is good enough.
		if !c.mu.TryLock() {
			return *m, nil
		}
	} else {
		c.mu.Lock()
	}
	defer c.mu.Unlock()
	if cur := c.m.Load(); cur != nil && time.Since(time.Unix(0, c.loadedAt.Load())) < registerEvery {
		return *cur, nil
	}
	all, err := b.rdb.HGetAll(ctx, shardsKey(b.cfg.Prefix)).Result()
	if err != nil {
		if m != nil {
			// Try again in a second, not on every call.
			c.loadedAt.Store(time.Now().Add(time.Second - registerEvery).UnixNano())
			return *m, nil
		}
		return nil, wrapErr("read shard records", err)
	}
	out := make(map[string]*shardSet, len(all))
	for q, v := range all {
		s, err := parseShardRecord(q, v)
		if err != nil {
			b.cfg.Logger.ErrorContext(ctx, "redis broker: ignoring a shard record; the queue is read as unsharded", "queue", q, "err", err)
			continue
		}
		if s.n > 1 {
			out[q] = s
		}
	}
	c.m.Store(&out)
	c.loadedAt.Store(time.Now().UnixNano())
	return out, nil
}

// cacheShards records s as queue's shards in the cache, copy on write.
func (b *Broker) cacheShards(queue string, s *shardSet) {
	c := &b.shards
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.m.Load()
	m := make(map[string]*shardSet)
	if old != nil {
		for k, v := range *old {
			m[k] = v
		}
	}
	if s == nil || s.n <= 1 {
		delete(m, queue)
	} else {
		m[queue] = s
	}
	c.m.Store(&m)
	if old == nil {
		// A map built from one record is not the hash: read it next time.
		c.loadedAt.Store(0)
	}
}

// placeShards returns shards of queue where each shard i (a queue with
// shard 0 already placed) gets a tag whose slot is served by the master
// i steps after shard 0's, counting masters by their first slot: on a
// cluster of M masters, the first M shards are on M different masters.
// Outside a cluster every salt is 0.
func (b *Broker) placeShards(ctx context.Context, queue string, old *shardSet, n int) (*shardSet, error) {
	salts := make([]int, n)
	if old != nil {
		copy(salts, old.salts)
	}
	from := old.count()
	if b.cluster == nil {
		return newShardSet(queue, salts, 1), nil
	}
	type master struct {
		id    string
		first int
	}
	var masters []master
	owner := make([]string, 16384) // slot -> master ID
	addMaster := func(id string, lo, hi int) {
		for s := max(lo, 0); s <= hi && s < len(owner); s++ {
			owner[s] = id
		}
		if i := slices.IndexFunc(masters, func(m master) bool { return m.id == id }); i >= 0 {
			masters[i].first = min(masters[i].first, lo)
		} else {
			masters = append(masters, master{id, lo})
		}
	}
	shards, err := b.cluster.ClusterShards(ctx).Result()
	if err == nil {
		for _, sh := range shards {
			for _, n := range sh.Nodes {
				if n.Role != "master" || n.Health == "fail" {
					continue
				}
				for _, r := range sh.Slots {
					addMaster(n.ID, int(r.Start), int(r.End))
				}
			}
		}
	} else {
		// Redis before 7.0 has no CLUSTER SHARDS.
		//lint:ignore SA1019 the fallback for Redis 6.2
		ranges, err := b.cluster.ClusterSlots(ctx).Result()
		if err != nil {
			return nil, wrapErr("set shards: CLUSTER SLOTS", err)
		}
		for _, r := range ranges {
			if len(r.Nodes) > 0 {
				addMaster(r.Nodes[0].ID, r.Start, r.End)
			}
		}
	}
	if len(masters) == 0 {
		return nil, fmt.Errorf("redis broker: set shards: the cluster names no master")
	}
	slices.SortFunc(masters, func(a, b master) int { return a.first - b.first })
	m0 := slices.IndexFunc(masters, func(m master) bool { return m.id == owner[tagSlot(queue)] })
	if m0 < 0 {
		m0 = 0 // shard 0's slot has no owner right now: count from the first
	}
	for i := from; i < n; i++ {
		want := masters[(m0+i)%len(masters)].id
		found := false
		// About M tries each: every tag lands on a random slot.
		for salt := 0; salt < 1_000_000; salt++ {
			if owner[tagSlot(shardTag(queue, i, salt))] == want {
				salts[i], found = salt, true
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("redis broker: set shards: no tag of shard %d of queue %s lands on master %s", i, queue, want)
		}
	}
	return newShardSet(queue, salts, 1), nil
}

var errShrink = errors.New("the shard count of a queue only grows")

// SetShards implements broker.Sharder. The record is written with a
// compare-and-set script, so two processes growing a queue at once agree
// on one placement. New shards of a paused queue are paused before the
// record names them.
func (b *Broker) SetShards(ctx context.Context, p broker.ShardParams) error {
	if err := b.check(); err != nil {
		return err
	}
	if err := validQueue(p.Queue); err != nil {
		return err
	}
	if p.Shards < 1 || p.Shards > MaxShards {
		return fmt.Errorf("%w: %d shards for queue %s (want 1..%d)", errInvalidArg, p.Shards, p.Queue, MaxShards)
	}
	_, err := b.setShards(ctx, p.Queue, p.Shards, false)
	return err
}

// setShards grows queue to n shards, or with onlyIfNone writes n shards
// only if the queue has no record yet. It returns the queue's shards as
// recorded afterwards.
func (b *Broker) setShards(ctx context.Context, queue string, n int, onlyIfNone bool) (*shardSet, error) {
	key := shardsKey(b.cfg.Prefix)
	for range 10 {
		cur, err := b.rdb.HGet(ctx, key, queue).Result()
		if err != nil && !isNil(err) {
			return nil, wrapErr("set shards", err)
		}
		var old *shardSet
		if cur != "" {
			if old, err = parseShardRecord(queue, cur); err != nil {
				return nil, err
			}
		}
		switch {
		case old != nil && onlyIfNone, old.count() == n:
			b.cacheShards(queue, old)
			return old, nil
		case n < old.count():
			return nil, fmt.Errorf("%w: queue %s has %d shards, so it cannot have %d: %w (see docs/scaling.md)", errInvalidArg, queue, old.count(), n, errShrink)
		}
		next, err := b.placeShards(ctx, queue, old, n)
		if err != nil {
			return nil, err
		}
		if old != nil {
			next.unique = old.unique
		} else {
			// Unique keys spread over the count first set, unless locks
			// are already held in shard 0: they would be looked for
			// elsewhere.
			held, err := b.rdb.HLen(ctx, b.queueKeys(queue)[kLocks]).Result()
			if err != nil {
				return nil, wrapErr("set shards", err)
			}
			next.unique = n
			if held > 0 {
				next.unique = 1
			}
		}
		if err := b.inheritPause(ctx, queue, next, old.count()); err != nil {
			return nil, err
		}
		res, err := b.run(ctx, scriptShardsSet, []string{key}, queue, cur, next.record()).Int64()
		if err != nil {
			return nil, wrapErr("set shards", err)
		}
		if res == 1 {
			if _, err := b.rdb.SAdd(ctx, queuesKey(b.cfg.Prefix), queue).Result(); err != nil {
				return nil, wrapErr("set shards", err)
			}
			b.cacheShards(queue, next)
			return next, nil
		}
		// Someone else changed the record meanwhile: read it again.
	}
	return nil, fmt.Errorf("redis broker: set shards of queue %s: the record keeps changing", queue)
}

// inheritPause pauses shards from.. of next if shard 0 is paused.
func (b *Broker) inheritPause(ctx context.Context, queue string, next *shardSet, from int) error {
	paused, err := b.rdb.Exists(ctx, b.queueKeys(queue)[kPaused]).Result()
	if err != nil {
		return wrapErr("set shards", err)
	}
	if paused == 0 {
		return nil
	}
	_, err = b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i := from; i < next.n; i++ {
			p.Set(ctx, b.queueKeys(next.tag(queue, i))[kPaused], "1", 0)
		}
		return nil
	})
	if err != nil {
		return wrapErr("set shards: pause new shards", err)
	}
	return nil
}

// ensureShards is shardsOf for calls that store tasks or queue state: with
// Config.DefaultShards > 1, a queue without a record gets one first.
func (b *Broker) ensureShards(ctx context.Context, queue string) (*shardSet, error) {
	s, err := b.shardsOf(ctx, queue)
	if err != nil || s != nil || b.cfg.DefaultShards <= 1 {
		return s, err
	}
	return b.setShards(ctx, queue, b.cfg.DefaultShards, true)
}

// tagSlot is the slot of every key of the shard with hash tag tag.
func tagSlot(tag string) int { return int(crc16(tag) % 16384) }

func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc ^= uint16(s[i]) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
	}
	return crc
}
