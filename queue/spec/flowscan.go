package spec

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/conqhq/conq/queue"
)

// scanFlow is ParseFlowWith's single pass: it reads a workflow file of
// the usual form straight from data, the task objects into specWire
// without a decoder each, and builds the Flow parseFlow would. It takes
// only what it is sure parseFlow accepts the same way, and answers false
// for everything else, which parseFlow then parses again and words:
//
//   - any error (bad JSON, an unknown field, an empty list, a bad task,
//     too many steps, too deep);
//   - field names not written exactly (encoding/json also matches "Kind",
//     and a name with escapes), a field given twice, null where a node,
//     a list, a boolean or the file's queue goes, a "task" that is not an
//     object, the older task-file names ("retries", "in");
//   - nesting deeper than scanMaxDepth inside a value.
//
// A string value with escapes or invalid UTF-8 is decoded with
// encoding/json, as parseFlow's decoder would. The file's queue and
// retention may come after "flow": the defaults are applied to the steps
// at the end, and a chord's body written before its header is read after
// it (the header's steps are numbered first). FuzzScanFlow and
// FuzzScanFlowShapes (flowscan_test.go) check scanFlow against parseFlow:
// the same Flow and step specifications, or a decline. keep is as
// parseFlow's.
func scanFlow(data []byte, maxSteps int, defaults Task, keep *[]Task) (Flow, bool) {
	s := flowScan{data: data, max: maxSteps, path: append(make([]byte, 0, 64), "flow"...)}
	// Room for the steps, guessed from the "task" keys (capped: a guess).
	s.steps = make([]scanStep, 0, min(bytes.Count(data, []byte(`"task"`)), maxSteps, 1024))
	var (
		root                queue.Flow
		haveFlow, haveQueue bool
		fileQueue           string
		retention           json.RawMessage
	)
	ok := s.object(func(k []byte) bool {
		switch string(k) {
		case "flow":
			if haveFlow {
				return false
			}
			haveFlow = true
			var ok bool
			root, ok = s.node(0)
			return ok
		case "queue":
			if haveQueue {
				return false
			}
			haveQueue = true
			var ok bool
			fileQueue, ok = s.str()
			return ok
		case "retention":
			return s.raw(&retention)
		}
		return false
	})
	if !ok || !haveFlow {
		return Flow{}, false
	}
	if s.ws(); s.i != len(data) {
		return Flow{}, false
	}

	// The file's defaults, then the steps with them, as parseFlow.
	f := Flow{Queue: fileQueue}
	d := defaults
	if fileQueue != "" {
		d.Queue = fileQueue
	}
	r, err := specDuration("retention", retention)
	if err != nil {
		return Flow{}, false
	}
	if r != nil {
		f.Retention = *r
		d.Retention = r
	}
	if (Task{Kind: "-"}).WithDefaults(d).Validate() != nil {
		return Flow{}, false
	}
	f.Tasks = make([]FlowStep, len(s.steps))
	for i, st := range s.steps {
		// parseFlow validates the step alone and then with the defaults:
		// a step valid with them is valid alone (the defaults only fill
		// what it leaves unset, and are valid themselves), so the second
		// check suffices. Its payload needs none (validateDecoded).
		m := st.spec.WithDefaults(d)
		if m.validateDecoded() != nil {
			return Flow{}, false
		}
		m.fill(st.task)
		q := m.Queue
		if q == "" {
			q = queue.DefaultQueue
		}
		f.Tasks[i] = FlowStep{Path: st.path, Kind: m.Kind, Queue: q}
		if keep != nil {
			*keep = append(*keep, m)
		}
	}
	f.Flow = root
	f.Steps = len(f.Tasks)
	return f, true
}

// scanList is ParseList's single pass: a non-empty JSON array of task
// objects read straight from data into specWire (flowScan.taskWire, as
// scanFlow reads a step) and made specifications by strict, as
// ParseList's decoder would. It answers false for everything else, as
// scanFlow does (see there), and for any element strict refuses: ParseList
// then decodes the list with encoding/json and words the error.
// FuzzScanList checks it against that decoder.
func scanList(data []byte) ([]Task, bool) {
	s := flowScan{data: data}
	s.ws()
	if !s.eat('[') {
		return nil, false
	}
	// Room for the tasks, guessed from the "kind" keys (a guess: a payload
	// may have them too, and a task may leave its kind out).
	// Capped at what the data can hold, {"kind":""} and a comma each.
	out := make([]Task, 0, min(bytes.Count(data, []byte(`"kind"`)), len(data)/12)+1)
	for {
		s.ws()
		if s.peek() != '{' {
			return nil, false
		}
		var w specWire
		if !s.taskWire(&w) {
			return nil, false
		}
		// The raw values point into data; spec copies what it keeps.
		t, err := w.strict()
		if err != nil {
			return nil, false
		}
		out = append(out, t)
		s.ws()
		if s.eat(',') {
			continue
		}
		if !s.eat(']') {
			return nil, false
		}
		s.ws()
		return out, s.i == len(data)
	}
}

// scanMaxDepth caps the nesting of a value inside a task (a payload, the
// args): deeper ones, rare, go to parseFlow (encoding/json's own limit
// is 10,000).
const scanMaxDepth = 1000

type flowScan struct {
	data  []byte
	i     int
	max   int
	path  []byte       // the node being read, e.g. flow.chord.header[3]
	stack []queue.Flow // the nodes of the lists being read
	steps []scanStep
}

// scanStep is a step read: its specification without the file's
// defaults, and the task of its queue.Step, filled at the end.
type scanStep struct {
	spec Task
	task *queue.Task
	path string
}

func (s *flowScan) ws() {
	for s.i < len(s.data) {
		switch s.data[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *flowScan) peek() byte {
	if s.i < len(s.data) {
		return s.data[s.i]
	}
	return 0
}

func (s *flowScan) eat(c byte) bool {
	if s.i < len(s.data) && s.data[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads an object, calling field for each member with the value
// next to read. A key must be plain ASCII without escapes.
func (s *flowScan) object(field func(key []byte) bool) bool {
	s.ws()
	if !s.eat('{') {
		return false
	}
	s.ws()
	if s.eat('}') {
		return true
	}
	for {
		s.ws()
		if !s.eat('"') {
			return false
		}
		start := s.i
		for s.i < len(s.data) && s.data[s.i] != '"' {
			if c := s.data[s.i]; c < 0x20 || c >= utf8.RuneSelf || c == '\\' {
				return false
			}
			s.i++
		}
		if s.i == len(s.data) {
			return false
		}
		key := s.data[start:s.i]
		s.i++
		s.ws()
		if !s.eat(':') {
			return false
		}
		s.ws()
		if !field(key) {
			return false
		}
		s.ws()
		if s.eat(',') {
			continue
		}
		return s.eat('}')
	}
}

// node reads a flow node at s.path.
func (s *flowScan) node(depth int) (queue.Flow, bool) {
	if depth > MaxFlowDepth {
		return queue.Flow{}, false
	}
	var (
		f                  queue.Flow
		shapes             int // task, chain, group and chord read
		isTask             bool
		immutable, haveImm bool
	)
	ok := s.object(func(k []byte) bool {
		var ok bool
		var l []queue.Flow
		switch string(k) {
		case "task":
			f, ok = s.task()
			isTask = true
		case "chain":
			l, ok = s.list("chain", depth)
			f = queue.Chain(l...)
		case "group":
			l, ok = s.list("group", depth)
			f = queue.Group(l...)
		case "chord":
			f, ok = s.chord(depth)
		case "immutable":
			if haveImm {
				return false
			}
			haveImm = true
			immutable, ok = s.boolean()
			return ok
		default:
			return false
		}
		shapes++
		return ok && shapes == 1
	})
	if !ok || shapes != 1 || haveImm && !isTask {
		return queue.Flow{}, false
	}
	if immutable {
		f = f.Immutable()
	}
	return f, true
}

// list reads a non-empty array of nodes, the i-th at s.path.name[i].
func (s *flowScan) list(name string, depth int) ([]queue.Flow, bool) {
	if !s.eat('[') {
		return nil, false
	}
	base := len(s.path)
	defer func() { s.path = s.path[:base] }()
	// The nodes go on s.stack (shared by the nested lists) and are
	// copied out once at the end: one allocation a list.
	top := len(s.stack)
	defer func() { s.stack = s.stack[:top] }()
	for i := 0; ; i++ {
		s.ws()
		if s.peek() != '{' {
			return nil, false
		}
		s.path = append(s.path[:base], '.')
		s.path = append(s.path, name...)
		s.path = append(s.path, '[')
		s.path = strconv.AppendInt(s.path, int64(i), 10)
		s.path = append(s.path, ']')
		f, ok := s.node(depth + 1)
		if !ok {
			return nil, false
		}
		s.stack = append(s.stack, f)
		s.ws()
		if s.eat(',') {
			continue
		}
		if !s.eat(']') {
			return nil, false
		}
		return slices.Clone(s.stack[top:]), true
	}
}

// chord reads a chord's object; a body before the header is read after it.
func (s *flowScan) chord(depth int) (queue.Flow, bool) {
	var (
		header                 []queue.Flow
		body                   queue.Flow
		haveHeader, haveBody   bool
		tolerate, haveTolerate bool
		bodyAt                 = -1
	)
	readBody := func() bool {
		base := len(s.path)
		s.path = append(s.path, ".chord.body"...)
		var ok bool
		body, ok = s.node(depth + 1)
		s.path = s.path[:base]
		return ok
	}
	ok := s.object(func(k []byte) bool {
		var ok bool
		switch string(k) {
		case "header":
			if haveHeader {
				return false
			}
			haveHeader = true
			header, ok = s.list("chord.header", depth)
		case "body":
			if haveBody || s.peek() != '{' {
				return false
			}
			haveBody = true
			if haveHeader {
				return readBody()
			}
			bodyAt = s.i
			ok = s.skip(0)
		case "tolerate_failures":
			if haveTolerate {
				return false
			}
			haveTolerate = true
			tolerate, ok = s.boolean()
		}
		return ok
	})
	if !ok || !haveHeader || !haveBody {
		return queue.Flow{}, false
	}
	if bodyAt >= 0 {
		end := s.i
		s.i = bodyAt
		if !readBody() {
			return queue.Flow{}, false
		}
		s.i = end
	}
	c := queue.Chord(header, body)
	if tolerate {
		c = c.TolerateFailures()
	}
	return c, true
}

// task reads a task node's specification.
func (s *flowScan) task() (queue.Flow, bool) {
	if len(s.steps) >= s.max {
		return queue.Flow{}, false
	}
	var w specWire
	ok := s.taskWire(&w)
	if !ok {
		return queue.Flow{}, false
	}
	// The raw values point into data; spec copies what it keeps.
	t, err := w.strict()
	if err != nil || t.ID != "" || t.Unique != nil {
		return queue.Flow{}, false
	}
	st := scanStep{spec: t, task: new(queue.Task), path: string(s.path) + ".task"}
	s.steps = append(s.steps, st)
	return queue.Step(st.task), true
}

// taskWire reads a task object into *w as a strict decoder would, the
// raw values pointing into s.data; false for anything it does not take
// (see scanFlow: exact names, no field twice, not "retries" or "in").
func (s *flowScan) taskWire(w *specWire) bool {
	return s.object(func(k []byte) bool {
		switch string(k) {
		case "kind":
			return s.strPtr(&w.Kind)
		case "payload":
			return s.raw(&w.Payload)
		case "payload_base64":
			return s.strPtr(&w.PayloadBase64)
		case "payload_text":
			return s.strPtr(&w.PayloadText)
		case "args":
			return s.raw(&w.Args)
		case "kwargs":
			return s.raw(&w.Kwargs)
		case "queue":
			return s.strPtr(&w.Queue)
		case "max_retries":
			return s.raw(&w.MaxRetries)
		case "timeout":
			return s.raw(&w.Timeout)
		case "deadline":
			return s.raw(&w.Deadline)
		case "process_at":
			return s.raw(&w.ProcessAt)
		case "process_in":
			return s.raw(&w.ProcessIn)
		case "retention":
			return s.raw(&w.Retention)
		case "id":
			return s.strPtr(&w.ID)
		case "unique":
			return s.raw(&w.Unique)
		case "unique_key":
			return s.strPtr(&w.UniqueKey)
		}
		return false // "retries", "in" (refused here) and unknown fields
	})
}

// raw reads a value as a json.RawMessage field would be (its bytes,
// "null" included); a second one for the same field is refused.
func (s *flowScan) raw(dst *json.RawMessage) bool {
	if *dst != nil {
		return false
	}
	start := s.i
	if !s.skip(0) {
		return false
	}
	*dst = s.data[start:s.i]
	return true
}

// strPtr reads a *string field: a string, or null for none. A second
// string for the same field is refused (null then a string decodes as
// the string, as encoding/json does).
func (s *flowScan) strPtr(dst **string) bool {
	if *dst != nil {
		return false
	}
	if s.peek() == 'n' {
		return s.literal("null")
	}
	v, ok := s.str()
	if ok {
		*dst = &v
	}
	return ok
}

// str reads a string. One without escapes and of valid UTF-8 is its
// bytes; any other goes through encoding/json, as it would in parseFlow.
func (s *flowScan) str() (string, bool) {
	start := s.i
	plain, ok := s.skipString()
	if !ok {
		return "", false
	}
	if b := s.data[start+1 : s.i-1]; plain && utf8.Valid(b) {
		return string(b), true
	}
	var v string
	if json.Unmarshal(s.data[start:s.i], &v) != nil {
		return "", false
	}
	return v, true
}

func (s *flowScan) boolean() (bool, bool) {
	switch s.peek() {
	case 't':
		return true, s.literal("true")
	case 'f':
		return false, s.literal("false")
	}
	return false, false
}

func (s *flowScan) literal(lit string) bool {
	if len(s.data)-s.i < len(lit) || string(s.data[s.i:s.i+len(lit)]) != lit {
		return false
	}
	s.i += len(lit)
	return true
}

// skipString reads a JSON string (s.i at its quote) as encoding/json's
// scanner takes it: no control characters, only JSON's escapes; plain
// is whether it has no escapes.
func (s *flowScan) skipString() (plain, ok bool) {
	if !s.eat('"') {
		return false, false
	}
	plain = true
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '"':
			s.i++
			return plain, true
		case c < 0x20:
			return false, false
		case c == '\\':
			plain = false
			s.i++
			if s.i == len(s.data) {
				return false, false
			}
			switch s.data[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if len(s.data)-s.i < 5 {
					return false, false
				}
				for _, h := range s.data[s.i+1 : s.i+5] {
					if !('0' <= h && h <= '9' || 'a' <= h && h <= 'f' || 'A' <= h && h <= 'F') {
						return false, false
					}
				}
				s.i += 5
			default:
				return false, false
			}
		default:
			s.i++
		}
	}
	return false, false
}

// skip reads one JSON value, checking it as encoding/json's scanner
// would (up to scanMaxDepth levels).
func (s *flowScan) skip(depth int) bool {
	if depth > scanMaxDepth {
		return false
	}
	s.ws()
	switch c := s.peek(); {
	case c == '{':
		s.i++
		s.ws()
		if s.eat('}') {
			return true
		}
		for {
			s.ws()
			if _, ok := s.skipString(); !ok {
				return false
			}
			s.ws()
			if !s.eat(':') || !s.skip(depth+1) {
				return false
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			return s.eat('}')
		}
	case c == '[':
		s.i++
		s.ws()
		if s.eat(']') {
			return true
		}
		for {
			if !s.skip(depth + 1) {
				return false
			}
			s.ws()
			if s.eat(',') {
				continue
			}
			return s.eat(']')
		}
	case c == '"':
		_, ok := s.skipString()
		return ok
	case c == 't':
		return s.literal("true")
	case c == 'f':
		return s.literal("false")
	case c == 'n':
		return s.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return s.number()
	}
	return false
}

// number reads a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
// What follows it is the caller's to check.
func (s *flowScan) number() bool {
	digits := func() bool {
		start := s.i
		for s.i < len(s.data) && '0' <= s.data[s.i] && s.data[s.i] <= '9' {
			s.i++
		}
		return s.i > start
	}
	s.eat('-')
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case '1' <= c && c <= '9':
		digits()
	default:
		return false
	}
	if s.eat('.') && !digits() {
		return false
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if !digits() {
			return false
		}
	}
	return true
}
