package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
)

// Meta is the JSON object a FlagMeta call carries before its argument:
// what a task queue knows about the task. Every field is optional.
type Meta struct {
	TaskID     string `json:"task_id,omitempty"`
	Kind       string `json:"kind,omitempty"`
	Queue      string `json:"queue,omitempty"`
	Attempt    int    `json:"attempt,omitempty"` // 1-based
	MaxRetries *int   `json:"max_retries,omitempty"`
	Deadline   string `json:"deadline,omitempty"` // RFC 3339 with nanoseconds
	Encoding   string `json:"encoding,omitempty"` // raw, json or args
}

// AppendJSON appends m as json.Marshal writes it (the same bytes: the
// fuzz test checks), without reflection: a META part is encoded for every
// queue task a pool runs.
func (m *Meta) AppendJSON(dst []byte) []byte {
	dst = append(dst, '{')
	first := true
	field := func(name string) {
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = append(dst, '"')
		dst = append(dst, name...)
		dst = append(dst, '"', ':')
	}
	str := func(name, v string) {
		if v != "" {
			field(name)
			dst = appendJSONString(dst, v)
		}
	}
	str("task_id", m.TaskID)
	str("kind", m.Kind)
	str("queue", m.Queue)
	if m.Attempt != 0 {
		field("attempt")
		dst = strconv.AppendInt(dst, int64(m.Attempt), 10)
	}
	if m.MaxRetries != nil {
		field("max_retries")
		dst = strconv.AppendInt(dst, int64(*m.MaxRetries), 10)
	}
	str("deadline", m.Deadline)
	str("encoding", m.Encoding)
	return append(dst, '}')
}

// appendJSONString appends s quoted as encoding/json does: plain ASCII is
// copied; anything else (escapes, HTML characters, non-ASCII) goes through
// json.Marshal.
func appendJSONString(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x80 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			b, _ := json.Marshal(s) // a string always encodes
			return append(dst, b...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// MetaPrefixSize is the size of the META length prefix.
const MetaPrefixSize = 4

// AppendMeta appends the META part of a payload: the length prefix and
// the JSON object.
func AppendMeta(dst, metaJSON []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(metaJSON)))
	return append(dst, metaJSON...)
}

// SplitMeta splits a FlagMeta payload into the META JSON object and the
// rest (the argument, or the handle if FlagShm is set too).
func SplitMeta(p []byte) (meta, rest []byte, err error) {
	if len(p) < MetaPrefixSize {
		return nil, nil, fmt.Errorf("%w: META payload of %d bytes has no length prefix", ErrMalformed, len(p))
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(len(p)-MetaPrefixSize) {
		return nil, nil, fmt.Errorf("%w: META length %d overruns the payload of %d bytes", ErrMalformed, n, len(p))
	}
	meta = p[MetaPrefixSize : MetaPrefixSize+n]
	if t := bytes.TrimLeft(meta, " \t\r\n"); len(t) == 0 || t[0] != '{' || !json.Valid(meta) {
		return nil, nil, fmt.Errorf("%w: META is not a JSON object", ErrMalformed)
	}
	return meta, p[MetaPrefixSize+n:], nil
}

// Handle names bytes in a shared-memory segment: the payload of a FlagShm
// frame (after the META part of a call). The segment is a memfd of process
// PID, open there as descriptor FD; a peer maps it by opening
// /proc/<PID>/fd/<FD>. ID names the segment in release frames and lets a
// peer keep its mapping across calls.
type Handle struct {
	PID    uint32
	FD     uint32
	ID     uint64 // unique within PID for the life of PID, never 0
	Size   uint64 // the segment's size: what to map
	Offset uint64 // where the bytes start in the segment
	Length uint64 // how many bytes
}

// HandleSize is the encoded size of a Handle.
const HandleSize = 40

// Append appends the encoded handle.
func (h Handle) Append(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, h.PID)
	dst = binary.BigEndian.AppendUint32(dst, h.FD)
	dst = binary.BigEndian.AppendUint64(dst, h.ID)
	dst = binary.BigEndian.AppendUint64(dst, h.Size)
	dst = binary.BigEndian.AppendUint64(dst, h.Offset)
	return binary.BigEndian.AppendUint64(dst, h.Length)
}

// ParseHandle decodes a handle that must fill b exactly.
func ParseHandle(b []byte) (Handle, error) {
	if len(b) != HandleSize {
		return Handle{}, fmt.Errorf("%w: SHM handle of %d bytes, want %d", ErrMalformed, len(b), HandleSize)
	}
	h := Handle{
		PID:    binary.BigEndian.Uint32(b),
		FD:     binary.BigEndian.Uint32(b[4:]),
		ID:     binary.BigEndian.Uint64(b[8:]),
		Size:   binary.BigEndian.Uint64(b[16:]),
		Offset: binary.BigEndian.Uint64(b[24:]),
		Length: binary.BigEndian.Uint64(b[32:]),
	}
	switch {
	case h.PID == 0 || h.ID == 0:
		return Handle{}, fmt.Errorf("%w: SHM handle with pid %d, segment id %d", ErrMalformed, h.PID, h.ID)
	case h.Offset > h.Size || h.Length > h.Size-h.Offset:
		return Handle{}, fmt.Errorf("%w: SHM handle bytes %d+%d overrun the segment of %d", ErrMalformed, h.Offset, h.Length, h.Size)
	}
	return h, nil
}
