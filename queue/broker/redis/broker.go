package redis

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/groupcommit"
	"github.com/conqhq/conq/queue/broker"
)

// Broker is a broker.Broker on Redis.
type Broker struct {
	cfg       Config
	rdb       goredis.UniversalClient
	cluster   *goredis.ClusterClient // rdb on a Redis Cluster, else nil
	ownClient bool
	closed    atomic.Bool
	mode      atomic.Int32 // modeFunctions or modeEval (functions.go)

	shards   shardCache                                  // queues spread over several shards (shards.go)
	rot      atomic.Uint32                               // where Fetch starts among a queue's shards
	hub      *notifyHub                                  // WaitReady on a cluster (wait.go)
	awaits   *awaitHub                                   // AwaitTask's shared poller (await.go)
	creates  *groupcommit.Group[*createReq, createRes]   // combines CreateWorkflow calls (workflow.go)
	enqueues *groupcommit.Group[*enqueueReq, enqueueRes] // combines Enqueue calls (enqueue.go)
	wfTags   wfTags                                      // workflow ID -> shard tag (wftags.go)
	xs       *xslot                                      // mover and forwarder of cross-slot workflows (xslot.go); nil if off

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

// Capabilities implements broker.Broker: every optional role, shards and
// workflows included.
func (b *Broker) Capabilities() broker.Capability {
	return broker.CapAll | broker.CapShards | broker.CapWorkflows
}

// Clock implements broker.Broker: Config.Clock.
func (b *Broker) Clock() broker.Clock { return b.cfg.Clock }

// New returns a broker on cfg.Client. The caller keeps ownership of the
// client: Close does not close it. A *goredis.ClusterClient makes it a
// cluster broker: it then adds a hook to the client that reloads the slot
// map on node errors (see cluster.go).
func New(cfg Config) (*Broker, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	b := &Broker{cfg: c, rdb: c.Client, keys: make(map[string]*queueKeySet)}
	if c.Eval {
		b.mode.Store(modeEval)
	}
	b.awaits = newAwaitHub(b)
	b.creates = newCreator(b)
	b.enqueues = newEnqueuer(b)
	if cc, ok := c.Client.(*goredis.ClusterClient); ok {
		b.cluster = cc
		hookCluster(cc)
		b.hub = newNotifyHub(b)
	}
	b.startXSlot()
	return b, nil
}

// Open connects to the Redis that url names (see ParseURL and Target: one
// server, a cluster, or a Sentinel-managed primary), checks the connection
// with PING and returns a broker that owns the client. cfg.Client must be
// nil.
func Open(ctx context.Context, url string, cfg Config) (*Broker, error) {
	if cfg.Client != nil {
		return nil, fmt.Errorf("%w: Open with Config.Client set; use New", errInvalidArg)
	}
	t, err := ParseTarget(url)
	if err != nil {
		return nil, err
	}
	client, err := openTarget(ctx, t)
	if err != nil {
		if errors.Is(err, errInvalidArg) {
			return nil, err
		}
		return nil, fmt.Errorf("redis broker: connect to %s: %w", redactURL(url), err)
	}
	cfg.Client = client
	b, err := New(cfg)
	if err != nil {
		_ = cfg.Client.Close()
		return nil, err
	}
	b.ownClient = true
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		_ = b.Close()
		return nil, fmt.Errorf("redis broker: connect to %s: %w", redactURL(url), err)
	}
	b.loadScripts(ctx)
	return b, nil
}

// loadScripts loads the function library, or with EVALSHA sends every
// script once, so that the first calls do not pay for a missing function
// or a NOSCRIPT round trip (on a cluster, on every master). A server that
// refuses functions switches the broker to EVALSHA here. Best effort:
// calls load what they miss anyway.
func (b *Broker) loadScripts(ctx context.Context) {
	if b.functions() {
		err := b.loadLibrary(ctx)
		if !noFunctionSupport(err) {
			if err != nil {
				b.cfg.Logger.DebugContext(ctx, "redis broker: loading the script library failed", "err", err)
			}
			return
		}
		b.fallBack(ctx, err)
	}
	var err error
	if b.cluster != nil {
		for _, s := range allScripts {
			if e := b.cluster.ScriptLoad(ctx, s.src).Err(); e != nil {
				err = e
			}
		}
	} else {
		_, err = b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for _, s := range allScripts {
				p.ScriptLoad(ctx, s.src)
			}
			return nil
		})
	}
	if err != nil {
		b.cfg.Logger.DebugContext(ctx, "redis broker: preloading scripts failed", "err", err)
	}
}

// Cluster returns the cluster client the broker uses, or nil when it is
// not on a Redis Cluster.
func (b *Broker) Cluster() *goredis.ClusterClient { return b.cluster }

// Client returns the Redis client the broker uses.
func (b *Broker) Client() goredis.UniversalClient { return b.rdb }

// Prefix returns the key prefix.
func (b *Broker) Prefix() string { return b.cfg.Prefix }

// Close marks the broker closed and, if it opened the client, closes it.
func (b *Broker) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	if b.hub != nil {
		b.hub.close()
	}
	b.creates.Close()
	b.enqueues.Close()
	if b.xs != nil {
		b.xs.close()
	}
	b.awaits.kick() // its waiters get ErrClosed
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

// queueKeySet is a shard's keys, all of them and as each script takes them.
type queueKeySet struct {
	all       []string
	perScript [][]string // by script id
}

// keySet returns the keys of the shard whose hash tag is tag (shardTag;
// an unsharded queue's tag is its name).
func (b *Broker) keySet(tag string) *queueKeySet {
	b.keysMu.RLock()
	k := b.keys[tag]
	b.keysMu.RUnlock()
	if k != nil {
		return k
	}
	k = &queueKeySet{all: queueKeys(b.cfg.Prefix, tag), perScript: make([][]string, len(allScripts))}
	for _, s := range allScripts {
		sub := make([]string, len(s.slots))
		for i, slot := range s.slots {
			sub[i] = k.all[slot]
		}
		k.perScript[s.id] = sub
	}
	b.keysMu.Lock()
	if len(b.keys) < 10000 { // bounded: queue names come from callers
		b.keys[tag] = k
	}
	b.keysMu.Unlock()
	return k
}

// queueKeys returns all keys of the shard with tag, indexed by the k*
// constants.
func (b *Broker) queueKeys(tag string) []string { return b.keySet(tag).all }

// keysFor returns the KEYS of script s run on the shard with tag.
func (b *Broker) keysFor(s *script, tag string) []string { return b.keySet(tag).perScript[s.id] }

// keysAt is keysFor plus, for scripts that count throughput, the stats key
// of now's minute.
func (b *Broker) keysAt(s *script, tag string, now time.Time) []string {
	keys := b.keysFor(s, tag)
	if !s.stats {
		return keys
	}
	return append(keys[:len(keys):len(keys)], statsKey(b.cfg.Prefix, tag, now.UnixMilli()/60000))
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
