package queue

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Inspector looks at and manages queues and tasks: what the CLI's
// "conq queue" commands are built on. It is a thin layer over the broker
// that validates arguments and names the task or queue in every error.
type Inspector struct{ b broker.Broker }

// NewInspector returns an inspector of b.
func NewInspector(b broker.Broker) *Inspector { return &Inspector{b: b} }

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
	ts, err := i.b.ListTasks(ctx, queue, state, offset, max(limit, 0))
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
	return validToken("ID", id, maxID)
}

// CancelTask cancels a task and returns the state it was in. A pending,
// scheduled or retrying task goes to dead at once, with an error of kind
// "cancelled". A running task is flagged: its worker's next lease renewal
// sees the flag and cancels the handler's ctx (cause ErrTaskCancelled),
// and the attempt ends dead with kind "cancelled" — within the worker's
// ExtendInterval. Dead and completed tasks give ErrInvalidState. The broker
// must implement broker.Canceler.
func (i *Inspector) CancelTask(ctx context.Context, queue, id string) (State, error) {
	if err := i.check(queue, id); err != nil {
		return "", err
	}
	c, ok := i.b.(broker.Canceler)
	if !ok {
		return "", unsupported("cancelling tasks", "broker.Canceler", i.b)
	}
	st, err := c.CancelTask(ctx, queue, id)
	if err != nil {
		return st, fmt.Errorf("queue: cancel task %s: %w", id, err)
	}
	return st, nil
}

// WorkerInfo is a live worker's record (see WorkerConfig.HeartbeatInterval).
type WorkerInfo = broker.WorkerInfo

// RunningTask is a task a worker is running.
type RunningTask = broker.RunningTask

// Workers lists the live workers, by ID. The broker must implement
// broker.WorkerRegistry.
func (i *Inspector) Workers(ctx context.Context) ([]WorkerInfo, error) {
	r, ok := i.b.(broker.WorkerRegistry)
	if !ok {
		return nil, unsupported("listing workers", "broker.WorkerRegistry", i.b)
	}
	ws, err := r.ListWorkers(ctx)
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
// (see SchedulerConfig.PublishInterval). The broker must implement
// broker.ScheduleRegistry.
func (i *Inspector) Schedules(ctx context.Context) ([]ScheduleInfo, error) {
	r, ok := i.b.(broker.ScheduleRegistry)
	if !ok {
		return nil, unsupported("listing schedules", "broker.ScheduleRegistry", i.b)
	}
	es, err := r.ListEntries(ctx)
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
// broker keeps these counters for broker.StatsWindow (70 minutes); it
// must implement broker.StatsReader.
func (i *Inspector) Throughput(ctx context.Context, queue string, from, to time.Time) ([]Point, error) {
	sr, ok := i.b.(broker.StatsReader)
	if !ok {
		return nil, unsupported("throughput counters", "broker.StatsReader", i.b)
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
		ps, err := sr.Throughput(ctx, q, start, end)
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

func unsupported(what, iface string, b broker.Broker) error {
	return fmt.Errorf("queue: %s needs a broker implementing %s; %T does not: %w", what, iface, b, ErrUnsupported)
}
