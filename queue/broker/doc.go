// Package broker defines the storage contract of the conq task queue. A
// Broker keeps every task, its state and its lease; the queue package's
// Client, Worker, Scheduler and Inspector are written against this
// interface only.
//
// The contract is one interface (broker.go) composed of roles: Core
// (Producer, Consumer, Maintainer, Inspector, the clock) which every broker
// implements, and Optional (unique tasks, cancellation, tick claims,
// limits, worker and schedule registries, throughput counters), whose
// methods a broker that lacks them answers with ErrUnsupported by
// embedding Unsupported, and which it declares in Capabilities. Calls with
// several arguments take parameter structs (params.go); the errors are in
// errors.go; the clock every component reads is the broker's (clock.go).
//
// Implementations: queue/broker/memory (embedded, the default) and
// queue/broker/redis. Both pass the single conformance suite in
// queue/broker/brokertest; a new implementation must too.
//
// # Policy, written down
//
//   - Delivery is at least once. A fetched task is leased to one worker
//     with a fencing token; Complete, Fail, Requeue and ExtendLeases
//     succeed only while the caller's token is the task's current one, so
//     a worker whose lease was taken over cannot finish the task a second
//     time.
//   - One call per concern: lease renewal is ExtendLeases alone, and it
//     reports lost and cancelled leases together.
//   - No type assertions for capabilities: wrappers embed Broker and so
//     pass every call through; what a broker cannot do it says in
//     Capabilities and answers with ErrUnsupported.
//   - Time is the broker's: components never call time.Now for task
//     times, they read Broker.Clock.
//   - Every state transition of a task is one atomic broker operation (a
//     Lua script in Redis, one critical section in memory); future roles
//     (workflows) follow the same rule.
//   - Listings that may be long page by parameter structs: tasks by
//     offset (ListParams), workflows by an opaque, broker-made cursor
//     (WorkflowListParams), newest first; one call stays bounded, so a
//     page may be short while it says more follow.
package broker
