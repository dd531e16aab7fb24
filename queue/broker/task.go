package broker

import (
	"fmt"
	"strings"
	"time"
)

// State is where a task is in its life.
type State string

const (
	StatePending   State = "pending"   // ready to run
	StateScheduled State = "scheduled" // waits for ProcessAt
	StateActive    State = "active"    // leased to a worker
	StateRetry     State = "retry"     // failed, waits for its next attempt
	StateDead      State = "dead"      // out of retries, kept for inspection
	StateCompleted State = "completed" // finished, kept for Retention
)

// States lists every state in display order.
var States = []State{StatePending, StateScheduled, StateActive, StateRetry, StateDead, StateCompleted}

// ParseState accepts a state name.
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == strings.ToLower(s) {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown task state %q (want one of pending, scheduled, active, retry, dead, completed)", s)
}

// AttemptError records one failed attempt.
type AttemptError struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Kind    string    `json:"kind,omitempty"` // e.g. "error", "panic", "timeout", "lease_expired", "unknown_kind", "cancelled"
	Message string    `json:"message"`
	Stack   string    `json:"stack,omitempty"`
}

// ErrorKindCancelled is the AttemptError.Kind of a cancelled task.
const ErrorKindCancelled = "cancelled"

// Task is a task as stored by a broker. The fields in the first group are
// set by the producer and never change; the rest are kept by the broker.
type Task struct {
	ID         string        `json:"id"`
	Kind       string        `json:"kind"`
	Queue      string        `json:"queue"`
	Payload    []byte        `json:"payload"`
	Encoding   string        `json:"encoding,omitempty"`  // how Payload is encoded: "raw", "json", "args" (queue.Encoding*); "" reads as raw
	MaxRetries int           `json:"max_retries"`         // retries after the first attempt
	Timeout    time.Duration `json:"timeout,omitempty"`   // per attempt; 0 = worker default
	Deadline   time.Time     `json:"deadline,omitempty"`  // no attempt starts or runs past it
	Retention  time.Duration `json:"retention,omitempty"` // keep the completed task and result this long
	EnqueuedAt time.Time     `json:"enqueued_at"`
	ProcessAt  time.Time     `json:"process_at,omitempty"` // zero: now

	State       State          `json:"state"`
	Attempts    int            `json:"attempts"` // attempts started and finished or lost
	Errors      []AttemptError `json:"errors,omitempty"`
	Result      []byte         `json:"result,omitempty"`
	StartedAt   time.Time      `json:"started_at,omitempty"`
	CompletedAt time.Time      `json:"completed_at,omitempty"`

	// Shard is the shard of its queue the task is stored in; 0 for an
	// unsharded queue (the built-in brokers keep one shard per queue, so
	// always 0). Fetch fills it and the lease carries it (Ref), so a
	// sharded broker routes every call on the lease by (Queue, Shard).
	Shard int `json:"shard,omitempty"`

	// Workflow and Step name the workflow step the task runs (Workflower),
	// set by the broker; "" for a plain task.
	Workflow string `json:"workflow,omitempty"`
	Step     int    `json:"step,omitempty"`

	// Lease, set on tasks returned by Fetch and while active.
	Token      uint64    `json:"token,omitempty"`
	LeaseUntil time.Time `json:"lease_until,omitempty"`
	WorkerID   string    `json:"worker_id,omitempty"`
}

// Ref returns the lease t was fetched with.
func (t *Task) Ref() LeaseRef {
	return LeaseRef{Queue: t.Queue, Shard: t.Shard, ID: t.ID, Token: t.Token}
}

// LeaseRef names a lease: the task (its queue, shard and ID) and the
// fencing token it was fetched with. Tokens need only be unique per shard.
type LeaseRef struct {
	Queue string
	Shard int // Task.Shard; 0 unsharded
	ID    string
	Token uint64
}

// Ack completes a task.
type Ack struct {
	LeaseRef
	Result []byte
}

// Failure ends an attempt with an error. If Dead the task goes to the dead
// state; otherwise it is retried at RetryAt (pending at once if zero).
type Failure struct {
	LeaseRef
	Error   AttemptError
	RetryAt time.Time
	Dead    bool
}

// DefaultListLimit is the page size of ListTasks when the limit is <= 0.
const DefaultListLimit = 100
