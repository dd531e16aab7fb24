package broker

import (
	"cmp"
	"slices"
	"time"
)

// Records that brokers keep besides tasks: queue states, per-second
// counters, live workers and published schedules.

// QueueInfo is a queue's state. Counts and Paused are the queue's as a
// whole: the sums over its shards, paused if any shard is.
type QueueInfo struct {
	Name   string          `json:"name"`
	Paused bool            `json:"paused"`
	Counts map[State]int64 `json:"counts"`
	// Shards details each shard of a queue spread over more than one
	// (Sharder), by index; nil for an unsharded queue.
	Shards []ShardInfo `json:"shards,omitempty"`
}

// ShardInfo is one shard of a sharded queue.
type ShardInfo struct {
	Index  int             `json:"index"`
	Tag    string          `json:"tag"`            // the hash tag of its keys
	Slot   int             `json:"slot"`           // its Redis Cluster hash slot
	Node   string          `json:"node,omitempty"` // the master serving the slot ("" outside a cluster)
	Paused bool            `json:"paused"`
	Counts map[State]int64 `json:"counts"`
}

// Point is one second of a queue's throughput.
type Point struct {
	At        time.Time `json:"at"`        // start of the second
	Processed int64     `json:"processed"` // tasks completed
	Failed    int64     `json:"failed"`    // attempts failed (retried or dead, lease expiries and cancels included)
}

// StatsWindow is how far back a broker keeps throughput counters.
const StatsWindow = 70 * time.Minute

// WorkerInfo is what a worker publishes about itself.
type WorkerInfo struct {
	ID          string        `json:"id"`
	Host        string        `json:"host"`
	PID         int           `json:"pid"`
	Queues      []string      `json:"queues"`
	Concurrency int           `json:"concurrency"`
	StartedAt   time.Time     `json:"started_at"`
	HeartbeatAt time.Time     `json:"heartbeat_at"`
	Running     []RunningTask `json:"running"`
	// Kinds are the task kinds the worker serves, sorted; empty when it
	// cannot tell (a default handler takes every kind). Producers use it
	// to refuse a workflow naming a kind no live worker of its queue
	// serves (spec.LiveKinds).
	Kinds []string `json:"kinds,omitempty"`
}

// RunningTask is a task a worker is running.
type RunningTask struct {
	ID        string    `json:"id"`
	Queue     string    `json:"queue"`
	Kind      string    `json:"kind"`
	StartedAt time.Time `json:"started_at"`
}

// ScheduleEntry is a periodic entry as a scheduler publishes it.
type ScheduleEntry struct {
	Name        string    `json:"name"`
	Spec        string    `json:"spec"`
	Kind        string    `json:"kind"`
	Queue       string    `json:"queue"`
	Next        time.Time `json:"next"`
	Prev        time.Time `json:"prev,omitzero"` // last tick fired (by any scheduler)
	Fired       int64     `json:"fired"`         // ticks this scheduler enqueued
	Error       string    `json:"error,omitzero"`
	SchedulerID string    `json:"scheduler_id"`
	UpdatedAt   time.Time `json:"updated_at"`
}

// SortEntries orders entries by name, then scheduler ID.
func SortEntries(es []ScheduleEntry) {
	slices.SortFunc(es, func(a, b ScheduleEntry) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.SchedulerID, b.SchedulerID))
	})
}
