package redis

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/groupcommit"
	"github.com/conqhq/conq/queue/broker"
)

// Workflows (broker.Workflower). A workflow is stored in the shard of its
// steps (fields of the shard's wf hash, described in scripts/common.lua),
// so on Redis Cluster the workflow, its steps' tasks and the queue they
// run in share one slot, every key a script touches is in its KEYS, and
// every transition is one script on one node:
//
//   - CreateWorkflow stores the hash and enqueues the steps that take no
//     input (wf_create.lua).
//   - The scripts that settle a task (complete, fail, recover, cancel,
//     requeue, delete) look the task up in the shard's wfsteps hash and,
//     for a step, record its end and enqueue what follows in the same
//     script (common.lua wfTaskEnded): a step's completion and its
//     followers' enqueueing are one atomic step, fenced by the lease token
//     like the completion itself, so a stale worker cannot advance the
//     workflow and two members of a chord completing at once on two
//     workers enqueue its body exactly once (Redis runs scripts one at a
//     time).
//   - Inputs are built in Lua exactly as broker.InputValue and
//     broker.StepPayload build them; what Lua cannot cheaply do (check
//     that a result is JSON, compact it) Go does in Complete and sends
//     along (resultForms).
//
// Rules of this broker: a workflow's home is its first step's queue; in a
// sharded queue the workflow is in the shard of the workflow ID, and so is
// every step of that queue. A step of another queue (a foreign step) runs
// in that queue's shard of the workflow ID, another slot: its start and
// its end go through the outbox and event hashes, the mover and the
// forwarder of xslot.go, the only workflow transitions that are not one
// script (each half is, and both are idempotent). A global hash
// (workflowIndexKey) maps workflow IDs to their shard, for GetWorkflow and
// CancelWorkflow (wf_create writes it off Redis Cluster, CreateWorkflow
// before the script on Cluster, where it is in another slot); Cleanup
// deletes finished workflows after their Retention.

// maxInputDepth caps the nesting of a step's input lists: the scripts
// read them recursively.
const maxInputDepth = 64

// ErrWorkflowQueues was returned by CreateWorkflow for a workflow whose
// steps are in more than one queue.
//
// Deprecated: such workflows run (xslot.go); it is no longer returned.
var ErrWorkflowQueues = errors.New("redis broker: every step of a workflow must be in one queue")

// resultForms is what a workflow step's result needs beyond its bytes to
// build inputs as broker.InputValue does: "" if the result is empty or
// already compact JSON with nothing json.Marshal would escape (the common
// case), "c" + its compact form if it is other valid JSON, "q" + its JSON
// string if it is not JSON. Computed for every completion (the broker
// cannot tell steps from plain tasks before the script runs); it costs one
// json.Valid over the result.
func resultForms(r []byte) string {
	if len(r) == 0 {
		return ""
	}
	if !json.Valid(r) {
		q, _ := json.Marshal(string(r))
		return "q" + string(q)
	}
	if plainJSON(r) {
		return ""
	}
	var c, h bytes.Buffer
	_ = json.Compact(&c, r)
	json.HTMLEscape(&h, c.Bytes())
	if bytes.Equal(h.Bytes(), r) {
		return ""
	}
	return "c" + h.String()
}

// plainJSON reports whether valid JSON r has none of the bytes compacting
// or json.Marshal's escaping would change: whitespace, HTML characters,
// the first byte of U+2028 and U+2029.
func plainJSON(r []byte) bool {
	for _, c := range r {
		switch c {
		case ' ', '\t', '\n', '\r', '<', '>', '&', 0xe2:
			return false
		}
	}
	return true
}

// appendInputSpec writes in as the scripts read it: a step number, or a
// list "[a,b,...]".
func appendInputSpec(b []byte, in broker.Input) []byte {
	if in.Step >= 0 {
		return strconv.AppendInt(b, int64(in.Step), 10)
	}
	b = append(b, '[')
	for i, x := range in.List {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendInputSpec(b, x)
	}
	return append(b, ']')
}

func inputSpec(in broker.Input) string { return string(appendInputSpec(nil, in)) }

func inputDepth(in broker.Input) int {
	if in.Step >= 0 {
		return 0
	}
	d := 0
	for _, x := range in.List {
		d = max(d, inputDepth(x))
	}
	return d + 1
}

// parseInputSpec reads what appendInputSpec wrote.
func parseInputSpec(s string) (broker.Input, error) {
	p := specParser{s: s}
	in, err := p.node(0)
	if err == nil && p.pos != len(s) {
		err = fmt.Errorf("trailing %q", s[p.pos:])
	}
	if err != nil {
		return broker.Input{}, fmt.Errorf("%w: input spec %q: %v", errCorrupt, s, err)
	}
	return in, nil
}

type specParser struct {
	s   string
	pos int
}

func (p *specParser) node(depth int) (broker.Input, error) {
	if depth > maxInputDepth {
		return broker.Input{}, errors.New("nested too deep")
	}
	if p.pos < len(p.s) && p.s[p.pos] == '[' {
		p.pos++
		in := broker.Input{Step: -1}
		if p.pos < len(p.s) && p.s[p.pos] == ']' {
			p.pos++
			return in, nil
		}
		for {
			x, err := p.node(depth + 1)
			if err != nil {
				return broker.Input{}, err
			}
			in.List = append(in.List, x)
			if p.pos >= len(p.s) {
				return broker.Input{}, errors.New("unterminated list")
			}
			c := p.s[p.pos]
			p.pos++
			if c == ']' {
				return in, nil
			}
			if c != ',' {
				return broker.Input{}, fmt.Errorf("unexpected %q", c)
			}
		}
	}
	start := p.pos
	for p.pos < len(p.s) && p.s[p.pos] >= '0' && p.s[p.pos] <= '9' {
		p.pos++
	}
	if start == p.pos || p.pos-start > 9 {
		return broker.Input{}, errors.New("want a step number")
	}
	n, _ := strconv.Atoi(p.s[start:p.pos])
	return broker.Input{Step: n}, nil
}

// appendField appends one "<len>:<bytes>" field of a step record.
func appendField(b []byte, v string) []byte {
	b = strconv.AppendInt(b, int64(len(v)), 10)
	b = append(b, ':')
	return append(b, v...)
}

// splitFields reads a step record.
func splitFields(s string) ([]string, error) {
	var out []string
	for len(s) > 0 {
		j := strings.IndexByte(s, ':')
		if j < 0 {
			return nil, errCorrupt
		}
		n, err := strconv.Atoi(s[:j])
		if err != nil || n < 0 || n > len(s)-j-1 {
			return nil, errCorrupt
		}
		out = append(out, s[j+1:j+1+n])
		s = s[j+1+n:]
	}
	return out, nil
}

// Step record fields (common.lua c<i>).
const (
	fID = iota
	fKind
	fDeps
	fInput
	fTolerant // flags: "1" tolerant, "i" immutable
	fArgsSuffix
	fPayloadErr
	fPrefix
	fTemplate // the step's task as given (encodeMsg), for GetWorkflow
	numStepFields
)

// workflowShard returns the queue and hash tag of the shard that holds
// (or would hold) a workflow of queue with this ID.
func (b *Broker) workflowShard(ctx context.Context, queue, id string) (string, error) {
	set, err := b.ensureShards(ctx, queue)
	if err != nil {
		return "", err
	}
	return set.tag(queue, shardOf(id, set.count())), nil
}

// CreateWorkflow implements broker.Workflower: validation (a workflow of
// more than Config.MaxWorkflowSteps steps, or of steps in several queues,
// is refused before anything is stored), then one script that stores the
// workflow, its index entry (off Cluster; on Cluster the entry is written
// first, claimIndex) and enqueues its first steps.
func (b *Broker) CreateWorkflow(ctx context.Context, w *broker.Workflow) error {
	if err := b.check(); err != nil {
		return err
	}
	if err := broker.ValidateWorkflow(w); err != nil {
		return err
	}
	if n := len(w.Steps); n > b.cfg.MaxWorkflowSteps {
		return fmt.Errorf("workflow %s has %d steps, above the limit of %d (redis Config.MaxWorkflowSteps): %w", w.ID, n, b.cfg.MaxWorkflowSteps, broker.ErrWorkflowTooLarge)
	}
	if strings.ContainsAny(w.ID, "{}") {
		return fmt.Errorf("%w: workflow ID %q contains '{' or '}'", errInvalidArg, w.ID)
	}
	queue := w.Steps[0].Task.Queue
	var queues []string
	for i := range w.Steps {
		if q := w.Steps[i].Task.Queue; !slices.Contains(queues, q) {
			if err := validQueue(q); err != nil {
				return err
			}
			queues = append(queues, q)
		}
	}
	for i := range w.Steps {
		if in := w.Steps[i].Input; in != nil && inputDepth(*in) > maxInputDepth {
			return fmt.Errorf("%w: workflow %s: step %d's input lists are nested more than %d deep", errInvalidArg, w.ID, i, maxInputDepth)
		}
	}
	if inputDepth(w.Output) > maxInputDepth {
		return fmt.Errorf("%w: workflow %s: output lists are nested more than %d deep", errInvalidArg, w.ID, maxInputDepth)
	}
	tag, err := b.workflowShard(ctx, queue, w.ID)
	if err != nil {
		return wrapErr("create workflow", err)
	}
	// Steps of other queues are foreign (xslot.go): each runs in its
	// queue's shard of the workflow ID, as a step of a sharded queue does.
	var foreign map[string]string
	for _, q := range queues[1:] {
		t, err := b.workflowShard(ctx, q, w.ID)
		if err != nil {
			return wrapErr("create workflow", err)
		}
		if foreign == nil {
			foreign = map[string]string{}
		}
		foreign[q] = t
	}
	if foreign != nil {
		if err := b.foreignIDsFree(ctx, w, foreign); err != nil {
			return err
		}
	}
	now := b.cfg.Clock.Now()
	args, err := workflowArgs(w, queue, tag, foreign, now)
	if err != nil {
		return err
	}

	// The global index entry (workflow ID -> this shard's tag): off Redis
	// Cluster wf_create writes it in the same script (no round trip of its
	// own), refusing with code 3 an entry that names another shard; on
	// Cluster (another slot) or after a code 3, claimIndex writes it first.
	inScript := b.cluster == nil
	set := false
	if !inScript {
		if set, err = b.claimIndex(ctx, w.ID, tag); err != nil {
			return err
		}
	}
	var r createRes
	for try := 0; ; try++ {
		r = b.create(ctx, &createReq{tag: tag, queues: queues, steps: len(w.Steps), args: args})
		if r.err != nil || r.code != 3 {
			break
		}
		// The index names another shard: a workflow of this ID there, or
		// an entry left by a create that failed before its script ran.
		if try == 2 {
			// Taken over and lost again twice: a create of the same ID
			// in another shard is racing this one.
			return fmt.Errorf("workflow %q: %w", w.ID, broker.ErrTaskIDConflict)
		}
		if set, err = b.claimIndex(ctx, w.ID, tag); err != nil {
			return err
		}
	}
	switch {
	case r.err != nil:
		return wrapErr("create workflow", r.err)
	case r.code == 1:
		return fmt.Errorf("workflow %q: %w", w.ID, broker.ErrTaskIDConflict)
	case r.code == 2:
		if set {
			b.rdb.HDel(ctx, workflowIndexKey(b.cfg.Prefix), w.ID)
		}
		return fmt.Errorf("workflow %q: step task %q: %w", w.ID, r.id, broker.ErrTaskIDConflict)
	case r.notReplicated != nil:
		return fmt.Errorf("create workflow %s: %w", w.ID, r.notReplicated)
	}
	b.wfTags.put(w.ID, tag)
	if foreign != nil {
		// First steps of other queues wait in the outbox: move them now.
		b.crossSlot(ctx, []string{tag})
	}
	return nil
}

// claimIndex points the global index entry of workflow id at the shard
// with tag before its wf_create runs: set if it wrote the entry (so a
// create refused for a step's task ID drops it). An entry naming another
// shard is ErrTaskIDConflict if that shard holds the workflow, else one
// left by a create that failed before its script ran, taken over.
func (b *Broker) claimIndex(ctx context.Context, id, tag string) (set bool, err error) {
	idx := workflowIndexKey(b.cfg.Prefix)
	set, err = b.rdb.HSetNX(ctx, idx, id, tag).Result()
	if err != nil {
		return false, wrapErr("create workflow", err)
	}
	if set {
		return true, nil
	}
	cur, err := b.rdb.HGet(ctx, idx, id).Result()
	if err != nil && !isNil(err) {
		return false, wrapErr("create workflow", err)
	}
	if cur == tag {
		return false, nil
	}
	// Is the workflow still in the shard the index names? (A poll's
	// outcome: one HMGET, the state alone while it runs.)
	_, err = b.workflowOutcome(ctx, cur, id, true)
	if err == nil {
		return false, fmt.Errorf("workflow %q: %w", id, broker.ErrTaskIDConflict)
	}
	if !errors.Is(err, broker.ErrTaskNotFound) {
		return false, err
	}
	if err := b.rdb.HSet(ctx, idx, id, tag).Err(); err != nil {
		return false, wrapErr("create workflow", err)
	}
	return true, nil
}

// foreignIDsFree refuses, as wf_create does for the home queue, a
// workflow whose step of another queue has a task ID taken there: one
// pipeline of HEXISTS. Best effort (a task stored after it is caught by the
// mover, which then fails the step, wf_xapply.lua).
func (b *Broker) foreignIDsFree(ctx context.Context, w *broker.Workflow, foreign map[string]string) error {
	type look struct {
		id  string
		cmd *goredis.BoolCmd
	}
	var looks []look
	if _, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i := range w.Steps {
			t := &w.Steps[i].Task
			if tag, ok := foreign[t.Queue]; ok {
				looks = append(looks, look{t.ID, p.HExists(ctx, b.queueKeys(tag)[kMsg], t.ID)})
			}
		}
		return nil
	}); err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	for _, l := range looks {
		taken, err := l.cmd.Result()
		if err != nil {
			return wrapErr("create workflow", err)
		}
		if taken {
			return fmt.Errorf("workflow %q: step task %q: %w", w.ID, l.id, broker.ErrTaskIDConflict)
		}
	}
	return nil
}

// Creating a workflow costs a script call, and most of that cost is the
// call, not the workflow: concurrent CreateWorkflow calls are combined
// (group commit, internal/groupcommit: a lone call runs at once, with its
// caller's ctx; calls that find one running wait and go together, up to
// createBatchMax workflows and createBatchSteps steps a batch), one
// wf_create call per shard, all in one pipeline.
const (
	createBatchMax   = 128
	createBatchSteps = 4000
)

type createReq struct {
	tag    string
	queues []string // every queue of the workflow, to register
	steps  int
	args   []any
}

type createRes struct {
	code          int64
	id            string
	err           error
	notReplicated error
}

// newCreator is the group commit of b's CreateWorkflow calls.
func newCreator(b *Broker) *groupcommit.Group[*createReq, createRes] {
	return &groupcommit.Group[*createReq, createRes]{
		Run:       b.createBatch,
		MaxBatch:  createBatchMax,
		Weight:    func(r *createReq) int { return r.steps },
		MaxWeight: createBatchSteps,
	}
}

// create sends r through b's group commit.
func (b *Broker) create(ctx context.Context, r *createReq) createRes {
	res, err := b.creates.Do(ctx, r)
	switch {
	case errors.Is(err, groupcommit.ErrClosed):
		return createRes{err: broker.ErrClosed}
	case err != nil:
		return createRes{err: err}
	}
	return res
}

// createBatch runs one wf_create call per shard for reqs, in one pipeline.
func (b *Broker) createBatch(ctx context.Context, reqs []*createReq) []createRes {
	var calls []*scriptCall
	var members [][]*createReq
	byTag := map[string]int{}
	var queues []string
	for _, r := range reqs {
		ci, ok := byTag[r.tag]
		if !ok {
			ci = len(calls)
			byTag[r.tag] = ci
			keys := b.keysFor(scriptWfCreate, r.tag)
			if b.cluster == nil {
				// Off Cluster the script writes the global index too.
				keys = append(keys[:len(keys):len(keys)], workflowIndexKey(b.cfg.Prefix))
			}
			calls = append(calls, &scriptCall{script: scriptWfCreate, keys: keys, args: []any{0, r.tag}})
			members = append(members, nil)
		}
		c := calls[ci]
		c.args = append(c.args, r.args...)
		c.args[0] = c.args[0].(int) + 1
		members[ci] = append(members[ci], r)
		for _, q := range r.queues {
			if !slices.Contains(queues, q) {
				queues = append(queues, q)
			}
		}
	}
	reg := b.toRegister(queues)
	var sadd *goredis.IntCmd
	var pre func(goredis.Pipeliner)
	if len(reg) > 0 {
		pre = func(p goredis.Pipeliner) { sadd = p.SAdd(ctx, queuesKey(b.cfg.Prefix), reg...) }
	}
	err := b.runScriptsAcked(ctx, calls, pre)
	if err != nil || (sadd != nil && sadd.Err() != nil) {
		b.forgetRegistered(reg)
	}
	out := make([]createRes, len(reqs))
	at := make(map[*createReq]int, len(reqs))
	for i, r := range reqs {
		at[r] = i
	}
	for ci, c := range calls {
		var res []any
		e := err
		if e == nil {
			res, e = c.cmd.Slice()
		}
		if e == nil && len(res) != 2*len(members[ci]) {
			e = fmt.Errorf("%w: wf_create reply has %d items, want %d", errCorrupt, len(res), 2*len(members[ci]))
		}
		for k, r := range members[ci] {
			if e != nil {
				out[at[r]] = createRes{err: e}
				continue
			}
			code, _ := res[2*k].(int64)
			id, _ := res[2*k+1].(string)
			out[at[r]] = createRes{code: code, id: id, notReplicated: c.notReplicated}
		}
	}
	return out
}

// workflowArgs builds wf_create's ARGV: the workflow hash's fields, the
// steps to enqueue now and the other steps' task IDs. tag is the home
// shard's; foreign maps each other queue of the workflow to the tag of the
// shard its steps run in (xslot.go).
func workflowArgs(w *broker.Workflow, queue, tag string, foreign map[string]string, now time.Time) ([]any, error) {
	n := len(w.Steps)
	remaining := make([]int, n)
	deps := make([][]int, n)
	for i := range w.Steps {
		if in := w.Steps[i].Input; in != nil {
			ds := in.Deps(nil)
			remaining[i] = len(ds)
			for _, d := range ds {
				deps[d] = append(deps[d], i)
			}
		}
	}
	fields := []any{"st", "R", "q", queue, "n", n, "open", n, "out", inputSpec(w.Output),
		"ret", int64(w.Retention), "cr", nanos(now)}
	if len(foreign) > 0 {
		fields = append(fields, "tg", tag)
	}
	var starts, others []any
	nstart := 0
	var rec, depBuf []byte
	for i := range w.Steps {
		s := &w.Steps[i]
		t := s.Task
		t.Workflow, t.Step = w.ID, i
		t.Retention = max(t.Retention, w.Retention)
		t.ProcessAt = time.Time{}
		if t.EnqueuedAt.IsZero() {
			t.EnqueuedAt = now
		}
		si := strconv.Itoa(i)
		depBuf = depBuf[:0]
		for k, d := range deps[i] {
			if k > 0 {
				depBuf = append(depBuf, ',')
			}
			depBuf = strconv.AppendInt(depBuf, int64(d), 10)
		}
		var spec, tol, suffix, perr, prefix string
		startNow := s.Input == nil || remaining[i] == 0
		msg := ""
		if s.Input != nil && s.Immutable {
			// It waits for its input but never reads it: its message is
			// whole now (the prefix, with an empty payload after it), so
			// the scripts build nothing when it starts.
			spec = inputSpec(*s.Input)
			tol = "i"
			if s.Tolerant {
				tol = "1i"
			}
			msg = string(encodeMsg(&t))
			prefix = msg
		} else if s.Input != nil {
			spec = inputSpec(*s.Input)
			if s.Tolerant {
				tol = "1"
			}
			final := t
			final.Payload = nil
			if t.Encoding == "args" {
				p, _, err := broker.StepPayload(&t, json.RawMessage("0"))
				if err != nil {
					perr = err.Error()
				} else {
					suffix = string(p[len(`{"args":[0`):])
				}
			} else {
				final.Encoding = "json"
			}
			prefix = string(encodeMsg(&final))
			if startNow {
				// An empty input list: the input is known now.
				p, enc, err := broker.StepPayload(&t, broker.InputValue(*s.Input, s.Tolerant, nil))
				if err != nil {
					return nil, fmt.Errorf("%w: workflow %s: step %d has no inputs and cannot start: %v", errInvalidArg, w.ID, i, err)
				}
				t.Payload, t.Encoding = p, enc
				msg = string(encodeMsg(&t))
			}
		} else {
			msg = string(encodeMsg(&t))
		}
		rec = rec[:0]
		for _, v := range [numStepFields]string{t.ID, t.Kind, string(depBuf), spec, tol, suffix, perr, prefix, string(encodeMsg(&s.Task))} {
			rec = appendField(rec, v)
		}
		target := foreign[t.Queue] // "" for a step of the home queue
		if target != "" {
			// A foreign step's record has a 10th field: its shard's tag.
			rec = appendField(rec, target)
		}
		fields = append(fields, "c"+si, string(rec))
		// No state field yet: a step without one is enqueued if it has no
		// input, else waiting (one hash entry less per step). A step with
		// an (empty) input that starts now says so.
		if startNow && s.Input != nil {
			fields = append(fields, "s"+si, "e")
		}
		switch {
		case !startNow:
			fields = append(fields, "r"+si, remaining[i])
			if target == "" {
				others = append(others, t.ID)
			}
		default:
			starts = append(starts, t.ID, i, msg, target, linkDeps(depBuf))
			nstart++
		}
	}
	args := make([]any, 0, 3+len(fields)+len(starts)+len(others))
	args = append(args, w.ID, len(fields)/2)
	args = append(args, fields...)
	args = append(args, nstart)
	args = append(args, starts...)
	args = append(args, len(others))
	return append(args, others...), nil
}

// linkDeps is a dependents field ("3,7") as a wfsteps link carries it
// ("3.7": workflow.lua wfLinkOf).
func linkDeps(deps []byte) string {
	return strings.ReplaceAll(string(deps), ",", ".")
}

// workflowTag returns the hash tag of the shard holding workflow id, from
// the global index.
func (b *Broker) workflowTag(ctx context.Context, id string) (string, error) {
	tag, err := b.rdb.HGet(ctx, workflowIndexKey(b.cfg.Prefix), id).Result()
	if isNil(err) {
		return "", fmt.Errorf("workflow %q: %w", id, broker.ErrTaskNotFound)
	}
	if err != nil {
		return "", wrapErr("workflow", err)
	}
	b.wfTags.put(id, tag)
	return tag, nil
}

var wfStates = map[string]broker.WorkflowState{
	"R": broker.WorkflowRunning, "C": broker.WorkflowCompleted, "F": broker.WorkflowFailed, "X": broker.WorkflowCancelled,
}

var stepStates = map[byte]broker.StepState{
	'w': broker.StepWaiting, 'e': broker.StepEnqueued, 'c': broker.StepCompleted, 'f': broker.StepFailed, 'x': broker.StepCancelled,
}

// GetWorkflow implements broker.Workflower in one script call.
func (b *Broker) GetWorkflow(ctx context.Context, id string) (*broker.Workflow, error) {
	return b.readWorkflow(ctx, id, func(tag string) (*broker.Workflow, error) { return b.getWorkflow(ctx, tag, id) })
}

// readWorkflow is what the workflow reads share: the broker's check, then
// read in workflow id's shard (withWorkflowTag).
func (b *Broker) readWorkflow(ctx context.Context, id string, read func(tag string) (*broker.Workflow, error)) (*broker.Workflow, error) {
	if err := b.check(); err != nil {
		return nil, err
	}
	var w *broker.Workflow
	err := b.withWorkflowTag(ctx, id, func(tag string) (err error) {
		w, err = read(tag)
		return err
	})
	return w, err
}

// getWorkflow is GetWorkflow in the shard with tag.
func (b *Broker) getWorkflow(ctx context.Context, tag, id string) (*broker.Workflow, error) {
	res, err := b.run(ctx, scriptWfGet, b.keysFor(scriptWfGet, tag), id).Slice()
	if err != nil {
		return nil, wrapErr("get workflow", err)
	}
	if len(res) == 0 {
		return nil, fmt.Errorf("workflow %q: %w", id, broker.ErrTaskNotFound)
	}
	if len(res) != 2 {
		return nil, fmt.Errorf("%w: workflow %s reply", errCorrupt, id)
	}
	all, _ := res[0].([]any)
	tasks, _ := res[1].([]any)
	w, foreign, err := decodeWorkflow(id, all, tasks)
	if err != nil || len(foreign) == 0 {
		return w, err
	}
	// Enqueued foreign steps: their tasks' states where they run.
	type look struct {
		k    int
		meta *goredis.StringCmd
		msg  *goredis.BoolCmd
		errs *goredis.StringCmd
	}
	looks := make([]look, 0, len(foreign))
	if _, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for k, tag := range foreign {
			keys := b.queueKeys(tag)
			tid := w.Steps[k].Task.ID
			looks = append(looks, look{k, p.HGet(ctx, keys[kMeta], tid), p.HExists(ctx, keys[kMsg], tid), p.HGet(ctx, keys[kErrors], tid)})
		}
		return nil
	}); err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	for _, l := range looks {
		s := &w.Steps[l.k]
		meta, err := l.meta.Result()
		switch {
		case err == nil:
			var t broker.Task
			if err := decodeMeta(meta, &t); err != nil {
				return nil, fmt.Errorf("%w: workflow %s: step %d task meta", errCorrupt, id, l.k)
			}
			s.TaskState, s.Attempts = t.State, t.Attempts
			if t.State == broker.StateRetry {
				if e, err := l.errs.Result(); err == nil {
					if s.Error, err = lastError(e); err != nil {
						return nil, fmt.Errorf("%w: workflow %s: step %d task errors", errCorrupt, id, l.k)
					}
				}
			}
		case !isNil(err):
			return nil, wrapErr("get workflow", err)
		case l.msg.Val():
			s.TaskState = broker.StatePending
		}
	}
	return w, nil
}

// lastError is the message of the last attempt in a task's error
// history (its errors field), "" for none.
func lastError(s string) (string, error) {
	errs, err := decodeErrors(s)
	if err != nil || len(errs) == 0 {
		return "", err
	}
	return errs[len(errs)-1].Message, nil
}

// decodeWorkflow reads wf_get's reply; foreign maps the enqueued foreign
// steps whose task state is to be read in their shard to its tag.
func decodeWorkflow(id string, all, tasks []any) (w *broker.Workflow, foreign map[int]string, err error) {
	w, tags, err := decodeWorkflowHome(id, all, tasks)
	if err != nil {
		return nil, nil, err
	}
	for i := 0; i+3 < len(tasks); i += 4 {
		si, _ := tasks[i].(string)
		k, _ := strconv.Atoi(si)
		if code, _ := tasks[i+2].(int64); code == 3 && tags[k] != "" {
			if foreign == nil {
				foreign = map[int]string{}
			}
			foreign[k] = tags[k]
		}
	}
	return w, foreign, nil
}

func decodeWorkflowHome(id string, all, tasks []any) (*broker.Workflow, []string, error) {
	bad := func(what string) (*broker.Workflow, []string, error) {
		return nil, nil, fmt.Errorf("%w: workflow %s: %s", errCorrupt, id, what)
	}
	h := make(map[string]string, len(all)/2)
	for i := 0; i+1 < len(all); i += 2 {
		k, _ := all[i].(string)
		v, _ := all[i+1].(string)
		h[k] = v
	}
	n, err := strconv.Atoi(h["n"])
	if err != nil || n < 1 || n > len(h) {
		return bad("step count")
	}
	w := &broker.Workflow{ID: id, State: wfStates[h["st"]], Error: h["err"]}
	if w.State == "" {
		return bad("state")
	}
	if w.Output, err = parseInputSpec(h["out"]); err != nil {
		return nil, nil, err
	}
	ret, _ := strconv.ParseInt(h["ret"], 10, 64)
	cr, _ := strconv.ParseInt(h["cr"], 10, 64)
	fin, _ := strconv.ParseInt(h["fin"], 10, 64)
	w.Retention, w.CreatedAt, w.FinishedAt = time.Duration(ret), fromNanos(cr), fromNanos(fin)
	if r, ok := h["res"]; ok && w.State == broker.WorkflowCompleted {
		w.Result = []byte(r)
	}
	queue := h["q"]
	w.Steps = make([]broker.WorkflowStep, n)
	tags := make([]string, n) // foreign steps' shard tags
	for i := range w.Steps {
		si := strconv.Itoa(i)
		s := &w.Steps[i]
		rec, err := splitFields(h["c"+si])
		if err != nil || (len(rec) != numStepFields && len(rec) != numStepFields+1) {
			return bad("step " + si + " record")
		}
		if err := decodeMsg(rec[fTemplate], &s.Task); err != nil {
			return bad("step " + si + " task: " + err.Error())
		}
		s.Task.ID, s.Task.Queue = rec[fID], queue
		if len(rec) > numStepFields {
			tags[i] = rec[numStepFields]
			s.Task.Queue = tagQueue(tags[i])
		}
		if rec[fInput] != "" {
			in, err := parseInputSpec(rec[fInput])
			if err != nil {
				return nil, nil, err
			}
			s.Input = &in
		}
		// The flags field: "1" tolerant, "i" immutable (a record written
		// before immutable steps existed has "" or "1").
		s.Tolerant = strings.Contains(rec[fTolerant], "1")
		s.Immutable = strings.Contains(rec[fTolerant], "i")
		st, ok := h["s"+si]
		if !ok {
			st = "e"
			if rec[fInput] != "" {
				st = "w"
			}
		}
		if st == "" || stepStates[st[0]] == "" {
			return bad("step " + si + " state")
		}
		s.State = stepStates[st[0]]
		if len(st) > 1 {
			s.Attempts, _ = strconv.Atoi(st[1:])
		}
		if r, ok := h["res"+si]; ok {
			s.Result = []byte(r)
		}
		s.Error = h["e"+si]
	}
	for i := 0; i+3 < len(tasks); i += 4 {
		si, _ := tasks[i].(string)
		k, err := strconv.Atoi(si)
		if err != nil || k < 0 || k >= n {
			return bad("enqueued step")
		}
		s := &w.Steps[k]
		if meta, ok := tasks[i+1].(string); ok {
			var t broker.Task
			if err := decodeMeta(meta, &t); err != nil {
				return bad("step " + si + " task meta")
			}
			s.TaskState, s.Attempts = t.State, t.Attempts
			if t.State == broker.StateCompleted {
				// A step whose completion wrote no state of its own
				// (workflow.lua's wfCompletions): its task says it.
				s.State, s.TaskState = broker.StepCompleted, ""
			}
			if e, ok := tasks[i+3].(string); ok && t.State == broker.StateRetry {
				if s.Error, err = lastError(e); err != nil {
					return bad("step " + si + " task errors")
				}
			}
		} else if exists, _ := tasks[i+2].(int64); exists == 1 || exists == 2 {
			// 2: a step of another slot whose move is still in the
			// outbox, pending as far as anyone can tell.
			s.TaskState = broker.StatePending
		}
	}
	return w, tags, nil
}

// AwaitWorkflow implements broker.Workflower: it waits as
// AwaitWorkflowOutcome does, then reads the workflow whole.
func (b *Broker) AwaitWorkflow(ctx context.Context, id string) (*broker.Workflow, error) {
	return b.readWorkflow(ctx, id, func(tag string) (*broker.Workflow, error) {
		if _, err := b.awaitOutcome(ctx, tag, id); err != nil {
			return nil, err
		}
		return b.getWorkflow(ctx, tag, id)
	})
}

// awaitOutcome polls wf_outcome for workflow id in the shard with tag,
// with a backoff from 1 ms to 100 ms, until the workflow is finished (its
// outcome), it fails, ctx ends or b closes. While the workflow runs a poll
// answers its state alone: one HMGET whatever the steps.
func (b *Broker) awaitOutcome(ctx context.Context, tag, id string) (*broker.Workflow, error) {
	delay := time.Millisecond
	for {
		w, err := b.workflowOutcome(ctx, tag, id, true)
		switch {
		case err != nil && ctx.Err() != nil:
			return nil, ctx.Err()
		case err != nil:
			return nil, err
		case w.State != broker.WorkflowRunning:
			return w, nil
		}
		if b.closed.Load() {
			return nil, broker.ErrClosed
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

// GetWorkflowOutcome implements broker.Workflower: the workflow's shard
// (remembered, wftags.go, or one HGET of the global index), then one
// script (wf_outcome: one HMGET of six fields of the home shard's wf
// hash), whatever the number of steps. Steps in other shards need no
// read: their ends are applied in the home shard (wf_xevents), which
// alone holds the workflow's state, result and error.
func (b *Broker) GetWorkflowOutcome(ctx context.Context, id string) (*broker.Workflow, error) {
	return b.readWorkflow(ctx, id, func(tag string) (*broker.Workflow, error) { return b.workflowOutcome(ctx, tag, id, false) })
}

// AwaitWorkflowOutcome implements broker.Workflower: awaitOutcome, one
// script call per poll.
func (b *Broker) AwaitWorkflowOutcome(ctx context.Context, id string) (*broker.Workflow, error) {
	return b.readWorkflow(ctx, id, func(tag string) (*broker.Workflow, error) { return b.awaitOutcome(ctx, tag, id) })
}

// workflowOutcome runs wf_outcome for workflow id in the shard with tag.
// poll: a running workflow's reply is its state alone (the other fields
// of w are then zero).
func (b *Broker) workflowOutcome(ctx context.Context, tag, id string, poll bool) (*broker.Workflow, error) {
	arg := "0"
	if poll {
		arg = "1"
	}
	res, err := b.run(ctx, scriptWfOutcome, b.keysFor(scriptWfOutcome, tag), id, arg).Slice()
	if isNil(err) {
		return nil, fmt.Errorf("workflow %q: %w", id, broker.ErrTaskNotFound)
	}
	if err != nil {
		return nil, wrapErr("workflow outcome", err)
	}
	return decodeWorkflowOutcome(id, res)
}

// decodeWorkflowOutcome reads wf_outcome's reply: {st} or {st, ret, cr,
// err, res, fin}, absent fields nil.
func decodeWorkflowOutcome(id string, res []any) (*broker.Workflow, error) {
	field := func(i int) (string, bool) {
		if i >= len(res) {
			return "", false
		}
		v, ok := res[i].(string)
		return v, ok
	}
	st, _ := field(0)
	w := &broker.Workflow{ID: id, State: wfStates[st]}
	if w.State == "" || (len(res) != 1 && len(res) != 6) {
		return nil, fmt.Errorf("%w: workflow %s: outcome", errCorrupt, id)
	}
	if len(res) == 1 {
		return w, nil
	}
	rets, _ := field(1)
	crs, _ := field(2)
	fins, _ := field(5)
	ret, _ := strconv.ParseInt(rets, 10, 64)
	cr, _ := strconv.ParseInt(crs, 10, 64)
	fin, _ := strconv.ParseInt(fins, 10, 64)
	w.Retention, w.CreatedAt, w.FinishedAt = time.Duration(ret), fromNanos(cr), fromNanos(fin)
	w.Error, _ = field(3)
	if r, ok := field(4); ok && w.State == broker.WorkflowCompleted {
		w.Result = []byte(r)
	}
	return w, nil
}

// CancelWorkflow implements broker.Workflower in one script call.
func (b *Broker) CancelWorkflow(ctx context.Context, id string) error {
	if err := b.check(); err != nil {
		return err
	}
	tag, err := b.workflowTag(ctx, id)
	if err != nil {
		return err
	}
	now := b.cfg.Clock.Now()
	res, err := b.run(ctx, scriptWfCancel, b.keysFor(scriptWfCancel, tag), id,
		strconv.FormatInt(nanos(now), 10), strconv.FormatInt(millis(now), 10)).Slice()
	if err != nil {
		return wrapErr("cancel workflow", err)
	}
	code, _ := res[0].(int64)
	switch code {
	case -1:
		return fmt.Errorf("workflow %q: %w", id, broker.ErrTaskNotFound)
	case -2:
		st := ""
		if len(res) > 1 {
			s, _ := res[1].(string)
			st = string(wfStates[s])
		}
		return fmt.Errorf("cancel workflow %q: it is %s: %w", id, st, broker.ErrInvalidState)
	}
	if len(res) > 1 {
		// Steps in other slots get their cancel orders now.
		b.crossSlot(ctx, []string{tag})
	}
	return nil
}

// wfListScan caps the index entries one wf_list call looks at per shard:
// with a state filter that matches few workflows, a page stops there (and
// says there is more) instead of reading the whole index in one script.
var wfListScan = 10_000 // a variable for tests (SetWorkflowListScan)

// wfStateLetters maps states to the letters of the wf hash.
var wfStateLetters = map[broker.WorkflowState]string{
	broker.WorkflowRunning: "R", broker.WorkflowCompleted: "C", broker.WorkflowFailed: "F", broker.WorkflowCancelled: "X",
}

// wfListPos is a place in the listing order: an index score (creation in
// unix µs) and a workflow ID, compared as Redis orders a sorted set.
type wfListPos struct {
	us int64
	id string
}

func (p wfListPos) cmp(q wfListPos) int {
	if c := cmp.Compare(p.us, q.us); c != 0 {
		return c
	}
	return strings.Compare(p.id, q.id)
}

// ListWorkflows implements broker.Workflower. Every shard of every known
// queue keeps an index of its workflows by creation time (wfcreated,
// written by wf_create, pruned by wf_cleanup, in the workflows' slot), so
// a listing is one wf_list call per shard, pipelined, merged here newest
// first. A shard that stopped before its index's end (limit reached, or
// wfListScan entries looked at) bounds the page: only what is newer than
// the highest such stopping point is sure to be complete across shards,
// and the cursor ("<µs>:<ID>") resumes every shard from there.
// Workflows created before this index existed are not listed (they are
// still found by ID and age out with their retention).
func (b *Broker) ListWorkflows(ctx context.Context, p broker.WorkflowListParams) (broker.WorkflowPage, error) {
	if err := b.check(); err != nil {
		return broker.WorkflowPage{}, err
	}
	limit, err := broker.CheckWorkflowList(p)
	if err != nil {
		return broker.WorkflowPage{}, err
	}
	var after *wfListPos
	if p.Cursor != "" {
		us, id, ok := strings.Cut(p.Cursor, ":")
		n, err := strconv.ParseInt(us, 10, 64)
		if !ok || err != nil || id == "" {
			return broker.WorkflowPage{}, fmt.Errorf("cursor %q: not one of this broker's: %w", p.Cursor, broker.ErrBadListParams)
		}
		after = &wfListPos{n, id}
	}
	queues, err := b.knownQueues(ctx)
	if err != nil {
		return broker.WorkflowPage{}, err
	}
	shardMap, err := b.shardMap(ctx)
	if err != nil {
		return broker.WorkflowPage{}, wrapErr("list workflows", err)
	}
	args := []any{wfStateLetters[p.State], limit, "", "", wfListScan}
	if after != nil {
		args[2], args[3] = strconv.FormatInt(after.us, 10), after.id
	}
	var calls []*scriptCall
	for _, q := range queues {
		set := shardMap[q]
		for i := range set.count() {
			calls = append(calls, &scriptCall{script: scriptWfList, keys: b.keysFor(scriptWfList, set.tag(q, i)), args: args})
		}
	}
	if len(calls) == 0 {
		return broker.WorkflowPage{}, nil
	}
	if err := b.runScripts(ctx, calls, nil); err != nil {
		return broker.WorkflowPage{}, wrapErr("list workflows", err)
	}
	type listed struct {
		pos wfListPos
		s   broker.WorkflowSummary
	}
	var all []listed
	var bound *wfListPos // the highest point where a shard stopped early
	for _, c := range calls {
		res, err := c.cmd.Slice()
		if err != nil {
			return broker.WorkflowPage{}, wrapErr("list workflows", err)
		}
		if len(res) < 3 || (len(res)-3)%9 != 0 {
			return broker.WorkflowPage{}, fmt.Errorf("%w: wf_list reply of %d items", errCorrupt, len(res))
		}
		if more, _ := res[0].(int64); more == 1 {
			pos, err := listPos(res[1], res[2])
			if err != nil {
				return broker.WorkflowPage{}, err
			}
			if bound == nil || pos.cmp(*bound) > 0 {
				bound = &pos
			}
		}
		for i := 3; i+8 < len(res); i += 9 {
			pos, err := listPos(res[i+1], res[i])
			if err != nil {
				return broker.WorkflowPage{}, err
			}
			str := func(k int) string { v, _ := res[i+k].(string); return v }
			n, _ := strconv.Atoi(str(3))
			open, _ := strconv.Atoi(str(4))
			cr, _ := strconv.ParseInt(str(6), 10, 64)
			fin, _ := strconv.ParseInt(str(7), 10, 64)
			all = append(all, listed{pos, broker.WorkflowSummary{ID: pos.id, State: wfStates[str(2)], Steps: n, Done: n - open,
				Queue: str(5), CreatedAt: fromNanos(cr), FinishedAt: fromNanos(fin), Error: str(8)}})
		}
	}
	slices.SortFunc(all, func(x, y listed) int { return y.pos.cmp(x.pos) })
	if bound != nil {
		// What is older than bound may have unlisted workflows before it
		// in the shard that stopped there.
		all = slices.DeleteFunc(all, func(l listed) bool { return l.pos.cmp(*bound) < 0 })
	}
	var page broker.WorkflowPage
	switch {
	case len(all) > limit:
		all = all[:limit]
		page.Next = strconv.FormatInt(all[limit-1].pos.us, 10) + ":" + all[limit-1].pos.id
	case bound != nil:
		page.Next = strconv.FormatInt(bound.us, 10) + ":" + bound.id
	}
	page.Workflows = make([]broker.WorkflowSummary, len(all))
	for i, l := range all {
		page.Workflows[i] = l.s
	}
	return page, nil
}

// listPos reads an index score (a string of whole µs) and ID of a wf_list
// reply.
func listPos(score, id any) (wfListPos, error) {
	s, _ := score.(string)
	i, _ := id.(string)
	us, err := strconv.ParseFloat(s, 64)
	if err != nil || i == "" {
		return wfListPos{}, fmt.Errorf("%w: wf_list entry %v %v", errCorrupt, score, id)
	}
	return wfListPos{int64(us), i}, nil
}
