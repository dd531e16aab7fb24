// Package memory is the embedded, in-process Broker: the default when no
// Redis URL is given. Tasks live in this process only and are lost when it
// exits. Every method takes one mutex; the hot paths (Enqueue, Fetch,
// Complete) are O(1) per task, so a single process runs millions of tasks a
// second through it.
//
// # Policy, written down
//
//   - Every state change happens under the one mutex: a call is atomic.
//   - Tasks are copied in and out, never shared with the caller.
//   - Time is Config.Clock's (Broker.Clock), for every component using the
//     broker.
package memory

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// Config configures a Broker. The zero value is ready to use.
type Config struct {
	// Clock tells the broker's time: leases, schedules and retention all
	// follow it. Default: the wall clock.
	Clock broker.Clock

	// MaxWorkflowSteps caps the steps of one workflow: CreateWorkflow
	// refuses a larger one with broker.ErrWorkflowTooLarge. Default
	// broker.DefaultMaxWorkflowSteps (100,000).
	MaxWorkflowSteps int
}

// Broker is the in-memory broker.Broker.
type Broker struct {
	clock    broker.Clock
	closedCh chan struct{}

	mu       sync.Mutex
	closed   bool
	queues   map[string]*queueState
	delayed  timeHeap // scheduled and retry tasks by due time
	expiring timeHeap // completed tasks by end of retention
	active   map[*entry]struct{}
	token    uint64
	seq      uint64
	readyCh  chan struct{} // made while someone waits in WaitReady

	ext extState // unique locks, tick claims, limits (ext.go)
	ops opsState // stats, workers, schedules (ops.go)

	workflows  map[string]*wfState // workflow.go
	wfExpiring wfHeap              // finished workflows by end of retention
	maxSteps   int
}

var _ broker.Broker = (*Broker)(nil)

// Capabilities implements broker.Broker: every optional role but shards.
func (b *Broker) Capabilities() broker.Capability { return broker.CapAll | broker.CapWorkflows }

// SetShards fails with broker.ErrUnsupported: the memory broker lives in
// one process, where a queue has nothing to spread over.
func (b *Broker) SetShards(context.Context, broker.ShardParams) error {
	return fmt.Errorf("memory broker: SetShards: %w", broker.ErrUnsupported)
}

// Clock implements broker.Broker: Config.Clock.
func (b *Broker) Clock() broker.Clock { return b.clock }

// New returns an empty broker.
func New(cfg Config) *Broker {
	if cfg.Clock == nil {
		cfg.Clock = broker.SystemClock{}
	}
	if cfg.MaxWorkflowSteps <= 0 {
		cfg.MaxWorkflowSteps = broker.DefaultMaxWorkflowSteps
	}
	return &Broker{
		maxSteps: cfg.MaxWorkflowSteps,
		clock:    cfg.Clock,
		closedCh: make(chan struct{}),
		queues:   make(map[string]*queueState),
		active:   make(map[*entry]struct{}),
	}
}

type queueState struct {
	name    string
	paused  bool
	tasks   map[string]*entry
	pending []item // FIFO with lazy deletion: stale items are skipped
	head    int
	counts  [6]int64 // by stateIndex
	uniques map[string]uniqueLock
	ticks   map[string]tickClaim
}

// entry is a stored task. seq changes on every state change, so heap and
// FIFO items that remember an older seq are recognised as stale.
type entry struct {
	t      broker.Task
	q      *queueState
	seq    uint64
	done   chan struct{} // closed when the task ends (completed, dead, deleted)
	sinks  []awaitSink   // AwaitTasks waiters, told when the task ends
	unique string        // unique lock key held by the task, if any
	cancel bool          // active and asked to cancel (Canceler)
}

type item struct {
	at  time.Time
	e   *entry
	seq uint64
}

func (it item) live() bool { return it.e.seq == it.seq }

var stateIndex = map[broker.State]int{
	broker.StatePending: 0, broker.StateScheduled: 1, broker.StateActive: 2,
	broker.StateRetry: 3, broker.StateDead: 4, broker.StateCompleted: 5,
}

func (b *Broker) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	return nil
}

func (b *Broker) queue(name string) *queueState {
	q := b.queues[name]
	if q == nil {
		q = &queueState{name: name, tasks: make(map[string]*entry)}
		b.queues[name] = q
	}
	return q
}

// setState moves e to st and files it where that state is looked for.
func (b *Broker) setState(e *entry, st broker.State, now time.Time) {
	old := e.t.State
	if old != "" {
		e.q.counts[stateIndex[old]]--
	}
	if old == broker.StateActive {
		delete(b.active, e)
		e.cancel = false
	}
	e.t.State = st
	e.q.counts[stateIndex[st]]++
	b.seq++
	e.seq = b.seq
	switch st {
	case broker.StatePending:
		e.q.pending = append(e.q.pending, item{e: e, seq: e.seq})
		if !e.q.paused {
			b.signalReady()
		}
	case broker.StateActive:
		b.active[e] = struct{}{}
	case broker.StateCompleted:
		if e.t.Retention > 0 {
			heap.Push(&b.expiring, item{at: now.Add(e.t.Retention), e: e, seq: e.seq})
		}
		e.notifyDone()
	case broker.StateDead:
		e.notifyDone()
	}
	if e.t.Workflow != "" && (st == broker.StateDead || st == broker.StateCompleted) {
		b.taskEnded(e, st, now)
	}
}

func (b *Broker) schedule(e *entry, st broker.State, at, now time.Time) {
	b.setState(e, st, now)
	heap.Push(&b.delayed, item{at: at, e: e, seq: e.seq})
}

func (b *Broker) remove(e *entry) {
	e.q.counts[stateIndex[e.t.State]]--
	if e.t.State == broker.StateActive {
		delete(b.active, e)
	}
	delete(e.q.tasks, e.t.ID)
	e.seq = 0
	e.notifyDone()
}

func (e *entry) notifyDone() {
	if e.unique != "" {
		e.q.releaseUnique(e)
	}
	if e.done != nil {
		close(e.done)
		e.done = nil
	}
	for _, k := range e.sinks {
		k.ch <- k.i // never blocks: one slot per ID, and an ID is registered once at a time
	}
	e.sinks = nil
}

// awaitSink is one ID of an AwaitTasks call, registered on its entry.
type awaitSink struct {
	ch chan int
	i  int
}

func (b *Broker) signalReady() {
	if b.readyCh != nil {
		close(b.readyCh)
		b.readyCh = nil
	}
}

func (q *queueState) pop() *entry {
	for q.head < len(q.pending) {
		it := q.pending[q.head]
		q.pending[q.head] = item{}
		q.head++
		if it.live() {
			return it.e
		}
	}
	return nil
}

// compact drops the consumed head of the FIFO so it does not grow forever.
func (q *queueState) compact() {
	switch {
	case q.head == len(q.pending):
		q.pending, q.head = q.pending[:0], 0
	case q.head > 1024 && q.head > len(q.pending)/2:
		n := copy(q.pending, q.pending[q.head:])
		clear(q.pending[n:])
		q.pending, q.head = q.pending[:n], 0
	}
}

func clone(t *broker.Task) *broker.Task {
	c := *t
	c.Payload = slices.Clone(t.Payload)
	c.Result = slices.Clone(t.Result)
	c.Errors = slices.Clone(t.Errors)
	return &c
}

func clearLease(t *broker.Task) {
	t.Token, t.LeaseUntil, t.WorkerID = 0, time.Time{}, ""
}

// Enqueue implements broker.Broker.
func (b *Broker) Enqueue(ctx context.Context, tasks ...*broker.Task) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	now := b.clock.Now()
	var errs []error
	for i, t := range tasks {
		err := b.enqueue(t, now)
		if err != nil {
			if errs == nil {
				errs = make([]error, len(tasks))
			}
			errs[i] = err
		}
	}
	if errs != nil {
		return &broker.BatchError{Errs: errs}
	}
	return nil
}

func (b *Broker) enqueue(t *broker.Task, now time.Time) error {
	switch {
	case t == nil:
		return errors.New("nil task")
	case t.ID == "":
		return errors.New("task has no ID")
	case t.Queue == "":
		return fmt.Errorf("task %q has no queue", t.ID)
	case t.Kind == "":
		return fmt.Errorf("task %q has no kind", t.ID)
	}
	q := b.queue(t.Queue)
	if _, ok := q.tasks[t.ID]; ok {
		return fmt.Errorf("task %q in queue %q: %w", t.ID, t.Queue, broker.ErrTaskIDConflict)
	}
	e := &entry{t: *clone(t), q: q}
	e.t.State, e.t.Attempts, e.t.Errors, e.t.Result = "", 0, nil, nil
	e.t.StartedAt, e.t.CompletedAt = time.Time{}, time.Time{}
	clearLease(&e.t)
	if e.t.EnqueuedAt.IsZero() {
		e.t.EnqueuedAt = now
	}
	q.tasks[t.ID] = e
	if e.t.ProcessAt.After(now) {
		b.schedule(e, broker.StateScheduled, e.t.ProcessAt, now)
	} else {
		b.setState(e, broker.StatePending, now)
	}
	return nil
}

// Fetch implements broker.Broker.
func (b *Broker) Fetch(ctx context.Context, p broker.FetchParams) ([]*broker.Task, error) {
	queues, max, lease, workerID := p.Queues, p.Max, p.Lease, p.WorkerID
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	if max <= 0 {
		return nil, nil
	}
	now := b.clock.Now()
	var out []*broker.Task
	for _, name := range queues {
		q := b.queues[name]
		if q == nil || q.paused {
			continue
		}
		for len(out) < max {
			e := q.pop()
			if e == nil {
				break
			}
			b.token++
			e.t.Token, e.t.LeaseUntil, e.t.WorkerID, e.t.StartedAt = b.token, now.Add(lease), workerID, now
			b.setState(e, broker.StateActive, now)
			out = append(out, clone(&e.t))
		}
		q.compact()
		if len(out) == max {
			break
		}
	}
	return out, nil
}

// WaitReady implements broker.Broker.
func (b *Broker) WaitReady(ctx context.Context, p broker.WaitParams) error {
	queues, max := p.Queues, p.Max
	if err := b.lock(ctx); err != nil {
		return err
	}
	for _, name := range queues {
		if q := b.queues[name]; q != nil && !q.paused && q.counts[0] > 0 {
			b.mu.Unlock()
			return nil
		}
	}
	if max <= 0 {
		b.mu.Unlock()
		return nil
	}
	if b.readyCh == nil {
		b.readyCh = make(chan struct{})
	}
	ch := b.readyCh
	b.mu.Unlock()
	timer := time.NewTimer(max)
	defer timer.Stop()
	select {
	case <-ch:
		return nil
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-b.closedCh:
		return broker.ErrClosed
	}
}

// leased returns the task ref holds a lease on, or nil.
func (b *Broker) leased(ref broker.LeaseRef) *entry {
	q := b.queues[ref.Queue]
	if q == nil {
		return nil
	}
	e := q.tasks[ref.ID]
	if e == nil || e.t.State != broker.StateActive || e.t.Token != ref.Token {
		return nil
	}
	return e
}

func leaseLost(op string, ref broker.LeaseRef) error {
	return fmt.Errorf("%s task %q in queue %q (token %d): %w", op, ref.ID, ref.Queue, ref.Token, broker.ErrLeaseLost)
}

// ExtendLeases implements broker.Consumer.
func (b *Broker) ExtendLeases(ctx context.Context, p broker.ExtendParams) (broker.ExtendResult, error) {
	lost, cancelled, err := b.extendLeases(ctx, p.Leases, p.Lease)
	return broker.ExtendResult{Lost: lost, Cancelled: cancelled}, err
}

func (b *Broker) extendLeases(ctx context.Context, leases []broker.LeaseRef, lease time.Duration) (lost, cancelled []broker.LeaseRef, err error) {
	if err := b.lock(ctx); err != nil {
		return nil, nil, err
	}
	defer b.mu.Unlock()
	until := b.clock.Now().Add(lease)
	for _, ref := range leases {
		if e := b.leased(ref); e != nil {
			e.t.LeaseUntil = until
			if e.cancel {
				cancelled = append(cancelled, ref)
			}
		} else {
			lost = append(lost, ref)
		}
	}
	return lost, cancelled, nil
}

// batch runs fn for every item under the lock and gathers item errors.
func (b *Broker) batch(ctx context.Context, n int, fn func(i int, now time.Time) error) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	now := b.clock.Now()
	var errs []error
	for i := range n {
		if err := fn(i, now); err != nil {
			if errs == nil {
				errs = make([]error, n)
			}
			errs[i] = err
		}
	}
	if errs != nil {
		return &broker.BatchError{Errs: errs}
	}
	return nil
}

// Complete implements broker.Broker.
func (b *Broker) Complete(ctx context.Context, acks ...broker.Ack) error {
	return b.batch(ctx, len(acks), func(i int, now time.Time) error {
		a := acks[i]
		e := b.leased(a.LeaseRef)
		if e == nil {
			return leaseLost("complete", a.LeaseRef)
		}
		b.ops.count(e.q.name, now, 1, 0)
		if e.t.Workflow != "" && e.t.Retention <= 0 {
			e.t.Attempts++
			e.t.Result = slices.Clone(a.Result)
			b.taskEnded(e, broker.StateCompleted, now)
		}
		if e.t.Retention <= 0 {
			b.remove(e)
			return nil
		}
		e.t.Attempts++
		e.t.Result = slices.Clone(a.Result)
		e.t.CompletedAt = now
		clearLease(&e.t)
		b.setState(e, broker.StateCompleted, now)
		return nil
	})
}

// Fail implements broker.Broker.
func (b *Broker) Fail(ctx context.Context, failures ...broker.Failure) error {
	return b.batch(ctx, len(failures), func(i int, now time.Time) error {
		f := failures[i]
		e := b.leased(f.LeaseRef)
		if e == nil {
			return leaseLost("fail", f.LeaseRef)
		}
		b.ops.count(e.q.name, now, 0, 1)
		e.t.Attempts++
		ae := f.Error
		ae.Attempt = e.t.Attempts
		if ae.At.IsZero() {
			ae.At = now
		}
		if e.cancel && ae.Kind != broker.ErrorKindCancelled {
			ae.Kind, ae.Message = broker.ErrorKindCancelled, "cancelled while running: "+ae.Message
		}
		e.t.Errors = append(e.t.Errors, ae)
		clearLease(&e.t)
		switch {
		case f.Dead || e.cancel:
			b.setState(e, broker.StateDead, now)
		case f.RetryAt.After(now):
			b.schedule(e, broker.StateRetry, f.RetryAt, now)
		default:
			b.setState(e, broker.StatePending, now)
		}
		return nil
	})
}

// Requeue implements broker.Broker.
func (b *Broker) Requeue(ctx context.Context, leases ...broker.LeaseRef) error {
	return b.batch(ctx, len(leases), func(i int, now time.Time) error {
		e := b.leased(leases[i])
		if e == nil {
			return leaseLost("requeue", leases[i])
		}
		clearLease(&e.t)
		if e.cancel {
			e.t.Errors = append(e.t.Errors, cancelError(e.t.Attempts, now, "cancelled while running; the worker gave the task back"))
			b.setState(e, broker.StateDead, now)
			return nil
		}
		b.setState(e, broker.StatePending, now)
		return nil
	})
}

// Forward implements broker.Broker.
func (b *Broker) Forward(ctx context.Context) (int, error) {
	if err := b.lock(ctx); err != nil {
		return 0, err
	}
	defer b.mu.Unlock()
	now := b.clock.Now()
	n := 0
	for len(b.delayed) > 0 && !b.delayed[0].at.After(now) {
		it := heap.Pop(&b.delayed).(item)
		if !it.live() {
			continue
		}
		b.setState(it.e, broker.StatePending, now)
		n++
	}
	return n, nil
}

// Recover implements broker.Broker.
func (b *Broker) Recover(ctx context.Context) (int, error) {
	if err := b.lock(ctx); err != nil {
		return 0, err
	}
	defer b.mu.Unlock()
	now := b.clock.Now()
	var expired []*entry
	for e := range b.active {
		if !e.t.LeaseUntil.After(now) {
			expired = append(expired, e)
		}
	}
	for _, e := range expired {
		b.ops.count(e.q.name, now, 0, 1)
		e.t.Attempts++
		ae := broker.AttemptError{
			Attempt: e.t.Attempts,
			At:      now,
			Kind:    "lease_expired",
			Message: fmt.Sprintf("lease of worker %q expired at %s", e.t.WorkerID, e.t.LeaseUntil.Format(time.RFC3339Nano)),
		}
		if e.cancel {
			ae.Kind, ae.Message = broker.ErrorKindCancelled, "cancelled while running; "+ae.Message
		}
		e.t.Errors = append(e.t.Errors, ae)
		clearLease(&e.t)
		if e.t.Attempts > e.t.MaxRetries || e.cancel {
			b.setState(e, broker.StateDead, now)
		} else {
			b.setState(e, broker.StatePending, now)
		}
	}
	return len(expired), nil
}

// Cleanup implements broker.Broker.
func (b *Broker) Cleanup(ctx context.Context) (int, error) {
	if err := b.lock(ctx); err != nil {
		return 0, err
	}
	defer b.mu.Unlock()
	now := b.clock.Now()
	n := 0
	for len(b.expiring) > 0 && !b.expiring[0].at.After(now) {
		it := heap.Pop(&b.expiring).(item)
		if !it.live() {
			continue
		}
		b.remove(it.e)
		n++
	}
	b.cleanupWorkflows(now)
	return n, nil
}

func (b *Broker) find(queue, id string) *entry {
	if queue != "" {
		if q := b.queues[queue]; q != nil {
			return q.tasks[id]
		}
		return nil
	}
	names := make([]string, 0, len(b.queues))
	for name := range b.queues {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if e := b.queues[name].tasks[id]; e != nil {
			return e
		}
	}
	return nil
}

func notFound(queue, id string) error {
	if queue == "" {
		return fmt.Errorf("task %q: %w", id, broker.ErrTaskNotFound)
	}
	return fmt.Errorf("task %q in queue %q: %w", id, queue, broker.ErrTaskNotFound)
}

// GetTask implements broker.Broker.
func (b *Broker) GetTask(ctx context.Context, queue, id string) (*broker.Task, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	e := b.find(queue, id)
	if e == nil {
		return nil, notFound(queue, id)
	}
	return clone(&e.t), nil
}

// AwaitTask implements broker.Broker.
func (b *Broker) AwaitTask(ctx context.Context, queue, id string) (*broker.Task, error) {
	for {
		if err := b.lock(ctx); err != nil {
			return nil, err
		}
		e := b.find(queue, id)
		if e == nil {
			b.mu.Unlock()
			return nil, notFound(queue, id)
		}
		if e.t.State == broker.StateCompleted || e.t.State == broker.StateDead {
			t := clone(&e.t)
			b.mu.Unlock()
			return t, nil
		}
		if e.done == nil {
			e.done = make(chan struct{})
		}
		ch := e.done
		b.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-b.closedCh:
			return nil, broker.ErrClosed
		}
	}
}

// AwaitTasks implements broker.Broker: one channel for the call, each
// unfinished task's entry told which index to send on it when the task
// ends, no goroutine per ID.
func (b *Broker) AwaitTasks(ctx context.Context, p broker.AwaitParams, done func(int, *broker.Task, error)) error {
	type answer struct {
		i   int
		t   *broker.Task
		err error
	}
	n := len(p.IDs)
	ch := make(chan int, n)
	reg := make([]*entry, n) // the entry each waiting index is registered on
	var ready []answer
	// check answers index i or registers it; b.mu is held.
	check := func(i int) {
		reg[i] = nil
		e := b.find(p.Queue, p.IDs[i])
		switch {
		case e == nil:
			ready = append(ready, answer{i, nil, notFound(p.Queue, p.IDs[i])})
		case e.t.State == broker.StateCompleted || e.t.State == broker.StateDead:
			ready = append(ready, answer{i, clone(&e.t), nil})
		default:
			e.sinks = append(e.sinks, awaitSink{ch, i})
			reg[i] = e
		}
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	for i := range n {
		check(i)
	}
	b.mu.Unlock()
	defer func() {
		// Unregister what still waits: a call that gave up leaves nothing
		// on the entries.
		b.mu.Lock()
		for _, e := range reg {
			if e != nil {
				e.sinks = slices.DeleteFunc(e.sinks, func(k awaitSink) bool { return k.ch == ch })
			}
		}
		b.mu.Unlock()
	}()
	left := n
	for {
		for _, a := range ready {
			done(a.i, a.t, a.err)
		}
		left -= len(ready)
		ready = ready[:0]
		if left == 0 {
			return nil
		}
		select {
		case i := <-ch:
			if err := b.lock(ctx); err != nil {
				return err
			}
			check(i)
			for more := true; more; {
				select {
				case j := <-ch:
					check(j)
				default:
					more = false
				}
			}
			b.mu.Unlock()
		case <-ctx.Done():
			return ctx.Err()
		case <-b.closedCh:
			return broker.ErrClosed
		}
	}
}

// Queues implements broker.Broker.
func (b *Broker) Queues(ctx context.Context) ([]broker.QueueInfo, error) {
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	out := make([]broker.QueueInfo, 0, len(b.queues))
	for _, q := range b.queues {
		counts := make(map[broker.State]int64, len(broker.States))
		for st, i := range stateIndex {
			counts[st] = q.counts[i]
		}
		out = append(out, broker.QueueInfo{Name: q.name, Paused: q.paused, Counts: counts})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// ListTasks implements broker.Broker. Tasks are ordered by when they
// entered the state.
func (b *Broker) ListTasks(ctx context.Context, p broker.ListParams) ([]*broker.Task, error) {
	queue, state, offset, limit := p.Queue, p.State, p.Offset, p.Limit
	if _, ok := stateIndex[state]; !ok {
		return nil, fmt.Errorf("list tasks: unknown state %q", state)
	}
	offset = max(offset, 0)
	if limit <= 0 {
		limit = broker.DefaultListLimit
	}
	if err := b.lock(ctx); err != nil {
		return nil, err
	}
	defer b.mu.Unlock()
	q := b.queues[queue]
	if q == nil {
		return nil, nil
	}
	var es []*entry
	for _, e := range q.tasks {
		if e.t.State == state {
			es = append(es, e)
		}
	}
	sort.Slice(es, func(i, j int) bool { return es[i].seq < es[j].seq })
	if offset >= len(es) {
		return nil, nil
	}
	es = es[offset:]
	if limit < len(es) {
		es = es[:limit]
	}
	out := make([]*broker.Task, len(es))
	for i, e := range es {
		out[i] = clone(&e.t)
	}
	return out, nil
}

// DeleteTask implements broker.Broker.
func (b *Broker) DeleteTask(ctx context.Context, queue, id string) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	e := b.find(queue, id)
	if e == nil {
		return notFound(queue, id)
	}
	if e.t.State == broker.StateActive {
		return fmt.Errorf("delete task %q in queue %q: it is active: %w", id, e.q.name, broker.ErrInvalidState)
	}
	b.remove(e)
	if e.t.Workflow != "" {
		b.taskEnded(e, "", b.clock.Now())
	}
	return nil
}

// RetryTask implements broker.Broker.
func (b *Broker) RetryTask(ctx context.Context, queue, id string) error {
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	e := b.find(queue, id)
	if e == nil {
		return notFound(queue, id)
	}
	switch e.t.State {
	case broker.StateDead, broker.StateRetry, broker.StateScheduled:
		b.setState(e, broker.StatePending, b.clock.Now())
		return nil
	}
	return fmt.Errorf("retry task %q in queue %q: it is %s: %w", id, e.q.name, e.t.State, broker.ErrInvalidState)
}

// Pause implements broker.Broker.
func (b *Broker) Pause(ctx context.Context, queue string) error {
	if queue == "" {
		return errors.New("pause: empty queue name")
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	b.queue(queue).paused = true
	return nil
}

// Resume implements broker.Broker.
func (b *Broker) Resume(ctx context.Context, queue string) error {
	if queue == "" {
		return errors.New("resume: empty queue name")
	}
	if err := b.lock(ctx); err != nil {
		return err
	}
	defer b.mu.Unlock()
	q := b.queue(queue)
	q.paused = false
	if q.counts[0] > 0 {
		b.signalReady()
	}
	return nil
}

// Close implements broker.Broker. Waiters in WaitReady and AwaitTask return
// ErrClosed.
func (b *Broker) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	close(b.closedCh)
	return nil
}

// timeHeap orders items by time, then by seq so equal times stay FIFO.
type timeHeap []item

func (h timeHeap) Len() int { return len(h) }
func (h timeHeap) Less(i, j int) bool {
	if h[i].at.Equal(h[j].at) {
		return h[i].seq < h[j].seq
	}
	return h[i].at.Before(h[j].at)
}
func (h timeHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timeHeap) Push(x any)   { *h = append(*h, x.(item)) }
func (h *timeHeap) Pop() any {
	old := *h
	it := old[len(old)-1]
	old[len(old)-1] = item{}
	*h = old[:len(old)-1]
	return it
}
