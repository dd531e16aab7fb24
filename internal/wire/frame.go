// Package wire is the framing of the conq process-pool protocol, shared by
// the pool (procpool) and the Go worker SDK (procpool/worker). The format is
// specified in docs/protocol.md; the Python SDK (sdk/python/conq.py) is a
// second implementation of it and must stay in step.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Version is the newest protocol version; the pool sets EnvProtocol to it
// and accepts workers that announce 1 or 2 in their ready frame. A v1
// worker gets flags 0 and one call at a time.
const (
	Version   = 2
	VersionV1 = 1
)

// Flags of the header's flags byte (protocol 2; always 0 in version 1).
const (
	// FlagMeta (call frames): the payload starts with a big-endian uint32
	// length and that many bytes of a JSON Meta object, then the argument.
	FlagMeta uint8 = 0x01
	// FlagShm (call and result frames): the argument or result is in a
	// shared-memory segment; the rest of the payload is a Handle.
	FlagShm uint8 = 0x02
)

// Feature names a worker lists in its ready frame.
const (
	FeatureMeta = "meta"
	FeatureShm  = "shm"
	// FeatureSigCancel: the worker wants a SIGINT after each cancel frame
	// (its main thread reads the request pipe itself and looks at the
	// pending frames when interrupted; see docs/protocol.md).
	FeatureSigCancel = "sigcancel"
	// FeatureOrdered: the worker runs its calls one at a time, in the order
	// they arrive, and answers each before it starts the next; its "slots"
	// are how many it can hold queued in its pipe. A call to it has started
	// only once every call sent before it has been answered, so the pool
	// knows which calls a crash interrupted and which never ran.
	FeatureOrdered = "ordered"
)

// PrefixSize is the size of the big-endian uint32 length prefix; HeaderSize
// is the fixed header that follows it (kind, flags, name length, id).
const (
	PrefixSize = 4
	HeaderSize = 12
)

// MaxNameLen bounds a task name (its length is a uint16 on the wire).
const MaxNameLen = 1<<16 - 1

// Environment variables through which the pool tells a worker how to talk.
const (
	EnvFDs      = "CONQ_WORKER_FDS" // "3,4": fd to read requests from, fd to write responses to
	EnvID       = "CONQ_WORKER_ID"  // the pool's id of this worker process, for logs
	EnvMaxFrame = "CONQ_MAX_FRAME"  // largest frame length (prefix excluded) either side accepts
	EnvProtocol = "CONQ_PROTOCOL"   // protocol version the pool speaks
	// EnvShmThreshold is the size from which the pool takes results in
	// shared memory ("shm" feature); absent or 0: it does not.
	EnvShmThreshold = "CONQ_SHM_THRESHOLD"
	// EnvSlots is how many calls at once the pool asks a worker to take
	// (Config.Slots); a worker announces what it takes in its ready frame.
	EnvSlots = "CONQ_SLOTS"
)

// Kind is the type of a frame.
type Kind uint8

const (
	KindReady  Kind = 1 // worker → pool, once, payload = JSON Ready
	KindCall   Kind = 2 // pool → worker, name = task, payload = arguments
	KindResult Kind = 3 // worker → pool, payload = result bytes
	KindError  Kind = 4 // worker → pool, payload = JSON ErrorPayload
	KindCancel Kind = 5 // pool → worker, asks the call with this id to stop
	// KindRelease (protocol 2, both ways): id is a segment id of the
	// receiver, payload one byte, ReleaseDone or ReleaseGone.
	KindRelease Kind = 6
)

// Release frame payloads.
const (
	// ReleaseDone: the sender has finished with the contents of the
	// receiver's segment (a result it sent); the receiver may reuse it.
	ReleaseDone byte = 1
	// ReleaseGone: the sender destroyed its own segment; the receiver
	// unmaps it if it has it mapped.
	ReleaseGone byte = 2
)

func (k Kind) String() string {
	switch k {
	case KindReady:
		return "ready"
	case KindCall:
		return "call"
	case KindResult:
		return "result"
	case KindError:
		return "error"
	case KindCancel:
		return "cancel"
	case KindRelease:
		return "release"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k >= KindReady && k <= KindRelease }

// flagsAllowed is the flags each kind may carry in protocol 2.
func (k Kind) flagsAllowed() uint8 {
	switch k {
	case KindCall:
		return FlagMeta | FlagShm
	case KindResult:
		return FlagShm
	}
	return 0
}

// Frame is one decoded message.
type Frame struct {
	Kind    Kind
	Flags   uint8
	ID      uint64
	Name    string // task name; set on call frames only
	Payload []byte
}

// Ready is the JSON payload of the ready frame.
type Ready struct {
	Protocol int      `json:"protocol"`
	SDK      string   `json:"sdk,omitempty"`
	PID      int      `json:"pid,omitempty"`
	Tasks    []string `json:"tasks,omitempty"`
	// Protocol 2: how many calls the worker takes at once (0 means 1) and
	// the optional features it implements (FeatureMeta, FeatureShm,
	// FeatureSigCancel).
	Slots    int      `json:"slots,omitempty"`
	Features []string `json:"features,omitempty"`
}

// ErrorPayload is the JSON payload of an error frame.
type ErrorPayload struct {
	Type      string `json:"type"`
	Message   string `json:"message"`
	Traceback string `json:"traceback,omitempty"`
	// RetryAfter (seconds, > 0) asks a task queue to retry no sooner;
	// SkipRetry asks it not to retry at all.
	RetryAfter float64 `json:"retry_after,omitempty"`
	SkipRetry  bool    `json:"skip_retry,omitempty"`
}

// ErrMalformed and ErrTooLarge classify decoding failures; the errors
// returned by this package wrap one of them with the details.
var (
	ErrMalformed = errors.New("malformed frame")
	ErrTooLarge  = errors.New("frame too large")
)

// AppendHeader appends the length prefix and header of a frame whose
// payload is payloadLen bytes long; the caller writes the payload after it.
func AppendHeader(dst []byte, kind Kind, flags uint8, id uint64, name string, payloadLen int) []byte {
	n := HeaderSize + len(name) + payloadLen
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, byte(kind), flags)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(name)))
	dst = binary.BigEndian.AppendUint64(dst, id)
	return append(dst, name...)
}

// Append appends the whole encoded frame.
func Append(dst []byte, f Frame) []byte {
	dst = AppendHeader(dst, f.Kind, f.Flags, f.ID, f.Name, len(f.Payload))
	return append(dst, f.Payload...)
}

// CheckLength validates a length prefix against max (the largest frame
// length accepted, prefix excluded).
func CheckLength(n uint32, max int) error {
	if n < HeaderSize {
		return fmt.Errorf("%w: length %d is shorter than the %d-byte header", ErrMalformed, n, HeaderSize)
	}
	if uint64(n) > uint64(max) {
		return fmt.Errorf("%w: length %d exceeds the limit of %d", ErrTooLarge, n, max)
	}
	return nil
}

// ParseHeader validates the fixed header (hdr holds at least HeaderSize
// bytes, the length prefix excluded) of a frame of length n, for protocol
// version (1 or 2), and returns its kind, flags, id and name length.
func ParseHeader(hdr []byte, n uint32, version int) (kind Kind, flags uint8, id uint64, nameLen int, err error) {
	kind, flags = Kind(hdr[0]), hdr[1]
	if !kind.valid() || (kind == KindRelease && version < 2) {
		return 0, 0, 0, 0, fmt.Errorf("%w: unknown kind %d", ErrMalformed, hdr[0])
	}
	if version < 2 && flags != 0 {
		return 0, 0, 0, 0, fmt.Errorf("%w: reserved flags byte is %#x, want 0 in protocol 1", ErrMalformed, flags)
	}
	if bad := flags &^ kind.flagsAllowed(); bad != 0 {
		return 0, 0, 0, 0, fmt.Errorf("%w: %s frame with flags %#x", ErrMalformed, kind, flags)
	}
	nameLen = int(binary.BigEndian.Uint16(hdr[2:4]))
	id = binary.BigEndian.Uint64(hdr[4:12])
	if uint64(nameLen) > uint64(n)-HeaderSize {
		return 0, 0, 0, 0, fmt.Errorf("%w: name length %d overruns the frame length %d", ErrMalformed, nameLen, n)
	}
	if kind == KindCall && nameLen == 0 {
		return 0, 0, 0, 0, fmt.Errorf("%w: call frame without a task name", ErrMalformed)
	}
	if kind != KindCall && nameLen != 0 {
		return 0, 0, 0, 0, fmt.Errorf("%w: %s frame carries a name", ErrMalformed, kind)
	}
	if kind == KindRelease && n != HeaderSize+1 {
		return 0, 0, 0, 0, fmt.Errorf("%w: release frame of length %d, want %d", ErrMalformed, n, HeaderSize+1)
	}
	return kind, flags, id, nameLen, nil
}

// CheckName validates a decoded task name.
func CheckName(name []byte) error {
	if !utf8.Valid(name) {
		return fmt.Errorf("%w: task name is not valid UTF-8", ErrMalformed)
	}
	return nil
}

// Decode decodes one frame of the given protocol version that must fill b
// exactly, prefix included. The payload aliases b.
func Decode(b []byte, max, version int) (Frame, error) {
	if len(b) < PrefixSize+HeaderSize {
		return Frame{}, fmt.Errorf("%w: %d bytes is shorter than prefix and header", ErrMalformed, len(b))
	}
	n := binary.BigEndian.Uint32(b)
	if err := CheckLength(n, max); err != nil {
		return Frame{}, err
	}
	if uint64(len(b)-PrefixSize) != uint64(n) {
		return Frame{}, fmt.Errorf("%w: length prefix says %d bytes, have %d", ErrMalformed, n, len(b)-PrefixSize)
	}
	kind, flags, id, nameLen, err := ParseHeader(b[PrefixSize:], n, version)
	if err != nil {
		return Frame{}, err
	}
	body := b[PrefixSize+HeaderSize:]
	name := body[:nameLen]
	if err := CheckName(name); err != nil {
		return Frame{}, err
	}
	f := Frame{Kind: kind, Flags: flags, ID: id, Name: string(name), Payload: body[nameLen:]}
	if err := CheckPayload(f); err != nil {
		return Frame{}, err
	}
	return f, nil
}

// CheckPayload validates the parts of a payload the flags announce (the
// META prefix, the SHM handle) and the release byte, so that every reader
// rejects the same frames.
func CheckPayload(f Frame) error {
	switch {
	case f.Kind == KindRelease:
		if op := f.Payload[0]; op != ReleaseDone && op != ReleaseGone {
			return fmt.Errorf("%w: release frame with operation %d", ErrMalformed, op)
		}
		return nil
	case f.Flags == 0:
		return nil
	}
	rest := f.Payload
	if f.Flags&FlagMeta != 0 {
		var err error
		if _, rest, err = SplitMeta(rest); err != nil {
			return err
		}
	}
	if f.Flags&FlagShm != 0 {
		if _, err := ParseHandle(rest); err != nil {
			return err
		}
	}
	return nil
}
