package queue

import (
	"encoding/json"
	"fmt"
	"unicode"

	"github.com/conqhq/conq/queue/broker"
)

// TaskInfo is a task as the broker keeps it: what Enqueue returns, what a
// handler is given and what the Inspector lists. Handlers must treat it as
// read-only.
type TaskInfo = broker.Task

// QueueInfo is a queue's state: paused or not, and its task counts.
type QueueInfo = broker.QueueInfo

// State is where a task is in its life.
type State = broker.State

// Task states.
const (
	StatePending   = broker.StatePending
	StateScheduled = broker.StateScheduled
	StateActive    = broker.StateActive
	StateRetry     = broker.StateRetry
	StateDead      = broker.StateDead
	StateCompleted = broker.StateCompleted
)

// Task is a unit of work to enqueue: a kind naming the handler, an opaque
// payload, and options. Payloads are bytes; nothing is ever deserialized
// into code.
type Task struct {
	Kind    string
	Payload []byte
	Options []Option
}

// NewTask returns a task of the given kind.
func NewTask(kind string, payload []byte, opts ...Option) *Task {
	return &Task{Kind: kind, Payload: payload, Options: opts}
}

// NewJSONTask returns a task whose payload is v encoded as JSON.
func NewJSONTask(kind string, v any, opts ...Option) (*Task, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("queue: encode payload of task kind %q: %w", kind, err)
	}
	return NewTask(kind, b, opts...), nil
}

const (
	maxQueueName = 128
	maxKind      = 256
	maxID        = 256
)

// validQueueName: 1 to 128 letters, digits and "_-.:".
func validQueueName(name string) error {
	if name == "" {
		return invalid("empty queue name")
	}
	if len(name) > maxQueueName {
		return invalid("queue name %q is %d bytes, over %d", name[:32]+"…", len(name), maxQueueName)
	}
	for _, r := range name {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '.' || r == ':')) {
			return invalid("queue name %q: only ASCII letters, digits and _-.: are allowed", name)
		}
	}
	return nil
}

// validToken checks kinds and task IDs: printable, no spaces.
func validToken(what, s string, max int) error {
	if s == "" {
		return invalid("empty task %s", what)
	}
	if len(s) > max {
		return invalid("task %s is %d bytes, over %d", what, len(s), max)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return invalid("task %s %q: control or space characters are not allowed", what, s)
		}
	}
	return nil
}
