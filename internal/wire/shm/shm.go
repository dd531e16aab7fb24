// Package shm holds the shared-memory segments of the conq process
// protocol (docs/protocol.md, "Shared memory"): memfd segments that one
// process creates and seals, and that its peer maps by opening
// /proc/<pid>/fd/<fd>. Both procpool and the Go worker SDK use it.
package shm

import (
	"errors"
	"unsafe"

	"github.com/conqhq/conq/internal/wire"
)

// ErrUnsupported is returned where shared memory is not available (not
// Linux, or no memfd).
var ErrUnsupported = errors.New("shm: shared memory is not supported here")

// Segment is a segment this process owns.
type Segment struct {
	ID  uint64
	FD  int
	Mem []byte // the whole segment, mapped read-write
}

// Handle names n bytes at off in s, for a peer.
func (s *Segment) Handle(pid int, off, n int) wire.Handle {
	return wire.Handle{PID: uint32(pid), FD: uint32(s.FD), ID: s.ID, Size: uint64(len(s.Mem)), Offset: uint64(off), Length: uint64(n)}
}

// Mapping is a peer's segment mapped here.
type Mapping struct {
	ID  uint64
	Mem []byte
}

// Within reports whether b lies inside mem, and where it starts.
func Within(mem, b []byte) (off int, ok bool) {
	if len(mem) == 0 || len(b) == 0 {
		return 0, false
	}
	base := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	if p < base || p-base > uintptr(len(mem)) || uintptr(len(b)) > uintptr(len(mem))-(p-base) {
		return 0, false
	}
	return int(p - base), true
}

// PageRound rounds n up to a whole number of pages, at least one.
func PageRound(n int) int {
	const page = 4096
	if n <= 0 {
		return page
	}
	return (n + page - 1) &^ (page - 1)
}
