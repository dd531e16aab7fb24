package broker

import (
	"context"
	"fmt"
	"time"
)

// Unsupported answers ErrUnsupported for every optional call, and no
// capabilities. A broker that lacks some optional roles embeds it and
// implements Core plus the roles it has, overriding Capabilities to list
// them:
//
//	type Broker struct {
//		broker.Unsupported // no unique tasks, limits, registries, stats
//		...
//	}
//
//	func (b *Broker) Capabilities() broker.Capability { return broker.CapCancel }
//
// The conformance suite checks both sides: the cases of the roles listed
// run, and every call of the others must fail with ErrUnsupported.
type Unsupported struct{}

var _ Optional = Unsupported{}

func unsupported(call string) error { return fmt.Errorf("broker: %s: %w", call, ErrUnsupported) }

func (Unsupported) Capabilities() Capability { return 0 }

func (Unsupported) EnqueueUnique(context.Context, UniqueParams) error {
	return unsupported("EnqueueUnique")
}

func (Unsupported) CancelTask(context.Context, string, string) (State, error) {
	return "", unsupported("CancelTask")
}

func (Unsupported) ClaimTick(context.Context, ClaimParams) (bool, error) {
	return false, unsupported("ClaimTick")
}

func (Unsupported) LastTick(context.Context, string, string) (time.Time, error) {
	return time.Time{}, unsupported("LastTick")
}

func (Unsupported) AcquireSlot(context.Context, SlotParams) (bool, error) {
	return false, unsupported("AcquireSlot")
}

func (Unsupported) ExtendSlots(context.Context, ExtendSlotsParams) error {
	return unsupported("ExtendSlots")
}

func (Unsupported) ReleaseSlot(context.Context, string, string) error {
	return unsupported("ReleaseSlot")
}

func (Unsupported) TakeToken(context.Context, TokenParams) (time.Duration, error) {
	return 0, unsupported("TakeToken")
}

func (Unsupported) Heartbeat(context.Context, WorkerInfo, time.Duration) error {
	return unsupported("Heartbeat")
}

func (Unsupported) ListWorkers(context.Context) ([]WorkerInfo, error) {
	return nil, unsupported("ListWorkers")
}

func (Unsupported) RemoveWorker(context.Context, string) error { return unsupported("RemoveWorker") }

func (Unsupported) PublishEntries(context.Context, string, []ScheduleEntry, time.Duration) error {
	return unsupported("PublishEntries")
}

func (Unsupported) ListEntries(context.Context) ([]ScheduleEntry, error) {
	return nil, unsupported("ListEntries")
}

func (Unsupported) RemoveEntries(context.Context, string) error { return unsupported("RemoveEntries") }

func (Unsupported) Throughput(context.Context, ThroughputParams) ([]Point, error) {
	return nil, unsupported("Throughput")
}

func (Unsupported) SetShards(context.Context, ShardParams) error { return unsupported("SetShards") }

func (Unsupported) CreateWorkflow(context.Context, *Workflow) error {
	return unsupported("CreateWorkflow")
}

func (Unsupported) GetWorkflow(context.Context, string) (*Workflow, error) {
	return nil, unsupported("GetWorkflow")
}

func (Unsupported) AwaitWorkflow(context.Context, string) (*Workflow, error) {
	return nil, unsupported("AwaitWorkflow")
}

func (Unsupported) GetWorkflowOutcome(context.Context, string) (*Workflow, error) {
	return nil, unsupported("GetWorkflowOutcome")
}

func (Unsupported) AwaitWorkflowOutcome(context.Context, string) (*Workflow, error) {
	return nil, unsupported("AwaitWorkflowOutcome")
}

func (Unsupported) CancelWorkflow(context.Context, string) error {
	return unsupported("CancelWorkflow")
}

func (Unsupported) ListWorkflows(context.Context, WorkflowListParams) (WorkflowPage, error) {
	return WorkflowPage{}, unsupported("ListWorkflows")
}
