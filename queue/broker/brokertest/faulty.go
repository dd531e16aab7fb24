package brokertest

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// ErrInjected is the error Faulty returns by default.
var ErrInjected = errors.New("brokertest: injected broker fault")

// Faulty wraps a Broker and fails calls on demand, to test how callers
// survive an unreachable broker. Methods are named as in broker.Broker
// ("Fetch", "Complete", ...). Close always reaches the wrapped broker.
type Faulty struct {
	broker.Broker

	mu      sync.Mutex
	downErr error          // every call fails while set
	next    map[string]int // fail the next n calls of a method
	nextErr map[string]error
	calls   map[string]int
	fails   map[string]int
}

var _ broker.Broker = (*Faulty)(nil)

// NewFaulty wraps b; it passes every call through until told otherwise.
func NewFaulty(b broker.Broker) *Faulty {
	return &Faulty{Broker: b, next: map[string]int{}, nextErr: map[string]error{}, calls: map[string]int{}, fails: map[string]int{}}
}

// SetDown makes every call fail with err (ErrInjected if nil) until SetUp.
func (f *Faulty) SetDown(err error) {
	if err == nil {
		err = ErrInjected
	}
	f.mu.Lock()
	f.downErr = err
	f.mu.Unlock()
}

// SetUp ends SetDown.
func (f *Faulty) SetUp() {
	f.mu.Lock()
	f.downErr = nil
	f.mu.Unlock()
}

// FailNext makes the next n calls of method fail with err (ErrInjected if nil).
func (f *Faulty) FailNext(method string, n int, err error) {
	if err == nil {
		err = ErrInjected
	}
	f.mu.Lock()
	f.next[method] += n
	f.nextErr[method] = err
	f.mu.Unlock()
}

// Calls reports how many times method was called, failed or not.
func (f *Faulty) Calls(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// Failures reports how many calls of method were failed on purpose.
func (f *Faulty) Failures(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fails[method]
}

func (f *Faulty) fault(method string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[method]++
	if f.downErr != nil {
		f.fails[method]++
		return f.downErr
	}
	if f.next[method] > 0 {
		f.next[method]--
		f.fails[method]++
		return f.nextErr[method]
	}
	return nil
}

func (f *Faulty) Enqueue(ctx context.Context, tasks ...*broker.Task) error {
	if err := f.fault("Enqueue"); err != nil {
		return err
	}
	return f.Broker.Enqueue(ctx, tasks...)
}

func (f *Faulty) Fetch(ctx context.Context, queues []string, max int, lease time.Duration, workerID string) ([]*broker.Task, error) {
	if err := f.fault("Fetch"); err != nil {
		return nil, err
	}
	return f.Broker.Fetch(ctx, queues, max, lease, workerID)
}

func (f *Faulty) WaitReady(ctx context.Context, queues []string, max time.Duration) error {
	if err := f.fault("WaitReady"); err != nil {
		return err
	}
	return f.Broker.WaitReady(ctx, queues, max)
}

func (f *Faulty) ExtendLeases(ctx context.Context, leases []broker.LeaseRef, lease time.Duration) ([]broker.LeaseRef, error) {
	if err := f.fault("ExtendLeases"); err != nil {
		return nil, err
	}
	return f.Broker.ExtendLeases(ctx, leases, lease)
}

func (f *Faulty) Complete(ctx context.Context, acks ...broker.Ack) error {
	if err := f.fault("Complete"); err != nil {
		return err
	}
	return f.Broker.Complete(ctx, acks...)
}

func (f *Faulty) Fail(ctx context.Context, failures ...broker.Failure) error {
	if err := f.fault("Fail"); err != nil {
		return err
	}
	return f.Broker.Fail(ctx, failures...)
}

func (f *Faulty) Requeue(ctx context.Context, leases ...broker.LeaseRef) error {
	if err := f.fault("Requeue"); err != nil {
		return err
	}
	return f.Broker.Requeue(ctx, leases...)
}

func (f *Faulty) Forward(ctx context.Context) (int, error) {
	if err := f.fault("Forward"); err != nil {
		return 0, err
	}
	return f.Broker.Forward(ctx)
}

func (f *Faulty) Recover(ctx context.Context) (int, error) {
	if err := f.fault("Recover"); err != nil {
		return 0, err
	}
	return f.Broker.Recover(ctx)
}

func (f *Faulty) Cleanup(ctx context.Context) (int, error) {
	if err := f.fault("Cleanup"); err != nil {
		return 0, err
	}
	return f.Broker.Cleanup(ctx)
}

func (f *Faulty) GetTask(ctx context.Context, queue, id string) (*broker.Task, error) {
	if err := f.fault("GetTask"); err != nil {
		return nil, err
	}
	return f.Broker.GetTask(ctx, queue, id)
}

func (f *Faulty) AwaitTask(ctx context.Context, queue, id string) (*broker.Task, error) {
	if err := f.fault("AwaitTask"); err != nil {
		return nil, err
	}
	return f.Broker.AwaitTask(ctx, queue, id)
}

func (f *Faulty) Queues(ctx context.Context) ([]broker.QueueInfo, error) {
	if err := f.fault("Queues"); err != nil {
		return nil, err
	}
	return f.Broker.Queues(ctx)
}

func (f *Faulty) ListTasks(ctx context.Context, queue string, state broker.State, offset, limit int) ([]*broker.Task, error) {
	if err := f.fault("ListTasks"); err != nil {
		return nil, err
	}
	return f.Broker.ListTasks(ctx, queue, state, offset, limit)
}

func (f *Faulty) DeleteTask(ctx context.Context, queue, id string) error {
	if err := f.fault("DeleteTask"); err != nil {
		return err
	}
	return f.Broker.DeleteTask(ctx, queue, id)
}

func (f *Faulty) RetryTask(ctx context.Context, queue, id string) error {
	if err := f.fault("RetryTask"); err != nil {
		return err
	}
	return f.Broker.RetryTask(ctx, queue, id)
}

func (f *Faulty) Pause(ctx context.Context, queue string) error {
	if err := f.fault("Pause"); err != nil {
		return err
	}
	return f.Broker.Pause(ctx, queue)
}

func (f *Faulty) Resume(ctx context.Context, queue string) error {
	if err := f.fault("Resume"); err != nil {
		return err
	}
	return f.Broker.Resume(ctx, queue)
}
