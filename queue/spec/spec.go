package spec

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/internal/check"
)

// Task is a task as people write it down: one specification, with one
// set of field names and one duration grammar, read by `conq enqueue
// --file` (one JSON object a line), the HTTP API (POST /api/v1/tasks) and
// schedule files (YAML or JSON). It says everything Task and queue.Option can:
//
//	{"kind": "email.send",                 required
//	 "payload": {"to": "a@b.c"},           one JSON value (encoding "json"), or
//	 "payload_base64": "AAEC",             raw bytes (encoding "raw"), or
//	 "payload_text": "hello",              raw bytes given as text, or
//	 "args": [2, 3], "kwargs": {"b": 3},   a call's arguments (encoding "args")
//	 "queue": "mail",                      default "default"
//	 "max_retries": 3,                     0..1000000, default 5
//	 "timeout": "30s",                     per attempt
//	 "deadline": "2026-11-21T23:00:00Z",   RFC 3339
//	 "process_at": "2026-11-21T22:00:00Z", or "process_in": "1h"
//	 "retention": "1h",
//	 "id": "welcome-42",
//	 "unique": "2h",                       refuse duplicates for up to 2h,
//	 "unique_key": "user:42"}              keyed on this (default: kind, queue, payload)
//
// Durations are Go duration strings ("90s", "1m30s", "250ms") or numbers
// of seconds (90, 0.5, or the string "90"), from 0 to 100 years (see
// ParseDuration). Unknown fields are errors, so a typo does not drop a
// setting silently. With no payload field the payload is the JSON value
// null.
//
// The zero value of each field means "not set": the client's defaults (or
// the built-in ones) apply. Decode with encoding/json or gopkg.in/yaml.v3
// (both strict), check with Validate, and turn into a task with Task.
type Task struct {
	Kind string
	// Payload and Encoding: queue.EncodingJSON (one JSON value), queue.EncodingRaw
	// (bytes) or queue.EncodingArgs (the JSON object {"args": [...], "kwargs":
	// {...}}, as NewCallTask makes). A nil Payload with no Encoding is JSON null.
	Payload  []byte
	Encoding string

	Queue      string
	MaxRetries *int
	Timeout    *time.Duration
	Deadline   time.Time
	ProcessAt  time.Time
	ProcessIn  *time.Duration
	Retention  *time.Duration
	ID         string
	Unique     *Unique

	// built is the Payload the decoder built (specWire.spec) of encoding
	// "json" or "args": valid JSON of its encoding by construction, so
	// validatePayload does not decode it again while Payload is still
	// that slice (a Payload set afterwards is checked as always).
	built []byte
}

// Unique makes a task unique (see Unique and UniqueKey): TTL 0 means
// queue.DefaultUniqueTTL, Key "" means the task's kind, queue and payload.
type Unique struct {
	TTL time.Duration
	Key string
}

// Error is a bad field of a task specification. It wraps
// queue.ErrInvalidOption.
type Error struct {
	Field   string // e.g. "max_retries", "tasks[2].timeout" is left to callers
	Value   string // the value as given, shortened
	Problem string // e.g. "must be in 0..1000000"
}

func (e *Error) Error() string {
	if e.Field == "" {
		return e.Problem
	}
	if e.Value == "" {
		return e.Field + ": " + e.Problem
	}
	return e.Field + " " + e.Value + ": " + e.Problem
}

func (e *Error) Unwrap() error { return queue.ErrInvalidOption }

func specErr(field, value, format string, a ...any) *Error {
	if len(value) > 80 {
		value = strings.ToValidUTF8(value[:77], "") + "..."
	}
	return &Error{Field: field, Value: value, Problem: fmt.Sprintf(format, a...)}
}

// specProblem is an error of the specification as a whole.
func specProblem(format string, a ...any) *Error {
	return &Error{Problem: fmt.Sprintf(format, a...)}
}

// durationGrammar is how errors describe the duration grammar.
const durationGrammar = `want a Go duration like "90s" or "1h30m", or a number of seconds`

// ParseDuration parses a duration in the one grammar of task
// specifications, the CLI and the HTTP API: a Go duration string ("90s",
// "1m30s", "250ms", "2h45m"; units ns, us, ms, s, m, h) or a plain decimal
// number of seconds ("90", "0.5"). Surrounding spaces are ignored. It does
// not check ranges: each option has its own.
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty duration: " + durationGrammar)
	}
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	if isDecimal(s) {
		f, err := strconv.ParseFloat(s, 64)
		if err == nil {
			return secondsDuration(f)
		}
	}
	return 0, errors.New(durationGrammar)
}

// isDecimal: an optional sign, digits, an optional fraction; no exponents,
// no "NaN" or "Inf".
func isDecimal(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	digits, dot := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			digits++
		case c == '.' && !dot:
			dot = true
		default:
			return false
		}
	}
	return digits > 0
}

// secondsDuration converts seconds to a Duration, refusing what does not
// fit (about 292 years).
func secondsDuration(f float64) (time.Duration, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > float64(math.MaxInt64)/float64(time.Second)-1 {
		return 0, errors.New("is too large for a duration")
	}
	return time.Duration(math.Round(f * float64(time.Second))), nil
}

// specWire is a specification as decoded from JSON: raw values, parsed one
// by one so that errors name the field. Legacy names are accepted only by
// the inputs that had them (see ParseLine).
type specWire struct {
	Kind          *string         `json:"kind"`
	Payload       json.RawMessage `json:"payload"`
	PayloadBase64 *string         `json:"payload_base64"`
	PayloadText   *string         `json:"payload_text"`
	Args          json.RawMessage `json:"args"`
	Kwargs        json.RawMessage `json:"kwargs"`
	Queue         *string         `json:"queue"`
	MaxRetries    json.RawMessage `json:"max_retries"`
	Timeout       json.RawMessage `json:"timeout"`
	Deadline      json.RawMessage `json:"deadline"`
	ProcessAt     json.RawMessage `json:"process_at"`
	ProcessIn     json.RawMessage `json:"process_in"`
	Retention     json.RawMessage `json:"retention"`
	ID            *string         `json:"id"`
	Unique        json.RawMessage `json:"unique"`
	UniqueKey     *string         `json:"unique_key"`

	// Older names of `conq enqueue --file` lines.
	Retries json.RawMessage `json:"retries"`
	In      json.RawMessage `json:"in"`
}

// set reports whether a raw field was given (null counts as not given).
func set(r json.RawMessage) bool { return len(r) > 0 && string(r) != "null" }

// UnmarshalJSON decodes a specification strictly: unknown fields, bad
// values and more than one payload form are errors naming the field.
func (s *Task) UnmarshalJSON(b []byte) error {
	v, err := decodeSpec(b, false)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// Parse decodes one JSON task specification (see Task) and
// validates it.
func Parse(data []byte) (Task, error) {
	s, err := decodeSpec(data, false)
	if err == nil {
		err = s.Validate()
	}
	return s, err
}

// ParseLine decodes one line of a tasks file (`conq enqueue --file`):
// a JSON task specification that may also use the names the file had
// before Task, "retries" for max_retries and "in" for process_in. It
// does not validate.
func ParseLine(line []byte) (Task, error) {
	return decodeSpec(line, true)
}

// ParseList decodes a JSON array of task specifications as UnmarshalJSON
// decodes each (it does not validate). On failure it also returns the
// index of the first bad element, or -1 when raw is not a JSON array.
//
// Why not one Unmarshal per element: a batch of thousands of small
// specifications spent most of its decoding time setting up a strict
// decoder per element. The whole array goes through one strict decoder;
// only when that fails are the elements decoded one by one, to name the
// first bad one with the error UnmarshalJSON gives it.
//
// Before that, scanList reads a list of the usual form in one pass,
// without encoding/json's decoder; it declines anything else, which then
// goes the way above, so results and errors are the same.
func ParseList(raw []byte) ([]Task, int, error) {
	if out, ok := scanList(raw); ok {
		return out, -1, nil
	}
	return parseList(raw)
}

// parseList is ParseList with encoding/json's decoder.
func parseList(raw []byte) ([]Task, int, error) {
	var ws []specWire
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if dec.Decode(&ws) == nil && ws != nil {
		if _, err := dec.Token(); err == io.EOF {
			out := make([]Task, len(ws))
			for i := range ws {
				t, err := ws[i].strict()
				if err != nil {
					return nil, i, err
				}
				out[i] = t
			}
			return out, -1, nil
		}
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return nil, -1, specProblem("want a JSON array of task objects")
	}
	out := make([]Task, len(items))
	for i, it := range items {
		t, err := decodeSpec(it, false)
		if err != nil {
			return nil, i, err
		}
		out[i] = t
	}
	return out, -1, nil
}

func decodeSpec(b []byte, legacy bool) (Task, error) {
	var w specWire
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return Task{}, specSyntaxError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Task{}, specProblem("more than one JSON value")
	}
	if !legacy {
		return w.strict()
	}
	return w.spec()
}

// strict is spec without the older names of tasks files.
func (w *specWire) strict() (Task, error) {
	if w.Retries != nil {
		return Task{}, specProblem("unknown field %q", "retries")
	}
	if w.In != nil {
		return Task{}, specProblem("unknown field %q", "in")
	}
	return w.spec()
}

// specSyntaxError rewords encoding/json's errors: no Go type names.
func specSyntaxError(err error) error {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute) && ute.Field == "":
		return specProblem("not a task object: got a JSON %s", ute.Value)
	case errors.As(err, &ute):
		return &Error{Field: ute.Field, Problem: fmt.Sprintf("got a JSON %s, want a %s", ute.Value, strings.TrimPrefix(ute.Type.String(), "*"))}
	case errors.As(err, &se):
		return specProblem("not a task object: invalid JSON: %s", strings.TrimPrefix(se.Error(), "json: "))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return specProblem("not a task object: invalid JSON: unexpected end of input")
	case errors.Is(err, io.EOF):
		return specProblem("empty: want a JSON task object")
	}
	return specProblem("%s", strings.TrimPrefix(err.Error(), "json: "))
}

func (w *specWire) spec() (Task, error) {
	var s Task
	if w.Kind != nil {
		s.Kind = *w.Kind
	}
	forms := 0
	if set(w.Payload) {
		forms++
		var buf bytes.Buffer
		if err := json.Compact(&buf, w.Payload); err != nil {
			return s, specErr("payload", "", "%v", err)
		}
		s.Payload, s.Encoding = buf.Bytes(), queue.EncodingJSON
		s.built = s.Payload
	}
	if w.PayloadBase64 != nil {
		forms++
		p, err := base64.StdEncoding.DecodeString(*w.PayloadBase64)
		if err != nil {
			return s, specErr("payload_base64", "", "not standard base64: %v", err)
		}
		s.Payload, s.Encoding = p, queue.EncodingRaw
	}
	if w.PayloadText != nil {
		forms++
		s.Payload, s.Encoding = []byte(*w.PayloadText), queue.EncodingRaw
	}
	if set(w.Args) || set(w.Kwargs) {
		forms++
		p, err := callPayload(w.Args, w.Kwargs)
		if err != nil {
			return s, err
		}
		s.Payload, s.Encoding = p, queue.EncodingArgs
		s.built = p
	}
	if forms > 1 {
		return s, specProblem("give one of payload, payload_base64, payload_text or args/kwargs, not several")
	}
	if s.Payload == nil && s.Encoding == "" && w.Payload != nil {
		s.Payload, s.Encoding = []byte("null"), queue.EncodingJSON // "payload": null
	}
	if w.Queue != nil {
		s.Queue = *w.Queue
		if s.Queue == "" {
			return s, specErr("queue", `""`, "empty queue name")
		}
	}
	if w.ID != nil {
		s.ID = *w.ID
		if s.ID == "" {
			return s, specErr("id", `""`, "empty task ID")
		}
	}
	var err error
	if s.MaxRetries, err = specInt("max_retries", w.MaxRetries); err != nil {
		return s, err
	}
	if set(w.Retries) {
		if s.MaxRetries != nil {
			return s, specProblem("give max_retries or retries, not both")
		}
		if s.MaxRetries, err = specInt("retries", w.Retries); err != nil {
			return s, err
		}
	}
	if s.Timeout, err = specDuration("timeout", w.Timeout); err != nil {
		return s, err
	}
	if s.ProcessIn, err = specDuration("process_in", w.ProcessIn); err != nil {
		return s, err
	}
	if set(w.In) {
		if s.ProcessIn != nil {
			return s, specProblem("give process_in or in, not both")
		}
		if s.ProcessIn, err = specDuration("in", w.In); err != nil {
			return s, err
		}
	}
	if s.Retention, err = specDuration("retention", w.Retention); err != nil {
		return s, err
	}
	if s.Deadline, err = specTime("deadline", w.Deadline); err != nil {
		return s, err
	}
	if s.ProcessAt, err = specTime("process_at", w.ProcessAt); err != nil {
		return s, err
	}
	if !s.ProcessAt.IsZero() && s.ProcessIn != nil {
		return s, specProblem("give process_at or process_in, not both")
	}
	if set(w.Unique) || w.UniqueKey != nil {
		u, err := specUnique(w.Unique, w.UniqueKey)
		if err != nil {
			return s, err
		}
		s.Unique = u
	}
	return s, nil
}

// wireArgs is the payload of an EncodingArgs task (queue.NewCallTask
// makes the same): both fields always written, as [] and {} when empty.
type wireArgs struct {
	Args   []json.RawMessage          `json:"args"`
	Kwargs map[string]json.RawMessage `json:"kwargs"`
}

// callPayload builds an queue.EncodingArgs payload from the args array and the
// kwargs object (either may be missing): {"args":[...],"kwargs":{...}},
// compact, the values as given. Both come from a decoded document, so
// they are valid JSON; only their kind is checked here.
func callPayload(args, kwargs json.RawMessage) ([]byte, error) {
	if set(args) && firstByte(args) != '[' {
		return nil, specErr("args", "", "want a JSON array of arguments")
	}
	if set(kwargs) && firstByte(kwargs) != '{' {
		return nil, specErr("kwargs", "", "want a JSON object of keyword arguments")
	}
	var b bytes.Buffer
	b.Grow(len(args) + len(kwargs) + len(`{"args":,"kwargs":}`) + 4)
	b.WriteString(`{"args":`)
	if !set(args) {
		b.WriteString("[]")
	} else if err := json.Compact(&b, args); err != nil {
		return nil, specErr("args", "", "want a JSON array of arguments")
	}
	b.WriteString(`,"kwargs":`)
	if !set(kwargs) {
		b.WriteString("{}")
	} else if err := json.Compact(&b, kwargs); err != nil {
		return nil, specErr("kwargs", "", "want a JSON object of keyword arguments")
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// firstByte is the first byte of a JSON value that is not white space.
func firstByte(r json.RawMessage) byte {
	for _, c := range r {
		switch c {
		case ' ', '\t', '\n', '\r':
		default:
			return c
		}
	}
	return 0
}

// specInt reads an integer field (a JSON number without fraction).
func specInt(field string, r json.RawMessage) (*int, error) {
	if !set(r) {
		return nil, nil
	}
	s := string(r)
	if s[0] == '"' {
		return nil, specErr(field, s, "want a number, not a string")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < math.MinInt || n > math.MaxInt {
		return nil, specErr(field, s, "not an integer in 0..%d", queue.MaxRetriesLimit)
	}
	v := int(n)
	return &v, nil
}

// specDuration reads a duration field: a string in ParseDuration's grammar
// or a JSON number of seconds.
func specDuration(field string, r json.RawMessage) (*time.Duration, error) {
	if !set(r) {
		return nil, nil
	}
	var d time.Duration
	if r[0] == '"' {
		var s string
		if err := json.Unmarshal(r, &s); err != nil {
			return nil, specErr(field, string(r), "%v", err)
		}
		v, err := ParseDuration(s)
		if err != nil {
			return nil, specErr(field, strconv.Quote(s), "%v", err)
		}
		d = v
	} else {
		f, err := strconv.ParseFloat(string(r), 64)
		if err != nil {
			return nil, specErr(field, string(r), "%s", durationGrammar)
		}
		if d, err = secondsDuration(f); err != nil {
			return nil, specErr(field, string(r), "%v", err)
		}
	}
	return &d, nil
}

// specTime reads an RFC 3339 time.
func specTime(field string, r json.RawMessage) (time.Time, error) {
	if !set(r) {
		return time.Time{}, nil
	}
	var s string
	if err := json.Unmarshal(r, &s); err != nil {
		return time.Time{}, specErr(field, string(r), `want an RFC 3339 time like "2026-11-21T23:00:00Z"`)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, specErr(field, strconv.Quote(s), `want an RFC 3339 time like "2026-11-21T23:00:00Z"`)
	}
	return t, nil
}

// specUnique reads "unique" (the lock's time to live, a duration) and
// "unique_key" (the lock's key); either makes the task unique.
func specUnique(ttl json.RawMessage, key *string) (*Unique, error) {
	u := &Unique{}
	d, err := specDuration("unique", ttl)
	if err != nil {
		return nil, err
	}
	if d != nil {
		if *d <= 0 {
			return nil, specErr("unique", string(ttl), "must be positive: the time the lock lasts at most (leave it out with unique_key for the default, 24h)")
		}
		u.TTL = *d
	}
	if key != nil {
		if *key == "" {
			return nil, specErr("unique_key", `""`, "empty key (leave it out to key on kind, queue and payload)")
		}
		u.Key = *key
	}
	return u, nil
}

// UnmarshalYAML decodes a specification from YAML: the same fields and
// grammar as JSON (the YAML is turned into JSON first), so `timeout: 90`
// is 90 seconds and `payload: {to: a@b.c}` a JSON object.
func (s *Task) UnmarshalYAML(n *yaml.Node) error {
	b, err := yamlToJSON(n)
	if err != nil {
		return err
	}
	v, err := decodeSpec(b, false)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	*s = v
	return nil
}

// yamlToJSON converts a YAML mapping node to a JSON object.
func yamlToJSON(n *yaml.Node) ([]byte, error) {
	if n.Kind != yaml.MappingNode {
		return nil, specProblem("line %d: want a mapping of task fields", n.Line)
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, specProblem("line %d: %v", n.Line, err)
	}
	v, err := jsonable(v)
	if err != nil {
		return nil, specProblem("line %d: %v", n.Line, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, specProblem("line %d: %v", n.Line, err)
	}
	return b, nil
}

// jsonable turns what yaml.v3 decodes into a value encoding/json takes:
// mappings need string keys, and numbers must be finite.
func jsonable(v any) (any, error) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[k] = j
		}
		return x, nil
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			ks, ok := k.(string)
			if !ok {
				return nil, fmt.Errorf("mapping key %v is not a string (JSON objects have string keys)", k)
			}
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			m[ks] = j
		}
		return m, nil
	case []any:
		for i, e := range x {
			j, err := jsonable(e)
			if err != nil {
				return nil, err
			}
			x[i] = j
		}
		return x, nil
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%v is not a JSON number", x)
		}
	case []byte: // !!binary
		if !utf8.Valid(x) {
			return base64.StdEncoding.EncodeToString(x), nil
		}
		return string(x), nil
	}
	return v, nil
}

// Validate checks every field against its range, naming the field: the
// kind (required), the payload's encoding and JSON, the queue name, retries
// (0..MaxRetriesLimit), durations (0 to queue.MaxDuration), times (1970 to 2200;
// a deadline must not have passed, and a task must be due before it), the
// ID and the unique key. The payload's size is the client's to check
// (ClientConfig.MaxPayloadSize).
func (s Task) Validate() error {
	if err := s.validateKind(); err != nil {
		return err
	}
	if err := s.validatePayload(); err != nil {
		return err
	}
	return s.validateOptions(time.Now())
}

// validateDecoded is Validate for a specification decoded from JSON by
// specWire.spec (the flow scan's steps): its payload is valid by construction
// (json.Compact of a decoded value, decoded base64 or text, or
// callPayload's object), so only the kind and the options are checked.
func (s Task) validateDecoded() error {
	if err := s.validateKind(); err != nil {
		return err
	}
	return s.validateOptions(time.Now())
}

func (s Task) validateKind() error {
	if s.Kind == "" {
		return specErr("kind", "", "missing (every task needs one)")
	}
	if p := check.Token("kind", s.Kind, check.MaxKind); p != "" {
		return &Error{Field: "kind", Problem: p}
	}
	return nil
}

func (s Task) validatePayload() error {
	if s.Payload == nil && s.Encoding == "" {
		return nil
	}
	enc, p := check.Encoding(s.Encoding)
	if p != "" {
		return specErr("encoding", strconv.Quote(s.Encoding), "want %q, %q or %q", queue.EncodingRaw, queue.EncodingJSON, queue.EncodingArgs)
	}
	if (enc == queue.EncodingJSON || enc == queue.EncodingArgs) && s.payloadBuilt() {
		// callPayload's object or json.Compact's value: what the checks
		// below would accept.
		return nil
	}
	switch enc {
	case queue.EncodingJSON:
		if !json.Valid(s.Payload) {
			return specErr("payload", "", "not valid JSON")
		}
	case queue.EncodingArgs:
		// Raw parts, checked by their first byte: the payload is valid
		// JSON once Unmarshal succeeds, and nothing else is needed of it.
		var ca struct {
			Args   json.RawMessage `json:"args"`
			Kwargs json.RawMessage `json:"kwargs"`
		}
		if err := json.Unmarshal(s.Payload, &ca); err != nil || firstByte(ca.Args) != '[' || firstByte(ca.Kwargs) != '{' {
			return specErr("args", "", `an "args" payload is the JSON object {"args": [...], "kwargs": {...}}`)
		}
	}
	return nil
}

// payloadBuilt reports whether Payload is still the slice the decoder
// built (not only equal bytes: the same array, the same length).
func (s Task) payloadBuilt() bool {
	return len(s.Payload) > 0 && len(s.built) == len(s.Payload) && &s.built[0] == &s.Payload[0]
}

// validateOptions checks every field but kind and payload.
func (s Task) validateOptions(now time.Time) error {
	if s.Queue != "" {
		if p := check.QueueName(s.Queue); p != "" {
			return &Error{Field: "queue", Problem: p}
		}
	}
	if s.MaxRetries != nil {
		if p := check.Retries(*s.MaxRetries); p != "" {
			return specErr("max_retries", strconv.Itoa(*s.MaxRetries), "%s", p)
		}
	}
	for _, d := range []struct {
		field string
		v     *time.Duration
	}{{"timeout", s.Timeout}, {"process_in", s.ProcessIn}, {"retention", s.Retention}} {
		if d.v == nil {
			continue
		}
		if p := check.Duration(*d.v); p != "" {
			return specErr(d.field, d.v.String(), "%s", p)
		}
	}
	for _, t := range []struct {
		field string
		v     time.Time
	}{{"deadline", s.Deadline}, {"process_at", s.ProcessAt}} {
		if t.v.IsZero() {
			continue
		}
		if p := check.Time(t.v); p != "" {
			return specErr(t.field, t.v.Format(time.RFC3339), "%s", p)
		}
	}
	if !s.ProcessAt.IsZero() && s.ProcessIn != nil {
		return specProblem("give process_at or process_in, not both")
	}
	if !s.Deadline.IsZero() {
		if !s.Deadline.After(now) {
			return specErr("deadline", s.Deadline.Format(time.RFC3339), "has already passed")
		}
		at := s.ProcessAt
		if s.ProcessIn != nil {
			at = now.Add(*s.ProcessIn)
		}
		if !at.IsZero() && !at.Before(s.Deadline) {
			return specErr("deadline", s.Deadline.Format(time.RFC3339), "is not after the time the task is due, %s", at.Format(time.RFC3339))
		}
	}
	if s.ID != "" {
		if p := check.Token("ID", s.ID, check.MaxID); p != "" {
			return &Error{Field: "id", Problem: p}
		}
	}
	if u := s.Unique; u != nil {
		if u.TTL < 0 {
			return specErr("unique", u.TTL.String(), "must be positive")
		}
		if p := check.Duration(u.TTL); p != "" {
			return specErr("unique", u.TTL.String(), "%s", p)
		}
		if u.Key != "" {
			if p := check.Token("unique key", u.Key, check.MaxID); p != "" {
				return &Error{Field: "unique_key", Problem: p}
			}
		}
	}
	return nil
}

// WithDefaults returns s with every option it does not set taken from d
// (d's kind, payload and ID are ignored): how a batch's or a command
// line's options become the defaults of each task.
func (s Task) WithDefaults(d Task) Task {
	if s.Queue == "" {
		s.Queue = d.Queue
	}
	if s.MaxRetries == nil {
		s.MaxRetries = d.MaxRetries
	}
	if s.Timeout == nil {
		s.Timeout = d.Timeout
	}
	if s.Deadline.IsZero() {
		s.Deadline = d.Deadline
	}
	if s.ProcessAt.IsZero() && s.ProcessIn == nil {
		s.ProcessAt, s.ProcessIn = d.ProcessAt, d.ProcessIn
	}
	if s.Retention == nil {
		s.Retention = d.Retention
	}
	if s.Unique == nil {
		s.Unique = d.Unique
	}
	return s
}

// Options returns the options s sets, in the form Enqueue takes.
func (s Task) Options() []queue.Option {
	n := 0
	for _, set := range [...]bool{s.Queue != "", s.MaxRetries != nil, s.Timeout != nil, !s.Deadline.IsZero(),
		!s.ProcessAt.IsZero(), s.ProcessIn != nil, s.Retention != nil, s.ID != "", s.Unique != nil} {
		if set {
			n++
		}
	}
	if s.Unique != nil {
		n++ // Unique and UniqueKey
	}
	var opts []queue.Option
	if n > 0 {
		opts = make([]queue.Option, 0, n) // one allocation, not append's growing
	}
	if s.Queue != "" {
		opts = append(opts, queue.Queue(s.Queue))
	}
	if s.MaxRetries != nil {
		opts = append(opts, queue.MaxRetries(*s.MaxRetries))
	}
	if s.Timeout != nil {
		opts = append(opts, queue.Timeout(*s.Timeout))
	}
	if !s.Deadline.IsZero() {
		opts = append(opts, queue.Deadline(s.Deadline))
	}
	if !s.ProcessAt.IsZero() {
		opts = append(opts, queue.ProcessAt(s.ProcessAt))
	}
	if s.ProcessIn != nil {
		opts = append(opts, queue.ProcessIn(*s.ProcessIn))
	}
	if s.Retention != nil {
		opts = append(opts, queue.Retention(*s.Retention))
	}
	if s.ID != "" {
		opts = append(opts, queue.TaskID(s.ID))
	}
	if u := s.Unique; u != nil {
		if u.TTL > 0 {
			opts = append(opts, queue.Unique(u.TTL))
		}
		if u.Key != "" {
			opts = append(opts, queue.UniqueKey(u.Key))
		}
		if u.TTL == 0 && u.Key == "" {
			opts = append(opts, queue.Unique(queue.DefaultUniqueTTL))
		}
	}
	return opts
}

// Task validates s and returns it as a task to enqueue, its options
// included.
func (s Task) Task() (*queue.Task, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	t := new(queue.Task)
	s.fill(t)
	return t, nil
}

// fill sets *t to s as a task to enqueue, without validating s.
func (s Task) fill(t *queue.Task) {
	payload, enc := s.Payload, s.Encoding
	if payload == nil && enc == "" {
		payload, enc = []byte("null"), queue.EncodingJSON
	}
	if enc == "" {
		enc = queue.EncodingRaw
	}
	*t = queue.Task{Kind: s.Kind, Payload: payload, Encoding: enc, Options: s.Options()}
}

// MarshalJSON writes s in its canonical form: durations as Go duration
// strings, times in RFC 3339, the payload as "payload" (JSON),
// "payload_base64" (raw) or "args" and "kwargs".
func (s Task) MarshalJSON() ([]byte, error) {
	type wire struct {
		Kind          string                     `json:"kind,omitempty"`
		Payload       json.RawMessage            `json:"payload,omitempty"`
		PayloadBase64 *string                    `json:"payload_base64,omitempty"`
		Args          *[]json.RawMessage         `json:"args,omitempty"`
		Kwargs        map[string]json.RawMessage `json:"kwargs,omitempty"`
		Queue         string                     `json:"queue,omitempty"`
		MaxRetries    *int                       `json:"max_retries,omitempty"`
		Timeout       string                     `json:"timeout,omitempty"`
		Deadline      string                     `json:"deadline,omitempty"`
		ProcessAt     string                     `json:"process_at,omitempty"`
		ProcessIn     string                     `json:"process_in,omitempty"`
		Retention     string                     `json:"retention,omitempty"`
		ID            string                     `json:"id,omitempty"`
		Unique        string                     `json:"unique,omitempty"`
		UniqueKey     string                     `json:"unique_key,omitempty"`
	}
	w := wire{Kind: s.Kind, Queue: s.Queue, MaxRetries: s.MaxRetries, ID: s.ID}
	switch {
	case s.Payload == nil && s.Encoding == "":
	case s.Encoding == queue.EncodingJSON:
		w.Payload = s.Payload
	case s.Encoding == queue.EncodingArgs:
		var ca wireArgs
		if err := json.Unmarshal(s.Payload, &ca); err != nil {
			return nil, fmt.Errorf("queue: Task: args payload: %w", err)
		}
		if ca.Args == nil {
			ca.Args = []json.RawMessage{} // "args" is always written: it marks the encoding
		}
		w.Args, w.Kwargs = &ca.Args, ca.Kwargs
	default:
		b := base64.StdEncoding.EncodeToString(s.Payload)
		w.PayloadBase64 = &b
	}
	dur := func(d *time.Duration) string {
		if d == nil {
			return ""
		}
		return d.String()
	}
	tm := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.Format(time.RFC3339Nano)
	}
	w.Timeout, w.ProcessIn, w.Retention = dur(s.Timeout), dur(s.ProcessIn), dur(s.Retention)
	w.Deadline, w.ProcessAt = tm(s.Deadline), tm(s.ProcessAt)
	if u := s.Unique; u != nil {
		w.UniqueKey = u.Key
		if u.TTL != 0 {
			w.Unique = u.TTL.String()
		} else if u.Key == "" {
			w.Unique = queue.DefaultUniqueTTL.String() // what Unique{} means
		}
	}
	return json.Marshal(w)
}
