package brokertest

import (
	"errors"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// WithoutOptional wraps b so that it has the core roles only: every
// optional call fails with broker.ErrUnsupported (broker.Unsupported) and
// Capabilities is empty. It stands for a third-party broker that
// implements the minimum, in tests of code that must cope with one.
func WithoutOptional(b broker.Broker) broker.Broker {
	return minimal{Core: b}
}

type minimal struct {
	broker.Core
	broker.Unsupported
}

// wantUnsupported checks that every call of the roles in caps fails with
// broker.ErrUnsupported and does nothing.
func (s *suite) wantUnsupported(caps broker.Capability) {
	s.t.Helper()
	b, ctx := s.b, s.ctx
	task := newTask("q", "u")
	calls := []struct {
		cap  broker.Capability
		name string
		call func() error
	}{
		{broker.CapUnique, "EnqueueUnique", func() error {
			return b.EnqueueUnique(ctx, broker.UniqueParams{Task: task, Key: "k", TTL: time.Hour})
		}},
		{broker.CapCancel, "CancelTask", func() error { _, err := b.CancelTask(ctx, "q", "u"); return err }},
		{broker.CapTicks, "ClaimTick", func() error {
			_, err := b.ClaimTick(ctx, broker.ClaimParams{Key: "e", Tick: s.clock.Now(), TTL: time.Hour, Task: task})
			return err
		}},
		{broker.CapTicks, "LastTick", func() error { _, err := b.LastTick(ctx, "q", "e"); return err }},
		{broker.CapLimits, "AcquireSlot", func() error {
			_, err := b.AcquireSlot(ctx, broker.SlotParams{Name: "n", Holder: "h", Limit: 1, Lease: time.Minute})
			return err
		}},
		{broker.CapLimits, "ExtendSlots", func() error {
			return b.ExtendSlots(ctx, broker.ExtendSlotsParams{Name: "n", Holders: []string{"h"}, Lease: time.Minute})
		}},
		{broker.CapLimits, "ReleaseSlot", func() error { return b.ReleaseSlot(ctx, "n", "h") }},
		{broker.CapLimits, "TakeToken", func() error {
			_, err := b.TakeToken(ctx, broker.TokenParams{Name: "n", Rate: 1, Burst: 1})
			return err
		}},
		{broker.CapWorkers, "Heartbeat", func() error { return b.Heartbeat(ctx, broker.WorkerInfo{ID: "w"}, time.Minute) }},
		{broker.CapWorkers, "ListWorkers", func() error { _, err := b.ListWorkers(ctx); return err }},
		{broker.CapWorkers, "RemoveWorker", func() error { return b.RemoveWorker(ctx, "w") }},
		{broker.CapSchedules, "PublishEntries", func() error { return b.PublishEntries(ctx, "s", nil, time.Minute) }},
		{broker.CapSchedules, "ListEntries", func() error { _, err := b.ListEntries(ctx); return err }},
		{broker.CapSchedules, "RemoveEntries", func() error { return b.RemoveEntries(ctx, "s") }},
		{broker.CapStats, "Throughput", func() error {
			_, err := b.Throughput(ctx, broker.ThroughputParams{Queue: "q", From: s.clock.Now(), To: s.clock.Now().Add(time.Second)})
			return err
		}},
		{broker.CapWorkflows, "GetWorkflow", func() error { _, err := b.GetWorkflow(ctx, "wf"); return err }},
		{broker.CapWorkflows, "AwaitWorkflow", func() error { _, err := b.AwaitWorkflow(ctx, "wf"); return err }},
		{broker.CapWorkflows, "GetWorkflowOutcome", func() error { _, err := b.GetWorkflowOutcome(ctx, "wf"); return err }},
		{broker.CapWorkflows, "AwaitWorkflowOutcome", func() error { _, err := b.AwaitWorkflowOutcome(ctx, "wf"); return err }},
		{broker.CapWorkflows, "CancelWorkflow", func() error { return b.CancelWorkflow(ctx, "wf") }},
		{broker.CapWorkflows, "ListWorkflows", func() error { _, err := b.ListWorkflows(ctx, broker.WorkflowListParams{}); return err }},
		{broker.CapShards, "SetShards", func() error { return b.SetShards(ctx, broker.ShardParams{Queue: "q", Shards: 2}) }},
	}
	n := 0
	for _, c := range calls {
		if caps&c.cap == 0 {
			continue
		}
		n++
		if err := c.call(); !errors.Is(err, broker.ErrUnsupported) {
			s.t.Fatalf("%T lacks %v but %s = %v, want ErrUnsupported", b, c.cap, c.name, err)
		}
	}
	if n == 0 {
		s.t.Fatalf("no call checks capability %v", caps)
	}
	// Nothing was stored on the way.
	s.wantNotFound("q", "u")
}
