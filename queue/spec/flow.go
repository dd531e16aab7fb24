package spec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/conqhq/conq/queue"
)

// Flow is a workflow file (docs/workflows.md):
//
//	{"flow": NODE, "queue": "default", "retention": "24h"}
//	NODE := {"task": TASK, "immutable": false} | {"chain": [NODE...]} | {"group": [NODE...]}
//	      | {"chord": {"header": [NODE...], "body": NODE, "tolerate_failures": false}}
//
// The file's "queue" and "retention" are defaults of its tasks: a TASK's
// own "queue" wins. Nodes nest by value only; no node can name another, so
// a flow file cannot express a cycle. An immutable task node ignores the
// result before it and runs with its own payload (queue.Flow.Immutable).
type Flow struct {
	Flow      queue.Flow
	Queue     string        // the file's "queue" (already applied to the tasks)
	Retention time.Duration // the file's "retention" (already applied to the tasks)
	Steps     int
	// Tasks are the steps in the order EnqueueFlow numbers them (step i is
	// task ID wf_….i): what CheckKinds checks.
	Tasks []FlowStep
}

// FlowStep is one step of a parsed flow: where it is in the file, its
// kind, and its queue as the defaults resolve it.
type FlowStep struct {
	Path  string // e.g. flow.chain[1].task
	Kind  string
	Queue string
}

// FlowOptions tunes ParseFlowWith.
type FlowOptions struct {
	// Defaults are options for the steps, under the file's own "queue"
	// and "retention" (a command line's --queue, --retries, ...). Its kind,
	// payload and ID are ignored.
	Defaults Task
	// MaxSteps caps the steps of the flow; 0 means queue.DefaultMaxFlowSteps,
	// which is also the most EnqueueFlow takes (a larger value is an error).
	MaxSteps int
}

// MaxFlowDepth caps the nesting of a flow file, so a hostile file cannot
// exhaust the stack.
const MaxFlowDepth = 64

// ErrFlowTooLarge: a flow has more steps than the limit (FlowOptions.MaxSteps).
var ErrFlowTooLarge = errors.New("flow too large")

// ErrUnknownKind: a flow names a task kind that no live worker of its queue
// serves (see CheckKinds; the error is an *UnknownKindError).
var ErrUnknownKind = errors.New("unknown task kind")

// UnknownKindError names the first step whose kind is not served.
type UnknownKindError struct {
	Path, Kind, Queue string
	Served            []string // the kinds the queue's workers serve, sorted
}

func (e *UnknownKindError) Error() string {
	served := "none"
	if len(e.Served) > 0 {
		served = strings.Join(e.Served, ", ")
	}
	return fmt.Sprintf("%s: unknown task kind %q on queue %q (served: %s); nothing was enqueued", e.Path, e.Kind, e.Queue, served)
}

// Is makes errors.Is(err, ErrUnknownKind) true.
func (e *UnknownKindError) Is(target error) bool { return target == ErrUnknownKind }

type flowNode struct {
	Task      json.RawMessage   `json:"task"`
	Immutable *bool             `json:"immutable"` // task nodes only
	Chain     []json.RawMessage `json:"chain"`
	Group     []json.RawMessage `json:"group"`
	Chord     *struct {
		Header   []json.RawMessage `json:"header"`
		Body     json.RawMessage   `json:"body"`
		Tolerate bool              `json:"tolerate_failures"`
	} `json:"chord"`
}

// ParseFlow parses and validates a workflow file with the default limit;
// the error names the problem and where (a path like
// flow.chain[1].group[0]).
func ParseFlow(data []byte) (Flow, error) { return ParseFlowWith(data, FlowOptions{}) }

// ParseFlowWith is ParseFlow with defaults for the steps and a step limit.
// Exceeding the limit is an error wrapping ErrFlowTooLarge, found before
// the rest of the file is parsed.
//
// A file of the usual form is read in one pass (scanFlow, flowscan.go);
// anything that pass does not take (any error, and a few rare but valid
// forms) is parsed again by parseFlow, which decodes each nesting level
// on its own and words every error.
func ParseFlowWith(data []byte, o FlowOptions) (Flow, error) {
	maxSteps := o.MaxSteps
	switch {
	case maxSteps == 0:
		maxSteps = queue.DefaultMaxFlowSteps
	case maxSteps < 0 || maxSteps > queue.DefaultMaxFlowSteps:
		return Flow{}, fmt.Errorf("flow: step limit %d: want 1..%d: %w", maxSteps, queue.DefaultMaxFlowSteps, queue.ErrInvalidOption)
	}
	if f, ok := scanFlow(data, maxSteps, o.Defaults, nil); ok {
		return f, nil
	}
	return parseFlow(data, maxSteps, o.Defaults, nil)
}

// parseFlow is ParseFlowWith's general parser (maxSteps already
// checked). keep, if not nil, gets each step's specification with the
// defaults applied (for the tests that compare it with scanFlow).
func parseFlow(data []byte, maxSteps int, defaults Task, keep *[]Task) (Flow, error) {
	var top struct {
		Flow      json.RawMessage `json:"flow"`
		Queue     string          `json:"queue"`
		Retention json.RawMessage `json:"retention"` // a duration string or seconds, as in a task
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&top); err != nil {
		return Flow{}, fmt.Errorf("flow: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Flow{}, fmt.Errorf("flow: more than one JSON value in the file")
	}
	if len(top.Flow) == 0 || string(top.Flow) == "null" {
		return Flow{}, fmt.Errorf("flow: no \"flow\" field")
	}
	p := &flowParser{max: maxSteps, defaults: defaults, keep: keep}
	p.f.Queue = top.Queue
	if top.Queue != "" {
		p.defaults.Queue = top.Queue
	}
	d, err := specDuration("retention", top.Retention)
	if err != nil {
		return Flow{}, fmt.Errorf("flow: %w", err)
	}
	if d != nil {
		p.f.Retention = *d
		p.defaults.Retention = d
	}
	// The defaults alone first, so that a bad file-level queue is named
	// once, not as the first task's problem.
	if err := (Task{Kind: "-"}).WithDefaults(p.defaults).Validate(); err != nil {
		return Flow{}, fmt.Errorf("flow: %w", err)
	}
	node, err := p.node(top.Flow, "flow", 0)
	if err != nil {
		return Flow{}, err
	}
	p.f.Flow = node
	p.f.Steps = len(p.f.Tasks)
	return p.f, nil
}

type flowParser struct {
	f        Flow
	max      int
	defaults Task
	keep     *[]Task // see parseFlow
}

func (p *flowParser) node(raw json.RawMessage, path string, depth int) (queue.Flow, error) {
	if depth > MaxFlowDepth {
		return queue.Flow{}, fmt.Errorf("%s: nested deeper than %d", path, MaxFlowDepth)
	}
	var n flowNode
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&n); err != nil {
		return queue.Flow{}, fmt.Errorf("%s: %w", path, err)
	}
	set := 0
	for _, b := range []bool{n.Task != nil, n.Chain != nil, n.Group != nil, n.Chord != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return queue.Flow{}, fmt.Errorf("%s: want exactly one of task, chain, group, chord", path)
	}
	list := func(name string, raws []json.RawMessage) ([]queue.Flow, error) {
		if len(raws) == 0 {
			return nil, fmt.Errorf("%s.%s: empty (a %s needs at least one node)", path, name, strings.TrimSuffix(name, ".header"))
		}
		out := make([]queue.Flow, len(raws))
		for i, r := range raws {
			f, err := p.node(r, fmt.Sprintf("%s.%s[%d]", path, name, i), depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = f
		}
		return out, nil
	}
	if n.Immutable != nil && n.Task == nil {
		return queue.Flow{}, fmt.Errorf("%s: immutable: only a task node can be immutable", path)
	}
	switch {
	case n.Task != nil:
		f, err := p.task(n.Task, path+".task")
		if err == nil && n.Immutable != nil && *n.Immutable {
			f = f.Immutable()
		}
		return f, err
	case n.Chain != nil:
		l, err := list("chain", n.Chain)
		return queue.Chain(l...), err
	case n.Group != nil:
		l, err := list("group", n.Group)
		return queue.Group(l...), err
	default:
		h, err := list("chord.header", n.Chord.Header)
		if err != nil {
			return queue.Flow{}, err
		}
		if len(n.Chord.Body) == 0 || string(n.Chord.Body) == "null" {
			return queue.Flow{}, fmt.Errorf("%s.chord: no body", path)
		}
		body, err := p.node(n.Chord.Body, path+".chord.body", depth+1)
		if err != nil {
			return queue.Flow{}, err
		}
		c := queue.Chord(h, body)
		if n.Chord.Tolerate {
			c = c.TolerateFailures()
		}
		return c, nil
	}
}

func (p *flowParser) task(raw json.RawMessage, path string) (queue.Flow, error) {
	if len(p.f.Tasks) >= p.max {
		return queue.Flow{}, fmt.Errorf("%s: %w: more than %d steps, the limit (nothing was enqueued)", path, ErrFlowTooLarge, p.max)
	}
	s, err := Parse(raw)
	if err != nil {
		return queue.Flow{}, fmt.Errorf("%s: %w", path, err)
	}
	// A step's task ID is the workflow's ID and the step's index, and a
	// step is never deduplicated: these would be ignored, so they are
	// refused rather than dropped silently.
	if s.ID != "" {
		return queue.Flow{}, fmt.Errorf("%s: id: a workflow step's task ID is set by the workflow (wf_ID.STEP)", path)
	}
	if s.Unique != nil {
		return queue.Flow{}, fmt.Errorf("%s: unique: a workflow step cannot be unique", path)
	}
	s = s.WithDefaults(p.defaults)
	t, err := s.Task()
	if err != nil {
		return queue.Flow{}, fmt.Errorf("%s: %w", path, err)
	}
	q := s.Queue
	if q == "" {
		q = queue.DefaultQueue
	}
	p.f.Tasks = append(p.f.Tasks, FlowStep{Path: path, Kind: s.Kind, Queue: q})
	if p.keep != nil {
		*p.keep = append(*p.keep, s)
	}
	return queue.Step(t), nil
}

// CheckKinds checks that every step's kind is served on its queue. served
// returns the kinds a queue's workers serve, or nil if they are not known
// (then every kind is accepted on that queue). The error is the first
// unserved step's *UnknownKindError.
func (f Flow) CheckKinds(served func(queue string) []string) error {
	sets := map[string]map[string]bool{}
	for _, st := range f.Tasks {
		set, seen := sets[st.Queue]
		if !seen {
			if ks := served(st.Queue); ks != nil {
				set = make(map[string]bool, len(ks))
				for _, k := range ks {
					set[k] = true
				}
			}
			sets[st.Queue] = set
		}
		if set != nil && !set[st.Kind] {
			list := make([]string, 0, len(set))
			for k := range set {
				list = append(list, k)
			}
			slices.Sort(list)
			return &UnknownKindError{Path: st.Path, Kind: st.Kind, Queue: st.Queue, Served: list}
		}
	}
	return nil
}

// LiveKinds is CheckKinds's served function for the live workers ws: a
// queue's kinds are the union of what its workers publish
// (WorkerInfo.Kinds), known only if at least one live worker serves the
// queue and every one of them publishes its kinds. A worker that publishes
// none (a default handler, an older worker) may serve any kind, so its
// queues accept every kind.
func LiveKinds(ws []queue.WorkerInfo) func(queue string) []string {
	kinds := map[string][]string{}
	unknown := map[string]bool{}
	for _, w := range ws {
		for _, q := range w.Queues {
			if len(w.Kinds) == 0 {
				unknown[q] = true
				continue
			}
			kinds[q] = append(kinds[q], w.Kinds...)
		}
	}
	return func(q string) []string {
		if unknown[q] {
			return nil
		}
		return kinds[q]
	}
}

// CheckWorkers is CheckKinds against the live workers list returns (such
// as queue.Inspector.Workers). A broker without a worker registry
// (queue.ErrUnsupported) has no kinds to check against: nothing is
// refused.
func (f Flow) CheckWorkers(ctx context.Context, list func(context.Context) ([]queue.WorkerInfo, error)) error {
	ws, err := list(ctx)
	if errors.Is(err, queue.ErrUnsupported) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("flow: listing the live workers to check the task kinds: %w", err)
	}
	return f.CheckKinds(LiveKinds(ws))
}
