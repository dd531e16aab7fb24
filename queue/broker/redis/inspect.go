package redis

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
)

// GetTask reads a task atomically (one script call). With queue "" it asks
// every known queue in one pipeline.
func (b *Broker) GetTask(ctx context.Context, queue, id string) (*broker.Task, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	var queues []string
	if queue != "" {
		if err := validQueue(queue); err != nil {
			return nil, err
		}
		queues = []string{queue}
	} else {
		qs, err := b.knownQueues(ctx)
		if err != nil {
			return nil, err
		}
		slices.Sort(qs)
		queues = qs
	}
	if len(queues) == 0 {
		return nil, fmt.Errorf("%w: %s", broker.ErrTaskNotFound, id)
	}
	calls := make([]*scriptCall, len(queues))
	for i, q := range queues {
		calls[i] = &scriptCall{script: scriptGet, keys: b.keysFor(scriptGet, q), args: []any{id}}
	}
	if err := b.runScripts(ctx, calls, nil); err != nil {
		return nil, wrapErr("get task", err)
	}
	for i, c := range calls {
		res, err := c.cmd.Slice()
		if err != nil {
			return nil, wrapErr("get task", err)
		}
		if len(res) == 4 && res[0] != nil {
			return decodeTask(queues[i], id, res[0], res[1], res[2], res[3])
		}
	}
	if queue == "" {
		return nil, fmt.Errorf("%w: %s", broker.ErrTaskNotFound, id)
	}
	return nil, fmt.Errorf("%w: %s in queue %s", broker.ErrTaskNotFound, id, queue)
}

// AwaitTask polls GetTask with a backoff from 1 ms to 100 ms: cheap for
// Redis, and tasks that finish fast are seen fast.
func (b *Broker) AwaitTask(ctx context.Context, queue, id string) (*broker.Task, error) {
	delay := time.Millisecond
	for {
		t, err := b.GetTask(ctx, queue, id)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		if t.State == broker.StateCompleted || t.State == broker.StateDead {
			return t, nil
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
		delay = min(delay*2, 100*time.Millisecond)
	}
}

// Queues lists known queues, sorted by name, with their counts.
func (b *Broker) Queues(ctx context.Context) ([]broker.QueueInfo, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	qs, err := b.knownQueues(ctx)
	if err != nil {
		return nil, err
	}
	slices.Sort(qs)
	type counts struct {
		pending *goredis.IntCmd
		zsets   [5]*goredis.IntCmd
		paused  *goredis.IntCmd
	}
	cs := make([]counts, len(qs))
	_, err = b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, q := range qs {
			k := b.queueKeys(q)
			cs[i].pending = p.LLen(ctx, k[kPending])
			for j, ki := range []int{kScheduled, kActive, kRetry, kDead, kCompleted} {
				// Below +inf: leaves out the sentinel (scripts/common.lua).
				cs[i].zsets[j] = p.ZCount(ctx, k[ki], "-inf", "(+inf")
			}
			cs[i].paused = p.Exists(ctx, k[kPaused])
		}
		return nil
	})
	if err != nil {
		return nil, wrapErr("queues", err)
	}
	out := make([]broker.QueueInfo, len(qs))
	for i, q := range qs {
		c := cs[i]
		out[i] = broker.QueueInfo{
			Name:   q,
			Paused: c.paused.Val() == 1,
			Counts: map[broker.State]int64{
				broker.StatePending:   c.pending.Val(),
				broker.StateScheduled: c.zsets[0].Val(),
				broker.StateActive:    c.zsets[1].Val(),
				broker.StateRetry:     c.zsets[2].Val(),
				broker.StateDead:      c.zsets[3].Val(),
				broker.StateCompleted: c.zsets[4].Val(),
			},
		}
	}
	return out, nil
}

var stateKey = map[broker.State]int{
	broker.StatePending: kPending, broker.StateScheduled: kScheduled, broker.StateActive: kActive,
	broker.StateRetry: kRetry, broker.StateDead: kDead, broker.StateCompleted: kCompleted,
}

// ListTasks lists a queue's tasks in one state, oldest first: pending in
// FIFO order, the others by their sorted-set score (process time, lease
// expiry, time of death, retention expiry).
func (b *Broker) ListTasks(ctx context.Context, p broker.ListParams) ([]*broker.Task, error) {
	queue, state, offset, limit := p.Queue, p.State, p.Offset, p.Limit
	if err := b.check(); err != nil {
		return nil, err
	}
	if err := validQueue(queue); err != nil {
		return nil, err
	}
	ki, ok := stateKey[state]
	if !ok {
		return nil, fmt.Errorf("%w: unknown state %q", errInvalidArg, state)
	}
	if offset < 0 {
		offset = 0
	}
	if limit <= 0 {
		limit = broker.DefaultListLimit
	}
	res, err := scriptList.Run(ctx, b.rdb, b.keysFor(scriptList, queue), ki+1, offset, limit).Slice()
	if err != nil {
		return nil, wrapErr("list tasks", err)
	}
	out := make([]*broker.Task, 0, len(res)/5)
	for i := 0; i+4 < len(res); i += 5 {
		id, _ := res[i].(string)
		if res[i+1] == nil {
			continue // an ID without record: skip rather than fail the listing
		}
		t, err := decodeTask(queue, id, res[i+1], res[i+2], res[i+3], res[i+4])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// DeleteTask deletes a task that is not active.
func (b *Broker) DeleteTask(ctx context.Context, queue, id string) error {
	return b.oneTask(ctx, "delete task", scriptDelete, queue, id)
}

// RetryTask moves a dead, retry or scheduled task to pending now.
func (b *Broker) RetryTask(ctx context.Context, queue, id string) error {
	return b.oneTask(ctx, "retry task", scriptRetry, queue, id)
}

// oneTask runs a single-task script whose reply is 0, -1 (not found) or -2
// (invalid state). With queue "" the task is first looked up.
func (b *Broker) oneTask(ctx context.Context, op string, s *script, queue, id string) error {
	if err := b.check(); err != nil {
		return err
	}
	if queue == "" {
		t, err := b.GetTask(ctx, "", id)
		if err != nil {
			return err
		}
		queue = t.Queue
	}
	if err := validQueue(queue); err != nil {
		return err
	}
	r, err := s.Run(ctx, b.rdb, b.keysFor(s, queue), id).Int64()
	if err != nil {
		return wrapErr(op, err)
	}
	switch r {
	case -1:
		return fmt.Errorf("%w: %s in queue %s", broker.ErrTaskNotFound, id, queue)
	case -2:
		return fmt.Errorf("%s %s in queue %s: %w", op, id, queue, broker.ErrInvalidState)
	}
	return nil
}

// Pause stops Fetch from taking tasks of queue.
func (b *Broker) Pause(ctx context.Context, queue string) error {
	if err := b.check(); err != nil {
		return err
	}
	if err := validQueue(queue); err != nil {
		return err
	}
	_, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.SAdd(ctx, queuesKey(b.cfg.Prefix), queue)
		p.Set(ctx, b.queueKeys(queue)[kPaused], "1", 0)
		return nil
	})
	if err != nil {
		return wrapErr("pause", err)
	}
	return nil
}

// Resume undoes Pause and wakes idle workers if tasks wait.
func (b *Broker) Resume(ctx context.Context, queue string) error {
	if err := b.check(); err != nil {
		return err
	}
	if err := validQueue(queue); err != nil {
		return err
	}
	if err := scriptResume.Run(ctx, b.rdb, b.keysFor(scriptResume, queue)).Err(); err != nil && !errors.Is(err, goredis.Nil) {
		return wrapErr("resume", err)
	}
	return nil
}
