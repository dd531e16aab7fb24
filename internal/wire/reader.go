package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Reader decodes frames from a stream.
type Reader struct {
	r       *bufio.Reader
	max     int
	version int
	hdr     [PrefixSize + HeaderSize]byte
	// names interns task names: a worker sees few distinct names, so the
	// steady state allocates nothing for them.
	names map[string]string
}

// NewReader returns a Reader that rejects frames longer than max bytes
// (prefix excluded). It accepts protocol 2 frames until SetVersion says
// otherwise.
func NewReader(r io.Reader, max int) *Reader {
	return &Reader{r: bufio.NewReaderSize(r, 64<<10), max: max, version: Version}
}

// SetVersion sets the protocol version of the frames that follow, once the
// handshake has told it.
func (r *Reader) SetVersion(v int) { r.version = v }

// Read reads the next frame. The payload is freshly allocated and owned by
// the caller. At a clean end of stream it returns io.EOF; a stream that ends
// inside a frame gives io.ErrUnexpectedEOF.
func (r *Reader) Read() (Frame, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return Frame{}, err
	}
	n := binary.BigEndian.Uint32(r.hdr[:])
	if err := CheckLength(n, r.max); err != nil {
		return Frame{}, err
	}
	kind, flags, id, nameLen, err := ParseHeader(r.hdr[PrefixSize:], n, r.version)
	if err != nil {
		return Frame{}, err
	}
	f := Frame{Kind: kind, Flags: flags, ID: id}
	if nameLen > 0 {
		if f.Name, err = r.readName(nameLen); err != nil {
			return Frame{}, err
		}
	}
	if size := int(n) - HeaderSize - nameLen; size > 0 {
		f.Payload = make([]byte, size)
		if _, err := io.ReadFull(r.r, f.Payload); err != nil {
			return Frame{}, unexpected(err)
		}
	}
	if err := CheckPayload(f); err != nil {
		return Frame{}, err
	}
	return f, nil
}

func (r *Reader) readName(n int) (string, error) {
	b, err := r.r.Peek(n)
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			b = make([]byte, n)
			if _, err := io.ReadFull(r.r, b); err != nil {
				return "", unexpected(err)
			}
			if err := CheckName(b); err != nil {
				return "", err
			}
			return string(b), nil
		}
		return "", unexpected(err)
	}
	defer r.r.Discard(n) //nolint:errcheck // Peek guaranteed n bytes
	if s, ok := r.names[string(b)]; ok {
		return s, nil
	}
	if err := CheckName(b); err != nil {
		return "", err
	}
	s := string(b)
	if r.names == nil {
		r.names = make(map[string]string)
	}
	if len(r.names) < 1024 {
		r.names[s] = s
	}
	return s, nil
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// smallFrame is the size below which a frame is copied into one buffer and
// written with one system call; larger payloads are written from the
// caller's slice after the header, saving the copy.
const smallFrame = 32 << 10

// Writer encodes frames to a stream. It is not safe for concurrent use.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write writes one frame with flags 0.
func (w *Writer) Write(kind Kind, id uint64, name string, payload []byte) error {
	return w.WriteFrame(kind, 0, id, name, nil, payload)
}

// WriteFrame writes one frame whose payload is head followed by body: head
// is a small prefix (a META part, a handle), body is written from the
// caller's slice when it is large.
func (w *Writer) WriteFrame(kind Kind, flags uint8, id uint64, name string, head, body []byte) error {
	if len(name) > MaxNameLen {
		return fmt.Errorf("wire: task name of %d bytes exceeds %d", len(name), MaxNameLen)
	}
	n := len(head) + len(body)
	if uint64(HeaderSize+len(name))+uint64(n) > 1<<32-1 {
		return fmt.Errorf("%w: payload of %d bytes", ErrTooLarge, n)
	}
	w.buf = AppendHeader(w.buf[:0], kind, flags, id, name, n)
	w.buf = append(w.buf, head...)
	if len(body) <= smallFrame {
		w.buf = append(w.buf, body...)
		_, err := w.w.Write(w.buf)
		w.shrink()
		return err
	}
	if _, err := w.w.Write(w.buf); err != nil {
		return err
	}
	_, err := w.w.Write(body)
	return err
}

// shrink drops a buffer grown by a long task name so it is not kept forever.
func (w *Writer) shrink() {
	if cap(w.buf) > 2*smallFrame {
		w.buf = nil
	}
}
