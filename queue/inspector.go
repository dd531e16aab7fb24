package queue

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/internal/check"
)

// Inspector looks at and manages queues and tasks: what the CLI's
// "conq queue" commands are built on. It is a thin layer over the broker
// that validates arguments and names the task or queue in every error.
type Inspector struct{ b Broker }

// NewInspector returns an inspector of b.
func NewInspector(b Broker) *Inspector { return &Inspector{b: b} }

// Queues lists every known queue, by name, with counts per state.
func (i *Inspector) Queues(ctx context.Context) ([]QueueInfo, error) {
	qs, err := i.b.Queues(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: list queues: %w", err)
	}
	for k := range qs {
		if qs[k].Counts == nil {
			qs[k].Counts = map[State]int64{}
		}
		for _, st := range broker.States {
			if _, ok := qs[k].Counts[st]; !ok {
				qs[k].Counts[st] = 0
			}
		}
	}
	sort.Slice(qs, func(a, b int) bool { return qs[a].Name < qs[b].Name })
	return qs, nil
}

// Queue returns one queue's info, or ErrQueueNotFound.
func (i *Inspector) Queue(ctx context.Context, name string) (QueueInfo, error) {
	if err := validQueueName(name); err != nil {
		return QueueInfo{}, err
	}
	qs, err := i.Queues(ctx)
	if err != nil {
		return QueueInfo{}, err
	}
	for _, q := range qs {
		if q.Name == name {
			return q, nil
		}
	}
	return QueueInfo{}, fmt.Errorf("queue: queue %q: %w", name, ErrQueueNotFound)
}

// Tasks lists the tasks of queue in state, oldest first; limit <= 0 means
// a page of broker.DefaultListLimit (100).
func (i *Inspector) Tasks(ctx context.Context, queue string, state State, offset, limit int) ([]*TaskInfo, error) {
	if err := validQueueName(queue); err != nil {
		return nil, err
	}
	if _, err := broker.ParseState(string(state)); err != nil {
		return nil, fmt.Errorf("queue: %w: %w", err, ErrInvalidOption)
	}
	if offset < 0 {
		return nil, invalid("negative offset %d", offset)
	}
	ts, err := i.b.ListTasks(ctx, broker.ListParams{Queue: queue, State: state, Offset: offset, Limit: max(limit, 0)})
	if err != nil {
		return nil, fmt.Errorf("queue: list %s tasks of queue %q: %w", state, queue, err)
	}
	return ts, nil
}

// Task returns a task; queue "" searches every queue.
func (i *Inspector) Task(ctx context.Context, queue, id string) (*TaskInfo, error) {
	if err := i.check(queue, id); err != nil {
		return nil, err
	}
	t, err := i.b.GetTask(ctx, queue, id)
	if err != nil {
		return nil, fmt.Errorf("queue: show task %s: %w", id, err)
	}
	return t, nil
}

// Await waits until the task is finished (completed or dead) and returns
// its full record, or ctx's error if ctx ends first (the task carries on);
// queue "" searches every queue. A completed task is only kept if it was
// enqueued with Retention: otherwise Await reports ErrTaskNotFound once it
// is done. Client.Result is Await reduced to the result.
func (i *Inspector) Await(ctx context.Context, queue, id string) (*TaskInfo, error) {
	if err := i.check(queue, id); err != nil {
		return nil, err
	}
	return await(ctx, i.b, queue, id, "await")
}

// AwaitEach is Await for many tasks of queue ("" any): fn(i, task, err)
// is called once for each ids[i] as it finishes, in the order they
// finish, one call at a time (err as Await's: a missing task wraps
// ErrTaskNotFound). It returns nil once every ID is answered, or ctx's
// error if ctx ends first, the rest unanswered. The broker waits for all
// of them in one registration (broker.AwaitTasks), not a goroutine each.
func (i *Inspector) AwaitEach(ctx context.Context, queue string, ids []string, fn func(i int, t *TaskInfo, err error)) error {
	if queue != "" {
		if err := validQueueName(queue); err != nil {
			return err
		}
	}
	valid := make([]string, 0, len(ids))
	index := make([]int, 0, len(ids))
	for k, id := range ids {
		if err := i.check(queue, id); err != nil {
			fn(k, nil, err)
			continue
		}
		valid = append(valid, id)
		index = append(index, k)
	}
	if len(valid) == 0 {
		return nil
	}
	return i.b.AwaitTasks(ctx, broker.AwaitParams{Queue: queue, IDs: valid}, func(j int, t *TaskInfo, err error) {
		if err != nil {
			err = awaitErr(valid[j], "await", err)
		}
		fn(index[j], t, err)
	})
}

// awaitErr names the task and the call in an AwaitTask error.
func awaitErr(id, what string, err error) error {
	if errors.Is(err, ErrTaskNotFound) {
		return fmt.Errorf("queue: %s task %s: %w (never enqueued, deleted, or completed without Retention)", what, id, err)
	}
	return fmt.Errorf("queue: %s task %s: %w", what, id, err)
}

// await is AwaitTask with the error naming the task and the call.
func await(ctx context.Context, b Broker, queue, id, what string) (*TaskInfo, error) {
	t, err := b.AwaitTask(ctx, queue, id)
	if err != nil {
		return nil, awaitErr(id, what, err)
	}
	return t, nil
}

// KeepsThroughput reports whether the broker counts completed and failed
// tasks per second, so that Throughput answers (both built-in brokers do).
func (i *Inspector) KeepsThroughput() bool { return i.b.Capabilities().Has(broker.CapStats) }

// RetryTask makes a dead, retrying or scheduled task pending now. Its error
// history is kept; a dead task gets one more attempt.
func (i *Inspector) RetryTask(ctx context.Context, queue, id string) error {
	if err := i.check(queue, id); err != nil {
		return err
	}
	if err := i.b.RetryTask(ctx, queue, id); err != nil {
		return fmt.Errorf("queue: retry task %s: %w", id, err)
	}
	return nil
}

// DeleteTask deletes a task that is not running (ErrInvalidState if it is).
func (i *Inspector) DeleteTask(ctx context.Context, queue, id string) error {
	if err := i.check(queue, id); err != nil {
		return err
	}
	if err := i.b.DeleteTask(ctx, queue, id); err != nil {
		return fmt.Errorf("queue: delete task %s: %w", id, err)
	}
	return nil
}

// PauseQueue stops workers from taking tasks of queue; enqueueing goes on.
func (i *Inspector) PauseQueue(ctx context.Context, queue string) error {
	if err := validQueueName(queue); err != nil {
		return err
	}
	if err := i.b.Pause(ctx, queue); err != nil {
		return fmt.Errorf("queue: pause queue %q: %w", queue, err)
	}
	return nil
}

// SetShards spreads queue over n shards, each in its own Redis Cluster
// slot, so that one queue can use every node (broker.Sharder: the Redis
// broker; others fail with ErrUnsupported). The count only grows: n below
// the queue's count fails with ErrInvalidOption. FIFO order then holds per
// shard only. Workers and producers elsewhere follow within seconds.
func (i *Inspector) SetShards(ctx context.Context, queue string, n int) error {
	if err := validQueueName(queue); err != nil {
		return err
	}
	if n < 1 || n > broker.MaxShards {
		return invalid("%d shards for queue %q: want 1..%d", n, queue, broker.MaxShards)
	}
	if !i.b.Capabilities().Has(broker.CapShards) {
		return fmt.Errorf("queue: set shards of queue %q: %w", queue, ErrUnsupported)
	}
	q, err := i.Queue(ctx, queue)
	if err == nil && n < max(1, len(q.Shards)) {
		return invalid("queue %q has %d shards: the count only grows (to shrink, drain the queue; see docs/scaling.md)", queue, len(q.Shards))
	}
	if err != nil && !errors.Is(err, ErrQueueNotFound) {
		return err
	}
	if err := i.b.SetShards(ctx, broker.ShardParams{Queue: queue, Shards: n}); err != nil {
		return fmt.Errorf("queue: set shards of queue %q: %w", queue, err)
	}
	return nil
}

// ResumeQueue undoes PauseQueue.
func (i *Inspector) ResumeQueue(ctx context.Context, queue string) error {
	if err := validQueueName(queue); err != nil {
		return err
	}
	if err := i.b.Resume(ctx, queue); err != nil {
		return fmt.Errorf("queue: resume queue %q: %w", queue, err)
	}
	return nil
}

func (i *Inspector) check(queue, id string) error {
	if queue != "" {
		if err := validQueueName(queue); err != nil {
			return err
		}
	}
	return validToken("ID", id, check.MaxID)
}

// CancelTask cancels a task and returns the state it was in. A pending,
// scheduled or retrying task goes to dead at once, with an error of kind
// "cancelled". A running task is flagged: its worker's next lease renewal
// sees the flag and cancels the handler's ctx (cause ErrTaskCancelled),
// and the attempt ends dead with kind "cancelled" — within the worker's
// ExtendInterval. Dead and completed tasks give ErrInvalidState; a broker
// that cannot cancel, ErrUnsupported.
func (i *Inspector) CancelTask(ctx context.Context, queue, id string) (State, error) {
	if err := i.check(queue, id); err != nil {
		return "", err
	}
	st, err := i.b.CancelTask(ctx, queue, id)
	if err != nil {
		return st, fmt.Errorf("queue: cancel task %s: %w", id, err)
	}
	return st, nil
}

// WorkerInfo is a live worker's record (see WorkerConfig.HeartbeatInterval).
type WorkerInfo = broker.WorkerInfo

// RunningTask is a task a worker is running.
type RunningTask = broker.RunningTask

// Workers lists the live workers, by ID (ErrUnsupported if the broker
// keeps no registry).
func (i *Inspector) Workers(ctx context.Context) ([]WorkerInfo, error) {
	ws, err := i.b.ListWorkers(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: list workers: %w", err)
	}
	return ws, nil
}

// ScheduleInfo is a periodic entry as the running schedulers publish it.
// Entries registered under one name by several schedulers share their
// ticks and are shown once: Schedulers names them, Fired is their sum.
type ScheduleInfo struct {
	Name       string    `json:"name"`
	Spec       string    `json:"spec"`
	Kind       string    `json:"kind"`
	Queue      string    `json:"queue"`
	Next       time.Time `json:"next"`
	Prev       time.Time `json:"prev,omitzero"`
	Fired      int64     `json:"fired"`
	Error      string    `json:"error,omitzero"`
	Schedulers []string  `json:"schedulers"`
}

// Schedules lists the periodic entries of the running schedulers, by name
// (see SchedulerConfig.PublishInterval); ErrUnsupported if the broker
// keeps no registry.
func (i *Inspector) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	es, err := i.b.ListEntries(ctx)
	if err != nil {
		return nil, fmt.Errorf("queue: list schedules: %w", err)
	}
	broker.SortEntries(es)
	out := []ScheduleInfo{}
	for _, e := range es {
		if n := len(out); n > 0 && out[n-1].Name == e.Name {
			s := &out[n-1]
			if !e.Next.IsZero() && (s.Next.IsZero() || e.Next.Before(s.Next)) {
				s.Next = e.Next
			}
			if e.Prev.After(s.Prev) {
				s.Prev = e.Prev
			}
			s.Fired += e.Fired
			if e.Error != "" {
				s.Error = e.Error
			}
			s.Schedulers = append(s.Schedulers, e.SchedulerID)
			continue
		}
		out = append(out, ScheduleInfo{Name: e.Name, Spec: e.Spec, Kind: e.Kind, Queue: e.Queue, Next: e.Next, Prev: e.Prev,
			Fired: e.Fired, Error: e.Error, Schedulers: []string{e.SchedulerID}})
	}
	return out, nil
}

// Point is one second of throughput.
type Point = broker.Point

// Throughput returns, per second of [from, to), the tasks completed and
// the attempts failed in queue, or in every queue if queue is "". The
// broker keeps these counters for 70 minutes (see KeepsThroughput).
func (i *Inspector) Throughput(ctx context.Context, queue string, from, to time.Time) ([]Point, error) {
	if !i.KeepsThroughput() {
		return nil, fmt.Errorf("queue: throughput counters: %T keeps none: %w", i.b, ErrUnsupported)
	}
	var queues []string
	if queue != "" {
		if err := validQueueName(queue); err != nil {
			return nil, err
		}
		queues = []string{queue}
	} else {
		qs, err := i.b.Queues(ctx)
		if err != nil {
			return nil, fmt.Errorf("queue: throughput: %w", err)
		}
		for _, q := range qs {
			queues = append(queues, q.Name)
		}
	}
	start, end := from.Truncate(time.Second), to.Truncate(time.Second)
	n := max(int(end.Sub(start)/time.Second), 0)
	out := make([]Point, n)
	for k := range out {
		out[k].At = start.Add(time.Duration(k) * time.Second)
	}
	for _, q := range queues {
		ps, err := i.b.Throughput(ctx, broker.ThroughputParams{Queue: q, From: start, To: end})
		if err != nil {
			return nil, fmt.Errorf("queue: throughput of queue %q: %w", q, err)
		}
		for _, p := range ps {
			if k := int(p.At.Sub(start) / time.Second); k >= 0 && k < n {
				out[k].Processed += p.Processed
				out[k].Failed += p.Failed
			}
		}
	}
	return out, nil
}
