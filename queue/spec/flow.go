package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/conqhq/conq/queue"
)

// Flow is a workflow file (docs/workflows.md, design of issue 12):
//
//	{"flow": NODE, "queue": "default", "retention": "24h"}
//	NODE := {"task": TASK} | {"chain": [NODE...]} | {"group": [NODE...]}
//	      | {"chord": {"header": [NODE...], "body": NODE, "tolerate_failures": false}}
type Flow struct {
	Flow      queue.Flow
	Queue     string
	Retention time.Duration
	Steps     int
}

// MaxFlowDepth caps the nesting of a flow file, so a hostile file cannot
// exhaust the stack.
const MaxFlowDepth = 64

type flowNode struct {
	Task  json.RawMessage   `json:"task"`
	Chain []json.RawMessage `json:"chain"`
	Group []json.RawMessage `json:"group"`
	Chord *struct {
		Header   []json.RawMessage `json:"header"`
		Body     json.RawMessage   `json:"body"`
		Tolerate bool              `json:"tolerate_failures"`
	} `json:"chord"`
}

// ParseFlow parses and validates a workflow file; the error names the
// problem and where (a path like flow.chain[1].group[0]).
func ParseFlow(data []byte) (Flow, error) {
	var top struct {
		Flow      json.RawMessage `json:"flow"`
		Queue     string          `json:"queue"`
		Retention string          `json:"retention"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&top); err != nil {
		return Flow{}, fmt.Errorf("flow: %w", err)
	}
	if len(top.Flow) == 0 {
		return Flow{}, fmt.Errorf("flow: no \"flow\" field")
	}
	var f Flow
	f.Queue = top.Queue
	if top.Retention != "" {
		d, err := ParseDuration(top.Retention)
		if err != nil {
			return Flow{}, fmt.Errorf("flow: retention: %w", err)
		}
		f.Retention = d
	}
	node, err := parseNode(top.Flow, "flow", 0, &f.Steps)
	if err != nil {
		return Flow{}, err
	}
	f.Flow = node
	return f, nil
}

func parseNode(raw json.RawMessage, path string, depth int, steps *int) (queue.Flow, error) {
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
			return nil, fmt.Errorf("%s.%s: empty", path, name)
		}
		out := make([]queue.Flow, len(raws))
		for i, r := range raws {
			f, err := parseNode(r, fmt.Sprintf("%s.%s[%d]", path, name, i), depth+1, steps)
			if err != nil {
				return nil, err
			}
			out[i] = f
		}
		return out, nil
	}
	switch {
	case n.Task != nil:
		s, err := Parse(n.Task)
		if err != nil {
			return queue.Flow{}, fmt.Errorf("%s.task: %w", path, err)
		}
		t, err := s.Task()
		if err != nil {
			return queue.Flow{}, fmt.Errorf("%s.task: %w", path, err)
		}
		*steps++
		if *steps > queue.DefaultMaxFlowSteps {
			return queue.Flow{}, fmt.Errorf("%s: flow has more than %d steps", path, queue.DefaultMaxFlowSteps)
		}
		return queue.Step(t), nil
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
		if len(n.Chord.Body) == 0 {
			return queue.Flow{}, fmt.Errorf("%s.chord: no body", path)
		}
		body, err := parseNode(n.Chord.Body, path+".chord.body", depth+1, steps)
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
