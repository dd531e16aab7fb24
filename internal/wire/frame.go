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

// Version is the protocol version a worker announces in its ready frame.
const Version = 1

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
)

// Kind is the type of a frame.
type Kind uint8

const (
	KindReady  Kind = 1 // worker → pool, once, payload = JSON Ready
	KindCall   Kind = 2 // pool → worker, name = task, payload = arguments
	KindResult Kind = 3 // worker → pool, payload = result bytes
	KindError  Kind = 4 // worker → pool, payload = JSON ErrorPayload
	KindCancel Kind = 5 // pool → worker, asks the call with this id to stop
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
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k >= KindReady && k <= KindCancel }

// Frame is one decoded message.
type Frame struct {
	Kind    Kind
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
}

// ErrorPayload is the JSON payload of an error frame.
type ErrorPayload struct {
	Type      string `json:"type"`
	Message   string `json:"message"`
	Traceback string `json:"traceback,omitempty"`
}

// ErrMalformed and ErrTooLarge classify decoding failures; the errors
// returned by this package wrap one of them with the details.
var (
	ErrMalformed = errors.New("malformed frame")
	ErrTooLarge  = errors.New("frame too large")
)

// AppendHeader appends the length prefix and header of a frame whose
// payload is payloadLen bytes long; the caller writes the payload after it.
func AppendHeader(dst []byte, kind Kind, id uint64, name string, payloadLen int) []byte {
	n := HeaderSize + len(name) + payloadLen
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, byte(kind), 0)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(name)))
	dst = binary.BigEndian.AppendUint64(dst, id)
	return append(dst, name...)
}

// Append appends the whole encoded frame.
func Append(dst []byte, f Frame) []byte {
	dst = AppendHeader(dst, f.Kind, f.ID, f.Name, len(f.Payload))
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
// bytes, the length prefix excluded) of a frame of length n and returns its
// kind, id and name length.
func ParseHeader(hdr []byte, n uint32) (kind Kind, id uint64, nameLen int, err error) {
	kind = Kind(hdr[0])
	if !kind.valid() {
		return 0, 0, 0, fmt.Errorf("%w: unknown kind %d", ErrMalformed, hdr[0])
	}
	if hdr[1] != 0 {
		return 0, 0, 0, fmt.Errorf("%w: reserved flags byte is %#x, want 0", ErrMalformed, hdr[1])
	}
	nameLen = int(binary.BigEndian.Uint16(hdr[2:4]))
	id = binary.BigEndian.Uint64(hdr[4:12])
	if uint64(nameLen) > uint64(n)-HeaderSize {
		return 0, 0, 0, fmt.Errorf("%w: name length %d overruns the frame length %d", ErrMalformed, nameLen, n)
	}
	if kind == KindCall && nameLen == 0 {
		return 0, 0, 0, fmt.Errorf("%w: call frame without a task name", ErrMalformed)
	}
	if kind != KindCall && nameLen != 0 {
		return 0, 0, 0, fmt.Errorf("%w: %s frame carries a name", ErrMalformed, kind)
	}
	return kind, id, nameLen, nil
}

// CheckName validates a decoded task name.
func CheckName(name []byte) error {
	if !utf8.Valid(name) {
		return fmt.Errorf("%w: task name is not valid UTF-8", ErrMalformed)
	}
	return nil
}

// Decode decodes one frame that must fill b exactly, prefix included. The
// payload aliases b.
func Decode(b []byte, max int) (Frame, error) {
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
	kind, id, nameLen, err := ParseHeader(b[PrefixSize:], n)
	if err != nil {
		return Frame{}, err
	}
	body := b[PrefixSize+HeaderSize:]
	name := body[:nameLen]
	if err := CheckName(name); err != nil {
		return Frame{}, err
	}
	return Frame{Kind: kind, ID: id, Name: string(name), Payload: body[nameLen:]}, nil
}
