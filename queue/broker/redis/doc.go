// Package redis is a broker.Broker on Redis 6.2+ (LPOP with a count,
// sub-second BLPOP), built on go-redis v9, with every optional role of the
// contract (Capabilities is broker.CapAll | CapShards | CapWorkflows).
//
// Every state change is one Lua script (scripts/*.lua, embedded) that
// receives every key it touches in KEYS. On Redis 7.0+ the scripts are
// functions of one library (FCALL, functions.go), whose shared helpers are
// defined once at load rather than on every call; older servers, and
// Config.Eval, get them with EVALSHA. All keys of a queue share the
// hash tag {queue}, as in "conq:{default}:pending", so a queue lives in
// one Redis Cluster slot; the only key outside a tag is the set of known
// queues ("conq:queues") and the index of workflow IDs
// ("conq:workflows"), written next to the scripts, never inside them.
// Limits are global and tagged by name ("conq:{limit:NAME}:slots").
//
// Batch calls (Enqueue, Fetch, Complete, Fail, Requeue, ExtendLeases) send
// one script call per queue and chunk of Config.BatchSize tasks, pipelined
// across queues; concurrent Enqueue and CreateWorkflow calls share script
// calls (group commit). See docs/redis.md for the key layout and memory
// use.
//
//	b, err := redisbroker.Open(ctx, "redis://:secret@localhost:6379/0", redisbroker.Config{Prefix: "myapp"})
//
// # Policy, written down
//
//   - One task state change is one script: no transition is ever half
//     done, whoever calls and however the connection fails.
//   - A workflow lives in one home shard (its first step's): a step's end
//     and what follows it are the same script (workflow.go). A step of
//     another queue is in another slot: its start is an order in the
//     home's outbox and its end an event in its own slot, each written in
//     the script that decided it and carried across by the mover and the
//     forwarder (xslot.go), idempotently, in the call that left them and
//     every Config.CrossSlotPoll; never a script over two slots, the same
//     path on one server as on a cluster. The cost is a few round trips
//     per such step, up to CrossSlotPoll after a crash. Indexes of
//     workflows that must agree with them (wfcreated, for ListWorkflows)
//     live in the same slot and change in the same scripts; listings
//     that span shards merge per-shard answers in Go, never a global
//     index written beside the scripts.
//   - Every key a script touches is in KEYS and in the queue's hash tag,
//     so scripts stay valid on Redis Cluster.
//   - A call that did not run for want of its function or script (a
//     restart, a flush) is sent again alone once the library or script is
//     loaded; a call that ran is never sent again.
//   - Waiting is polled; pushes only hurry it. The scripts that finish
//     tasks publish their IDs while a process awaits the queue (await.go),
//     and a waiter named is read at once, but every answer comes from a
//     read, so a lost message costs latency and never a result.
//   - Concurrent Enqueue and CreateWorkflow calls are combined into
//     shared script calls, each decided as if sent alone; a lone call is
//     sent at once, with its caller's ctx (internal/groupcommit).
//   - Time is Config.Clock's, passed to scripts as arguments: Redis's own
//     clock is never read, so tests move time by hand and the broker and
//     the components reading Broker.Clock agree.
package redis
