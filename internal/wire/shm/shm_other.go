//go:build !linux

package shm

import "github.com/conqhq/conq/internal/wire"

// Supported reports whether this process can create segments: not here,
// so both sides keep payloads on the pipes.
func Supported() bool { return false }

// Create fails: no memfd here.
func Create(uint64, int) (*Segment, error) { return nil, ErrUnsupported }

// Close does nothing.
func (s *Segment) Close() error { return nil }

// Open fails: no memfd here.
func Open(wire.Handle, bool) (*Mapping, error) { return nil, ErrUnsupported }

// Close does nothing.
func (m *Mapping) Close() error { return nil }
