package queue

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/internal/check"
)

// Defaults of ClientConfig.
const (
	DefaultQueue          = "default"
	DefaultMaxRetries     = 5
	DefaultMaxPayloadSize = 1 << 20 // 1 MiB: queue payloads are arguments, not files
)

// ClientConfig configures a Client. The zero value is ready to use.
type ClientConfig struct {
	// Options apply to every task before its own options, e.g.
	// []Option{Queue("emails"), MaxRetries(3), Retention(time.Hour)}.
	// Built-in defaults: queue "default", 5 retries, no timeout, no retention.
	Options []Option
	// MaxPayloadSize caps a payload in bytes; default 1 MiB, negative for
	// no cap (a broker may still have its own).
	MaxPayloadSize int
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Client enqueues tasks and waits for their results. It is safe for
// concurrent use and does not own the broker.
type Client struct {
	b        Broker
	defaults []Option
	maxSize  int
	log      *slog.Logger
}

// NewClient returns a client of b.
func NewClient(b Broker, cfg ClientConfig) (*Client, error) {
	if b == nil {
		return nil, invalid("NewClient: nil broker")
	}
	c := &Client{b: b, defaults: cfg.Options, maxSize: cmp.Or(cfg.MaxPayloadSize, DefaultMaxPayloadSize), log: cmp.Or(cfg.Logger, slog.Default())}
	// Surface bad defaults now rather than on every Enqueue.
	o := options{}
	for _, opt := range c.defaults {
		opt(&o)
	}
	if len(o.errs) > 0 {
		return nil, fmt.Errorf("queue: ClientConfig.Options: %w", o.errs[0])
	}
	return c, nil
}

// uniqueness is the unique lock a task asks for (key "" for none), and
// whether its ID was set with TaskID.
type uniqueness struct {
	key   string
	ttl   time.Duration
	idSet bool
}

// buildUnique turns task and options into the broker's form, and returns
// the task's unique lock. A task without an ID gets a random one.
func (c *Client) buildUnique(task *Task, opts []Option, now time.Time) (*broker.Task, uniqueness, error) {
	t := new(broker.Task)
	u, err := c.buildTask(t, task, opts, now)
	if err != nil {
		return nil, uniqueness{}, err
	}
	if t.ID == "" {
		t.ID = rand.Text()
	}
	return t, u, nil
}

// buildTask is buildUnique into *t, without the random ID: a workflow
// builds its steps in place, and a step's ID is its workflow's and its
// index. On error *t is unchanged.
func (c *Client) buildTask(t *broker.Task, task *Task, opts []Option, now time.Time) (uniqueness, error) {
	if task == nil {
		return uniqueness{}, invalid("nil task")
	}
	if err := validToken("kind", task.Kind, check.MaxKind); err != nil {
		return uniqueness{}, err
	}
	if c.maxSize > 0 && len(task.Payload) > c.maxSize {
		return uniqueness{}, &PayloadTooLargeError{Kind: task.Kind, Size: len(task.Payload), Max: c.maxSize}
	}
	enc, err := validEncoding(task.Encoding)
	if err != nil {
		return uniqueness{}, fmt.Errorf("task kind %q: %w", task.Kind, err)
	}
	if enc == EncodingJSON || enc == EncodingArgs {
		if !json.Valid(task.Payload) {
			return uniqueness{}, invalid("task kind %q: payload of encoding %q is not valid JSON", task.Kind, enc)
		}
	}
	o := options{queue: DefaultQueue, maxRetries: DefaultMaxRetries}
	for _, set := range [][]Option{c.defaults, task.Options, opts} {
		for _, opt := range set {
			opt(&o)
		}
	}
	if err := o.check(now); err != nil {
		return uniqueness{}, fmt.Errorf("task kind %q: %w", task.Kind, err)
	}
	*t = broker.Task{
		ID:         o.id,
		Kind:       task.Kind,
		Queue:      o.queue,
		Payload:    task.Payload,
		Encoding:   enc,
		MaxRetries: o.maxRetries,
		Timeout:    o.timeout,
		Deadline:   o.deadline,
		Retention:  o.retention,
		EnqueuedAt: now,
		ProcessAt:  o.processAt,
	}
	if o.processIn > 0 {
		t.ProcessAt = now.Add(o.processIn)
	}
	t.State = StatePending
	if t.ProcessAt.After(now) {
		t.State = StateScheduled
	}
	u := uniqueness{idSet: o.id != ""}
	if o.unique {
		u.key, u.ttl = o.uniqueKey, o.uniqueTTL
		if u.key == "" {
			u.key = uniqueDigest(t.Kind, t.Queue, t.Payload)
		}
		if u.ttl == 0 {
			u.ttl = DefaultUniqueTTL
		}
	}
	return u, nil
}

// uniqueDigest is the default unique key: a digest of kind, queue and
// payload.
func uniqueDigest(kind, queue string, payload []byte) string {
	h := sha256.New()
	for _, s := range [][]byte{[]byte(kind), []byte(queue), payload} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write(s)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// Enqueue stores task in the broker and returns it as stored. Options given
// here override the task's own.
func (c *Client) Enqueue(ctx context.Context, task *Task, opts ...Option) (*TaskInfo, error) {
	t, u, err := c.buildUnique(task, opts, c.b.Clock().Now())
	if err != nil {
		return nil, err
	}
	if u.key != "" {
		if err := c.enqueueUnique(ctx, t, u); err != nil {
			return nil, err
		}
		return t, nil
	}
	if err := c.b.Enqueue(ctx, t); err != nil {
		return nil, fmt.Errorf("queue: enqueue task %s (kind %q): %w", t.ID, t.Kind, broker.Only(err))
	}
	return t, nil
}

// EnqueueMany stores tasks in one broker call. opts apply to every task.
// If some fail it returns the others' infos (nil at failed positions) and a
// *BatchError naming each failure.
func (c *Client) EnqueueMany(ctx context.Context, tasks []*Task, opts ...Option) ([]*TaskInfo, error) {
	now := c.b.Clock().Now()
	infos := make([]*TaskInfo, len(tasks))
	errs := make([]error, len(tasks))
	valid := make([]*broker.Task, 0, len(tasks))
	pos := make([]int, 0, len(tasks))
	failed := false
	for i, task := range tasks {
		t, u, err := c.buildUnique(task, opts, now)
		if err != nil {
			errs[i], failed = err, true
			continue
		}
		if u.key != "" {
			// Unique tasks go one by one: each takes its own lock.
			if err := c.enqueueUnique(ctx, t, u); err != nil {
				errs[i], failed = err, true
				continue
			}
			infos[i] = t
			continue
		}
		infos[i] = t
		valid = append(valid, t)
		pos = append(pos, i)
	}
	if len(valid) > 0 {
		if err := c.b.Enqueue(ctx, valid...); err != nil {
			var be *BatchError
			if !errors.As(err, &be) || len(be.Errs) != len(valid) {
				return nil, fmt.Errorf("queue: enqueue %d tasks: %w", len(valid), err)
			}
			for j, e := range be.Errs {
				if e != nil {
					i := pos[j]
					errs[i] = fmt.Errorf("queue: enqueue task %s (kind %q): %w", valid[j].ID, valid[j].Kind, e)
					infos[i], failed = nil, true
				}
			}
		}
	}
	if failed {
		return infos, &BatchError{Errs: errs}
	}
	return infos, nil
}

// enqueueUnique stores t under its unique lock.
func (c *Client) enqueueUnique(ctx context.Context, t *broker.Task, u uniqueness) error {
	if err := c.b.EnqueueUnique(ctx, broker.UniqueParams{Task: t, Key: u.key, TTL: u.ttl}); err != nil {
		if errors.Is(err, ErrUnsupported) {
			return fmt.Errorf("queue: enqueue task %s (kind %q): unique tasks: %w (%T)", t.ID, t.Kind, err, c.b)
		}
		return fmt.Errorf("queue: enqueue task %s (kind %q): %w", t.ID, t.Kind, broker.Only(err))
	}
	return nil
}

// EnqueueJSON enqueues a task whose payload is v encoded as JSON.
func EnqueueJSON[T any](ctx context.Context, c *Client, kind string, v T, opts ...Option) (*TaskInfo, error) {
	task, err := NewJSONTask(kind, v)
	if err != nil {
		return nil, err
	}
	return c.Enqueue(ctx, task, opts...)
}

// Result waits until the task with this ID (in any queue) is finished and
// returns its result, or a *TaskFailedError if it ended dead. It is the
// remote counterpart of future.Future.Result: if ctx ends first it returns
// ctx's error and the task carries on. A completed task's result is only
// kept if it was enqueued with Retention; otherwise Result reports
// ErrTaskNotFound once the task is done.
func (c *Client) Result(ctx context.Context, id string) ([]byte, error) {
	t, err := await(ctx, c.b, "", id, "result of")
	if err != nil {
		return nil, err
	}
	if t.State == StateDead {
		return nil, &TaskFailedError{ID: t.ID, Queue: t.Queue, Kind: t.Kind, Attempts: t.Attempts, Errors: t.Errors}
	}
	return t.Result, nil
}

// ResultJSON waits like Result and decodes the result as JSON into a T.
func ResultJSON[T any](ctx context.Context, c *Client, id string) (T, error) {
	var v T
	b, err := c.Result(ctx, id)
	if err != nil {
		return v, err
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("queue: decode result of task %s as %T: %w", id, v, err)
	}
	return v, nil
}
