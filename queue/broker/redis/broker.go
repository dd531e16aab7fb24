package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
)

// Broker is a broker.Broker on Redis.
type Broker struct {
	cfg       Config
	rdb       goredis.UniversalClient
	ownClient bool
	closed    atomic.Bool

	keysMu sync.RWMutex
	keys   map[string]*queueKeySet

	// registered remembers when each queue was last added to the set of
	// known queues, so Enqueue skips the SADD most of the time.
	registered sync.Map // queue -> time.Time
}

// registerEvery bounds how stale the in-process memory of registered
// queues may be (someone may delete the set of queues by hand).
const registerEvery = 10 * time.Second

// toRegister returns the queues that need an SADD now and marks them done.
func (b *Broker) toRegister(queues []string) []any {
	now := time.Now()
	var out []any
	for _, q := range queues {
		if t, ok := b.registered.Load(q); ok && now.Sub(t.(time.Time)) < registerEvery {
			continue
		}
		b.registered.Store(q, now)
		out = append(out, q)
	}
	return out
}

// forgetRegistered undoes toRegister after a failed SADD.
func (b *Broker) forgetRegistered(queues []any) {
	for _, q := range queues {
		b.registered.Delete(q)
	}
}

var _ broker.Broker = (*Broker)(nil)

// Capabilities implements broker.Broker: every optional role.
func (b *Broker) Capabilities() broker.Capability { return broker.CapAll }

// Clock implements broker.Broker: Config.Clock.
func (b *Broker) Clock() broker.Clock { return b.cfg.Clock }

// New returns a broker on cfg.Client. The caller keeps ownership of the
// client: Close does not close it.
func New(cfg Config) (*Broker, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &Broker{cfg: c, rdb: c.Client, keys: make(map[string]*queueKeySet)}, nil
}

// Open connects to the Redis at url (see ParseURL), checks the connection
// with PING and returns a broker that owns the client. cfg.Client must be
// nil.
func Open(ctx context.Context, url string, cfg Config) (*Broker, error) {
	if cfg.Client != nil {
		return nil, fmt.Errorf("%w: Open with Config.Client set; use New", errInvalidArg)
	}
	opts, err := ParseURL(url)
	if err != nil {
		return nil, err
	}
	cfg.Client = goredis.NewClient(opts)
	b, err := New(cfg)
	if err != nil {
		_ = cfg.Client.Close()
		return nil, err
	}
	b.ownClient = true
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		_ = b.rdb.Close()
		return nil, fmt.Errorf("redis broker: connect to %s: %w", redactURL(url), err)
	}
	b.loadScripts(ctx)
	return b, nil
}

// loadScripts sends every script once so that the first calls do not pay
// for a NOSCRIPT round trip. Best effort: calls load them anyway.
func (b *Broker) loadScripts(ctx context.Context) {
	_, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, s := range allScripts {
			p.ScriptLoad(ctx, s.src)
		}
		return nil
	})
	if err != nil {
		b.cfg.Logger.DebugContext(ctx, "redis broker: preloading scripts failed", "err", err)
	}
}

// Client returns the Redis client the broker uses.
func (b *Broker) Client() goredis.UniversalClient { return b.rdb }

// Prefix returns the key prefix.
func (b *Broker) Prefix() string { return b.cfg.Prefix }

// Close marks the broker closed and, if it opened the client, closes it.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if b.ownClient {
		return b.rdb.Close()
	}
	return nil
}

func (b *Broker) check() error {
	if b.closed.Load() {
		return broker.ErrClosed
	}
	return nil
}

// queueKeySet is a queue's keys, all of them and as each script takes them.
type queueKeySet struct {
	all       []string
	perScript [][]string // by script id
}

func (b *Broker) keySet(q string) *queueKeySet {
	b.keysMu.RLock()
	k := b.keys[q]
	b.keysMu.RUnlock()
	if k != nil {
		return k
	}
	k = &queueKeySet{all: queueKeys(b.cfg.Prefix, q), perScript: make([][]string, len(allScripts))}
	for _, s := range allScripts {
		sub := make([]string, len(s.slots))
		for i, slot := range s.slots {
			sub[i] = k.all[slot]
		}
		k.perScript[s.id] = sub
	}
	b.keysMu.Lock()
	if len(b.keys) < 10000 { // bounded: queue names come from callers
		b.keys[q] = k
	}
	b.keysMu.Unlock()
	return k
}

// queueKeys returns all keys of queue q, indexed by the k* constants.
func (b *Broker) queueKeys(q string) []string { return b.keySet(q).all }

// keysFor returns the KEYS of script s run on queue q.
func (b *Broker) keysFor(s *script, q string) []string { return b.keySet(q).perScript[s.id] }

// keysAt is keysFor plus, for scripts that count throughput, the stats key
// of now's minute.
func (b *Broker) keysAt(s *script, q string, now time.Time) []string {
	keys := b.keysFor(s, q)
	if !s.stats {
		return keys
	}
	return append(keys[:len(keys):len(keys)], statsKey(b.cfg.Prefix, q, now.UnixMilli()/60000))
}

// knownQueues lists the queues of the prefix.
func (b *Broker) knownQueues(ctx context.Context) ([]string, error) {
	qs, err := b.rdb.SMembers(ctx, queuesKey(b.cfg.Prefix)).Result()
	if err != nil {
		return nil, wrapErr("list queues", err)
	}
	return qs, nil
}

func wrapErr(op string, err error) error {
	return fmt.Errorf("redis broker: %s: %w", op, err)
}

func isNil(err error) bool { return errors.Is(err, goredis.Nil) }
