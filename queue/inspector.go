package queue

import (
	"context"
	"fmt"
	"sort"

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
// all from offset.
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
