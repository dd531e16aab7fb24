package redis

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

// A task is kept in four per-queue hashes, keyed by task ID:
//
//   msg     the message, written once: "maxRetries,retentionNs," in text
//           (the scripts read these two) followed by a binary record
//           (see encodeMsg) ending with the raw payload.
//   meta    the mutable part as one short string the scripts parse:
//           "state,attempts,maxRetries,retentionNs,token,leaseUntilNs,
//           startedAtNs,completedAtNs,workerID" (state is one letter,
//           times are Unix nanoseconds, 0 for none; the worker ID is last
//           so it may contain commas). A task that never left the pending
//           state has no meta at all: the common case costs one hash entry.
//   errors  JSON array of attempt errors, only for tasks that failed.
//   results result bytes, only for completed tasks that keep one.
//
// Times are computed in Go and passed to scripts as strings: Lua numbers are
// doubles and cannot hold Unix nanoseconds exactly. Sorted-set scores are
// Unix milliseconds.

// msgVersion 2 added the payload encoding after the kind; version 1
// records (written before it) are still read, with no encoding.
// msgVersion 3 (written for workflow steps only, so plain tasks keep
// version 2's size) adds the workflow ID and step number before the
// payload.
const (
	msgVersion1  = 1
	msgVersion   = 2
	msgVersionWf = 3
)

var errCorrupt = errors.New("redis broker: corrupt task record")

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

func millis(t time.Time) int64 { return t.UnixMilli() }

func encodeMsg(t *broker.Task) []byte {
	b := make([]byte, 0, 48+len(t.Kind)+len(t.Encoding)+len(t.Payload))
	b = strconv.AppendInt(b, int64(t.MaxRetries), 10)
	b = append(b, ',')
	b = strconv.AppendInt(b, int64(t.Retention), 10)
	if t.Workflow != "" {
		b = append(b, ',', msgVersionWf)
	} else {
		b = append(b, ',', msgVersion)
	}
	b = binary.AppendUvarint(b, uint64(len(t.Kind)))
	b = append(b, t.Kind...)
	b = binary.AppendUvarint(b, uint64(len(t.Encoding)))
	b = append(b, t.Encoding...)
	b = binary.AppendVarint(b, int64(t.Timeout))
	b = binary.AppendVarint(b, nanos(t.Deadline))
	b = binary.AppendVarint(b, nanos(t.EnqueuedAt))
	b = binary.AppendVarint(b, nanos(t.ProcessAt))
	if t.Workflow != "" {
		b = binary.AppendUvarint(b, uint64(len(t.Workflow)))
		b = append(b, t.Workflow...)
		b = binary.AppendVarint(b, int64(t.Step))
	}
	return append(b, t.Payload...)
}

// decodeMsg reads a message as returned by go-redis (a string), copying
// only the payload.
func decodeMsg(s string, t *broker.Task) error {
	var head [2]int64
	for i := range head {
		j := strings.IndexByte(s, ',')
		if j < 0 {
			return fmt.Errorf("%w: message header", errCorrupt)
		}
		v, err := strconv.ParseInt(s[:j], 10, 64)
		if err != nil {
			return fmt.Errorf("%w: message header", errCorrupt)
		}
		head[i], s = v, s[j+1:]
	}
	t.MaxRetries = int(head[0])
	t.Retention = time.Duration(head[1])
	if len(s) == 0 || (s[0] != msgVersion && s[0] != msgVersion1 && s[0] != msgVersionWf) {
		return fmt.Errorf("%w: unknown message version", errCorrupt)
	}
	version := s[0]
	s = s[1:]
	str := func() (string, bool) {
		n, k := uvarint(s)
		if k <= 0 || uint64(len(s)-k) < n {
			return "", false
		}
		v := s[k : k+int(n)]
		s = s[k+int(n):]
		return v, true
	}
	var ok bool
	if t.Kind, ok = str(); !ok {
		return errCorrupt
	}
	if version >= msgVersion {
		if t.Encoding, ok = str(); !ok {
			return errCorrupt
		}
	}
	var v [4]int64
	for i := range v {
		x, k := varint(s)
		if k <= 0 {
			return errCorrupt
		}
		v[i], s = x, s[k:]
	}
	t.Timeout = time.Duration(v[0])
	t.Deadline = fromNanos(v[1])
	t.EnqueuedAt = fromNanos(v[2])
	t.ProcessAt = fromNanos(v[3])
	if version == msgVersionWf {
		if t.Workflow, ok = str(); !ok || t.Workflow == "" {
			return errCorrupt
		}
		x, k := varint(s)
		if k <= 0 || x < 0 || x > math.MaxInt32 {
			return errCorrupt
		}
		t.Step, s = int(x), s[k:]
	}
	if len(s) > 0 {
		t.Payload = []byte(s)
	}
	return nil
}

// uvarint and varint are binary.Uvarint and binary.Varint on a string.
func uvarint(s string) (uint64, int) {
	var x uint64
	var sh uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<sh, i + 1
		}
		x |= uint64(c&0x7f) << sh
		sh += 7
	}
	return 0, 0
}

func varint(s string) (int64, int) {
	ux, n := uvarint(s)
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x, n
}

var stateCodes = map[broker.State]string{
	broker.StatePending: "p", broker.StateScheduled: "s", broker.StateActive: "a",
	broker.StateRetry: "r", broker.StateDead: "d", broker.StateCompleted: "c",
}

var codeStates = map[string]broker.State{
	"p": broker.StatePending, "s": broker.StateScheduled, "a": broker.StateActive,
	"r": broker.StateRetry, "d": broker.StateDead, "c": broker.StateCompleted,
}

// newMeta is the meta string of a task enqueued as scheduled.
func newMeta(t *broker.Task, state broker.State) string {
	return stateCodes[state] + ",0," + strconv.Itoa(t.MaxRetries) + "," +
		strconv.FormatInt(int64(t.Retention), 10) + ",0,0,0,0,"
}

func decodeMeta(s string, t *broker.Task) error {
	st, ok := codeStates[s[:min(1, len(s))]]
	if !ok || len(s) < 2 || s[1] != ',' {
		return fmt.Errorf("%w: meta %q", errCorrupt, s)
	}
	rest := s[2:]
	var n [7]int64
	for i := range n {
		j := strings.IndexByte(rest, ',')
		if j < 0 {
			return fmt.Errorf("%w: meta %q", errCorrupt, s)
		}
		v, err := strconv.ParseInt(rest[:j], 10, 64)
		if err != nil {
			return fmt.Errorf("%w: meta %q", errCorrupt, s)
		}
		n[i], rest = v, rest[j+1:]
	}
	t.State = st
	t.Attempts = int(n[0])
	t.MaxRetries = int(n[1])
	t.StartedAt = fromNanos(n[5])
	t.CompletedAt = fromNanos(n[6])
	if st == broker.StateActive {
		t.Token = uint64(n[3])
		t.LeaseUntil = fromNanos(n[4])
		t.WorkerID = rest
	}
	return nil
}

// errRecord is an AttemptError as stored. The scripts prepend the attempt
// number ("a") themselves, so encodeError's output must start with `{"t":`.
type errRecord struct {
	Attempt int    `json:"a"`
	At      int64  `json:"t"`
	Kind    string `json:"k,omitempty"`
	Message string `json:"m"`
	Stack   string `json:"s,omitempty"`
}

type errRecordNoAttempt struct {
	At      int64  `json:"t"`
	Kind    string `json:"k,omitempty"`
	Message string `json:"m"`
	Stack   string `json:"s,omitempty"`
}

func encodeError(e broker.AttemptError, now time.Time) string {
	at := e.At
	if at.IsZero() {
		at = now
	}
	b, _ := json.Marshal(errRecordNoAttempt{At: nanos(at), Kind: e.Kind, Message: e.Message, Stack: e.Stack})
	return string(b)
}

func decodeErrors(s string) ([]broker.AttemptError, error) {
	var recs []errRecord
	if err := json.Unmarshal([]byte(s), &recs); err != nil {
		return nil, fmt.Errorf("%w: errors: %v", errCorrupt, err)
	}
	out := make([]broker.AttemptError, len(recs))
	for i, r := range recs {
		out[i] = broker.AttemptError{Attempt: r.Attempt, At: fromNanos(r.At), Kind: r.Kind, Message: r.Message, Stack: r.Stack}
	}
	return out, nil
}

// decodeTask builds a task from a script's reply fields: msg, meta, errors
// and result (the last two may be nil).
func decodeTask(queue, id string, msg, meta, errs, result any) (*broker.Task, error) {
	ms, ok := msg.(string)
	if !ok {
		return nil, fmt.Errorf("%w: task %s/%s has no message", errCorrupt, queue, id)
	}
	t := &broker.Task{ID: id, Queue: queue, State: broker.StatePending}
	if err := decodeMsg(ms, t); err != nil {
		return nil, fmt.Errorf("task %s/%s: %w", queue, id, err)
	}
	if me, ok := meta.(string); ok { // else: never left pending
		if err := decodeMeta(me, t); err != nil {
			return nil, fmt.Errorf("task %s/%s: %w", queue, id, err)
		}
	}
	if s, ok := errs.(string); ok && s != "" {
		e, err := decodeErrors(s)
		if err != nil {
			return nil, fmt.Errorf("task %s/%s: %w", queue, id, err)
		}
		t.Errors = e
	}
	if s, ok := result.(string); ok {
		t.Result = []byte(s)
	}
	return t, nil
}

// cancelRecord is the error record the scripts store for an attempt of a
// task flagged for cancellation that a worker ended some other way.
func cancelRecord(now time.Time, msg string) string {
	return encodeError(broker.AttemptError{At: now, Kind: broker.ErrorKindCancelled, Message: msg}, now)
}
