package broker

import "time"

// Parameters of the calls that take more than a couple of arguments. New
// fields (a shard, a priority, a workflow step) can be added without
// breaking brokers or callers: the zero value of a field keeps today's
// behaviour.

// FetchParams: lease up to Max pending tasks from Queues, in that order.
type FetchParams struct {
	Queues   []string
	Max      int
	Lease    time.Duration // each task is leased until now+Lease
	WorkerID string        // recorded on the task
}

// WaitParams: wait until a task may be ready in Queues, for at most Max.
type WaitParams struct {
	Queues []string
	Max    time.Duration
}

// ExtendParams: renew Leases until now+Lease.
type ExtendParams struct {
	Leases []LeaseRef
	Lease  time.Duration
}

// ExtendResult is what a lease renewal found besides the renewed leases.
type ExtendResult struct {
	// Lost are leases no longer the caller's (ErrLeaseLost semantics): the
	// caller must stop working on them. They were not renewed.
	Lost []LeaseRef
	// Cancelled are renewed leases whose task is flagged for cancellation
	// (CancelTask): the caller should stop the attempt and record it.
	Cancelled []LeaseRef
}

// ListParams: the tasks of Queue in State, oldest first, from Offset (a
// negative one is 0), at most Limit (<= 0: DefaultListLimit).
type ListParams struct {
	Queue  string
	State  State
	Offset int
	Limit  int
}

// UniqueParams: enqueue Task holding the unique lock Key of its queue for
// TTL.
type UniqueParams struct {
	Task *Task
	Key  string
	TTL  time.Duration
}

// ClaimParams: enqueue Task if Tick is later than the last tick claimed
// for Key in Task's queue, and record Tick for TTL.
type ClaimParams struct {
	Key  string
	Tick time.Time
	TTL  time.Duration
	Task *Task
}

// SlotParams: take one of Limit slots of Name for Holder until now+Lease.
type SlotParams struct {
	Name   string
	Holder string
	Limit  int
	Lease  time.Duration
}

// ExtendSlotsParams: renew the slots of Holders in Name until now+Lease.
type ExtendSlotsParams struct {
	Name    string
	Holders []string
	Lease   time.Duration
}

// TokenParams: take a token from the bucket Name, which refills at Rate
// tokens a second and holds at most Burst.
type TokenParams struct {
	Name  string
	Rate  float64
	Burst int
}

// ThroughputParams: the per-second counters of Queue over [From, To).
type ThroughputParams struct {
	Queue    string
	From, To time.Time
}

// MaxShards caps a queue's shard count (ShardParams.Shards). Every shard
// costs a script call per fetch round and keys in each inspection, so
// counts far above the number of nodes buy nothing.
const MaxShards = 256

// ShardParams: spread Queue over Shards shards, 1..MaxShards.
type ShardParams struct {
	Queue  string
	Shards int
}

// AwaitParams: the tasks AwaitTasks waits for, by ID, in Queue ("" looks
// in every queue). An ID may not be given twice.
type AwaitParams struct {
	Queue string
	IDs   []string
}
