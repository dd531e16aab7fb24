package redis

import (
	"context"

	"github.com/conqhq/conq/queue/broker"
)

// The Redis broker does not implement Workflower yet (CapWorkflows is not
// in its Capabilities); these answer broker.ErrUnsupported.

func (b *Broker) CreateWorkflow(ctx context.Context, w *broker.Workflow) error {
	return broker.Unsupported{}.CreateWorkflow(ctx, w)
}

func (b *Broker) GetWorkflow(ctx context.Context, id string) (*broker.Workflow, error) {
	return broker.Unsupported{}.GetWorkflow(ctx, id)
}

func (b *Broker) AwaitWorkflow(ctx context.Context, id string) (*broker.Workflow, error) {
	return broker.Unsupported{}.AwaitWorkflow(ctx, id)
}

func (b *Broker) CancelWorkflow(ctx context.Context, id string) error {
	return broker.Unsupported{}.CancelWorkflow(ctx, id)
}
