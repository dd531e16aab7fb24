// Package redis is a broker.Broker on Redis 6.2+ (LPOP with a count,
// sub-second BLPOP), built on go-redis v9. It also implements the optional
// broker.UniqueEnqueuer, broker.TickClaimer and broker.Limiter.
//
// Every state change is one Lua script (scripts/*.lua, embedded) that
// receives every key it touches in KEYS. All keys of a queue share the
// hash tag {queue}, as in "conq:{default}:pending", so a queue lives in
// one Redis Cluster slot; the only key outside a tag is the set of known
// queues ("conq:queues"), written next to the scripts, never inside them.
// Limits are global and tagged by name ("conq:{limit:NAME}:slots").
//
// Batch calls (Enqueue, Fetch, Complete, Fail, Requeue, ExtendLeases) send
// one script call per queue and chunk of Config.BatchSize tasks, pipelined
// across queues. See docs/redis.md for the key layout and memory use.
//
//	b, err := redisbroker.Open(ctx, "redis://:secret@localhost:6379/0", redisbroker.Config{Prefix: "myapp"})
package redis
