package queue

import (
	"encoding/json"
	"fmt"

	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/internal/check"
)

// Broker stores the tasks: queue/broker/memory (in process) or
// queue/broker/redis. Its contract is in package broker; queue users only
// pass one around.
type Broker = broker.Broker

// TaskInfo is a task as the broker keeps it: what Enqueue returns, what a
// handler is given and what the Inspector lists. Handlers must treat it as
// read-only; theirs has no lease fields (Token, LeaseUntil, WorkerID): use
// FencingToken.
type TaskInfo = broker.Task

// QueueInfo is a queue's state: paused or not, and its task counts.
type QueueInfo = broker.QueueInfo

// ShardInfo is one shard of a queue spread over several (SetShards).
type ShardInfo = broker.ShardInfo

// State is where a task is in its life.
type State = broker.State

// States lists every task state in display order.
var States = broker.States

// ParseState accepts a state name ("pending", ...).
func ParseState(s string) (State, error) { return broker.ParseState(s) }

// Task states.
const (
	StatePending   = broker.StatePending
	StateScheduled = broker.StateScheduled
	StateActive    = broker.StateActive
	StateRetry     = broker.StateRetry
	StateDead      = broker.StateDead
	StateCompleted = broker.StateCompleted
)

// Payload encodings: how a task's payload is encoded travels with the task
// (TaskInfo.Encoding), so a worker in any language binds it without
// guessing. Nothing is ever deserialized into code.
const (
	// EncodingRaw: opaque bytes (NewTask). Tasks stored without an
	// encoding read as raw.
	EncodingRaw = check.EncodingRaw
	// EncodingJSON: one JSON value (NewJSONTask, EnqueueJSON, the CLI's
	// --payload, the HTTP API's "payload"). A Python task receives it
	// decoded, as its one argument.
	EncodingJSON = check.EncodingJSON
	// EncodingArgs: a call's arguments, the JSON object
	// {"args": [...], "kwargs": {...}} (NewCallTask, Python's
	// task.delay(...)). A Python task is called as fn(*args, **kwargs).
	EncodingArgs = check.EncodingArgs
)

// Task is a unit of work to enqueue: a kind naming the handler, a payload
// with its encoding, and options.
type Task struct {
	Kind     string
	Payload  []byte
	Encoding string // EncodingRaw, EncodingJSON or EncodingArgs; "" means raw
	Options  []Option
}

// NewTask returns a task of the given kind whose payload is opaque bytes.
func NewTask(kind string, payload []byte, opts ...Option) *Task {
	return &Task{Kind: kind, Payload: payload, Encoding: EncodingRaw, Options: opts}
}

// NewJSONTask returns a task whose payload is v encoded as JSON.
func NewJSONTask(kind string, v any, opts ...Option) (*Task, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("queue: encode payload of task kind %q: %w", kind, err)
	}
	return &Task{Kind: kind, Payload: b, Encoding: EncodingJSON, Options: opts}, nil
}

// callArgs is the payload of an EncodingArgs task: the positional and
// keyword arguments of a call, as Python's task.delay(*args, **kwargs)
// sends them. Both fields are always encoded, as [] and {} when empty.
type callArgs struct {
	Args   []json.RawMessage          `json:"args"`
	Kwargs map[string]json.RawMessage `json:"kwargs"`
}

// NewCallTask returns a task that calls kind with positional and keyword
// arguments (EncodingArgs): a Python task def add(a, b) runs add(2, 3) for
// NewCallTask("add", []any{2, 3}, nil) and for
// NewCallTask("add", nil, map[string]any{"a": 2, "b": 3}).
func NewCallTask(kind string, args []any, kwargs map[string]any, opts ...Option) (*Task, error) {
	ca := callArgs{Args: make([]json.RawMessage, len(args)), Kwargs: make(map[string]json.RawMessage, len(kwargs))}
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, fmt.Errorf("queue: encode argument %d of task kind %q: %w", i, kind, err)
		}
		ca.Args[i] = b
	}
	for k, v := range kwargs {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, fmt.Errorf("queue: encode keyword argument %q of task kind %q: %w", k, kind, err)
		}
		ca.Kwargs[k] = b
	}
	b, err := json.Marshal(ca)
	if err != nil {
		return nil, fmt.Errorf("queue: encode arguments of task kind %q: %w", kind, err)
	}
	return &Task{Kind: kind, Payload: b, Encoding: EncodingArgs, Options: opts}, nil
}

// decodeCall reads the payload of a call (EncodingArgs) to kind; an error
// wraps SkipRetry: no retry can fix it.
func decodeCall(kind string, payload []byte) (callArgs, error) {
	var ca callArgs
	if err := json.Unmarshal(payload, &ca); err != nil {
		return ca, fmt.Errorf("malformed call arguments for task kind %q: %v: %w", kind, err, SkipRetry)
	}
	return ca, nil
}

// ScanArgs decodes the positional arguments of a call (a task of
// EncodingArgs: NewCallTask, Python's task.delay, a workflow step given the
// result of the step before it) into dst, one pointer per argument, as
// database/sql's Rows.Scan does: a handler of add(a, b) reads them with
// ScanArgs(t, &a, &b). Another number of arguments, keyword arguments,
// another encoding or an argument that does not decode into its pointer is
// an error naming it, wrapping SkipRetry: no retry can fix the call. (A
// call of one argument is what HandleJSON binds.)
func ScanArgs(t *TaskInfo, dst ...any) error {
	if t.Encoding != EncodingArgs {
		enc := t.Encoding
		if enc == "" {
			enc = EncodingRaw
		}
		return fmt.Errorf("task kind %q: ScanArgs reads a call's arguments (encoding %q), not a payload of encoding %q: %w", t.Kind, EncodingArgs, enc, SkipRetry)
	}
	ca, err := decodeCall(t.Kind, t.Payload)
	if err != nil {
		return err
	}
	if len(ca.Args) != len(dst) || len(ca.Kwargs) != 0 {
		return fmt.Errorf("task kind %q takes %d positional argument(s); the call has %d positional and %d keyword arguments: %w",
			t.Kind, len(dst), len(ca.Args), len(ca.Kwargs), SkipRetry)
	}
	for i, a := range ca.Args {
		if err := json.Unmarshal(a, dst[i]); err != nil {
			return fmt.Errorf("task kind %q: argument %d (want %T): %v: %w", t.Kind, i, dst[i], err, SkipRetry)
		}
	}
	return nil
}

// validEncoding checks a task's payload encoding and returns it with ""
// read as raw.
func validEncoding(enc string) (string, error) {
	enc, p := check.Encoding(enc)
	if p != "" {
		return "", invalid("%s", p)
	}
	return enc, nil
}

// validQueueName: 1 to 128 letters, digits and "_-.:".
func validQueueName(name string) error {
	if p := check.QueueName(name); p != "" {
		return invalid("%s", p)
	}
	return nil
}

// validToken checks kinds and task IDs: printable, no spaces.
func validToken(what, s string, max int) error {
	if p := check.Token(what, s, max); p != "" {
		return invalid("%s", p)
	}
	return nil
}
