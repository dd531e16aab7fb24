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
// ("Fetch", "Complete", ...). It embeds the whole contract, so nothing the
// wrapped broker does is hidden, and it overrides every call (TestFaulty
// checks it) so a fault can be injected on any of them. Close, Clock and
// Capabilities always reach the wrapped broker.
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

func (f *Faulty) Fetch(ctx context.Context, p broker.FetchParams) ([]*broker.Task, error) {
	if err := f.fault("Fetch"); err != nil {
		return nil, err
	}
	return f.Broker.Fetch(ctx, p)
}

func (f *Faulty) WaitReady(ctx context.Context, p broker.WaitParams) error {
	if err := f.fault("WaitReady"); err != nil {
		return err
	}
	return f.Broker.WaitReady(ctx, p)
}

func (f *Faulty) ExtendLeases(ctx context.Context, p broker.ExtendParams) (broker.ExtendResult, error) {
	if err := f.fault("ExtendLeases"); err != nil {
		return broker.ExtendResult{}, err
	}
	return f.Broker.ExtendLeases(ctx, p)
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

func (f *Faulty) AwaitTasks(ctx context.Context, p broker.AwaitParams, done func(int, *broker.Task, error)) error {
	if err := f.fault("AwaitTasks"); err != nil {
		return err
	}
	return f.Broker.AwaitTasks(ctx, p, done)
}

func (f *Faulty) Queues(ctx context.Context) ([]broker.QueueInfo, error) {
	if err := f.fault("Queues"); err != nil {
		return nil, err
	}
	return f.Broker.Queues(ctx)
}

func (f *Faulty) ListTasks(ctx context.Context, p broker.ListParams) ([]*broker.Task, error) {
	if err := f.fault("ListTasks"); err != nil {
		return nil, err
	}
	return f.Broker.ListTasks(ctx, p)
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

func (f *Faulty) EnqueueUnique(ctx context.Context, p broker.UniqueParams) error {
	if err := f.fault("EnqueueUnique"); err != nil {
		return err
	}
	return f.Broker.EnqueueUnique(ctx, p)
}

func (f *Faulty) CancelTask(ctx context.Context, queue, id string) (broker.State, error) {
	if err := f.fault("CancelTask"); err != nil {
		return "", err
	}
	return f.Broker.CancelTask(ctx, queue, id)
}

func (f *Faulty) ClaimTick(ctx context.Context, p broker.ClaimParams) (bool, error) {
	if err := f.fault("ClaimTick"); err != nil {
		return false, err
	}
	return f.Broker.ClaimTick(ctx, p)
}

func (f *Faulty) LastTick(ctx context.Context, queue, key string) (time.Time, error) {
	if err := f.fault("LastTick"); err != nil {
		return time.Time{}, err
	}
	return f.Broker.LastTick(ctx, queue, key)
}

func (f *Faulty) AcquireSlot(ctx context.Context, p broker.SlotParams) (bool, error) {
	if err := f.fault("AcquireSlot"); err != nil {
		return false, err
	}
	return f.Broker.AcquireSlot(ctx, p)
}

func (f *Faulty) ExtendSlots(ctx context.Context, p broker.ExtendSlotsParams) error {
	if err := f.fault("ExtendSlots"); err != nil {
		return err
	}
	return f.Broker.ExtendSlots(ctx, p)
}

func (f *Faulty) ReleaseSlot(ctx context.Context, name, holder string) error {
	if err := f.fault("ReleaseSlot"); err != nil {
		return err
	}
	return f.Broker.ReleaseSlot(ctx, name, holder)
}

func (f *Faulty) TakeToken(ctx context.Context, p broker.TokenParams) (time.Duration, error) {
	if err := f.fault("TakeToken"); err != nil {
		return 0, err
	}
	return f.Broker.TakeToken(ctx, p)
}

func (f *Faulty) Heartbeat(ctx context.Context, info broker.WorkerInfo, ttl time.Duration) error {
	if err := f.fault("Heartbeat"); err != nil {
		return err
	}
	return f.Broker.Heartbeat(ctx, info, ttl)
}

func (f *Faulty) ListWorkers(ctx context.Context) ([]broker.WorkerInfo, error) {
	if err := f.fault("ListWorkers"); err != nil {
		return nil, err
	}
	return f.Broker.ListWorkers(ctx)
}

func (f *Faulty) RemoveWorker(ctx context.Context, id string) error {
	if err := f.fault("RemoveWorker"); err != nil {
		return err
	}
	return f.Broker.RemoveWorker(ctx, id)
}

func (f *Faulty) PublishEntries(ctx context.Context, id string, entries []broker.ScheduleEntry, ttl time.Duration) error {
	if err := f.fault("PublishEntries"); err != nil {
		return err
	}
	return f.Broker.PublishEntries(ctx, id, entries, ttl)
}

func (f *Faulty) ListEntries(ctx context.Context) ([]broker.ScheduleEntry, error) {
	if err := f.fault("ListEntries"); err != nil {
		return nil, err
	}
	return f.Broker.ListEntries(ctx)
}

func (f *Faulty) RemoveEntries(ctx context.Context, id string) error {
	if err := f.fault("RemoveEntries"); err != nil {
		return err
	}
	return f.Broker.RemoveEntries(ctx, id)
}

func (f *Faulty) Throughput(ctx context.Context, p broker.ThroughputParams) ([]broker.Point, error) {
	if err := f.fault("Throughput"); err != nil {
		return nil, err
	}
	return f.Broker.Throughput(ctx, p)
}

func (f *Faulty) SetShards(ctx context.Context, p broker.ShardParams) error {
	if err := f.fault("SetShards"); err != nil {
		return err
	}
	return f.Broker.SetShards(ctx, p)
}

func (f *Faulty) CreateWorkflow(ctx context.Context, w *broker.Workflow) error {
	if err := f.fault("CreateWorkflow"); err != nil {
		return err
	}
	return f.Broker.CreateWorkflow(ctx, w)
}

func (f *Faulty) GetWorkflow(ctx context.Context, id string) (*broker.Workflow, error) {
	if err := f.fault("GetWorkflow"); err != nil {
		return nil, err
	}
	return f.Broker.GetWorkflow(ctx, id)
}

func (f *Faulty) AwaitWorkflow(ctx context.Context, id string) (*broker.Workflow, error) {
	if err := f.fault("AwaitWorkflow"); err != nil {
		return nil, err
	}
	return f.Broker.AwaitWorkflow(ctx, id)
}

func (f *Faulty) GetWorkflowOutcome(ctx context.Context, id string) (*broker.Workflow, error) {
	if err := f.fault("GetWorkflowOutcome"); err != nil {
		return nil, err
	}
	return f.Broker.GetWorkflowOutcome(ctx, id)
}

func (f *Faulty) AwaitWorkflowOutcome(ctx context.Context, id string) (*broker.Workflow, error) {
	if err := f.fault("AwaitWorkflowOutcome"); err != nil {
		return nil, err
	}
	return f.Broker.AwaitWorkflowOutcome(ctx, id)
}

func (f *Faulty) CancelWorkflow(ctx context.Context, id string) error {
	if err := f.fault("CancelWorkflow"); err != nil {
		return err
	}
	return f.Broker.CancelWorkflow(ctx, id)
}

func (f *Faulty) ListWorkflows(ctx context.Context, p broker.WorkflowListParams) (broker.WorkflowPage, error) {
	if err := f.fault("ListWorkflows"); err != nil {
		return broker.WorkflowPage{}, err
	}
	return f.Broker.ListWorkflows(ctx, p)
}
