// Package broker defines the storage contract of the conq task queue. A
// Broker keeps every task, its state and its lease; the queue package's
// Client, Worker and Inspector are written against this interface only.
//
// Implementations: queue/broker/memory (embedded, the default) and
// queue/broker/redis. Both pass the single conformance suite in
// queue/broker/brokertest; a new implementation must too.
//
// Delivery is at least once. A fetched task is leased to one worker with a
// fencing token; Complete, Fail, Requeue and ExtendLeases succeed only while
// the caller's token is the task's current one, so a worker whose lease was
// taken over cannot finish the task a second time.
package broker
