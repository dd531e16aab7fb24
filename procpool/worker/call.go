package worker

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/conqhq/conq/internal/wire"
	"github.com/conqhq/conq/internal/wire/shm"
)

// Info describes the call a handler runs.
type Info struct {
	ID   uint64 // the pool's call id
	Task string // the task name
	Shm  bool   // the argument is a mapping of the pool's shared memory

	// Set when the pool sent META (protocol 2), as queue/procexec does for
	// queue tasks.
	Meta       bool
	TaskID     string
	Kind       string
	Queue      string
	Attempt    int       // 1-based
	MaxRetries int       // retries after the first attempt
	Deadline   time.Time // zero: none
	Encoding   string    // the payload's encoding: raw, json or args
}

func (i *Info) fill(m wire.Meta) {
	i.Meta = true
	i.TaskID, i.Kind, i.Queue, i.Attempt, i.Encoding = m.TaskID, m.Kind, m.Queue, m.Attempt, m.Encoding
	if m.MaxRetries != nil {
		i.MaxRetries = *m.MaxRetries
	}
	if m.Deadline != "" {
		i.Deadline, _ = time.Parse(time.RFC3339Nano, m.Deadline)
	}
}

type callKey struct{}

// callState is what the SDK knows of a running call. It is the handler's
// ctx too (one allocation for both): Value answers CallInfo's key.
type callState struct {
	context.Context
	info      Info
	conn      *conn
	arg       *shm.Mapping // the argument's segment, if it came in one
	argHandle wire.Handle

	mu   sync.Mutex
	bufs []*shm.Segment // ResultBuffer segments not sent yet
}

// Value implements context.Context.
func (ci *callState) Value(key any) any {
	if key == (callKey{}) {
		return ci
	}
	return ci.Context.Value(key)
}

// CallInfo returns the description of the call ctx belongs to; false
// outside a handler.
func CallInfo(ctx context.Context) (Info, bool) {
	ci, ok := ctx.Value(callKey{}).(*callState)
	if !ok {
		return Info{}, false
	}
	return ci.info, true
}

// ResultBuffer returns n bytes for the handler to build its result in:
// returning them (or a part of them) sends the result through shared memory
// without a copy. Below the pool's threshold, or where shared memory is not
// available, it is ordinary memory. The bytes are valid until the handler
// returns.
func ResultBuffer(ctx context.Context, n int) []byte {
	ci, ok := ctx.Value(callKey{}).(*callState)
	if !ok || ci.conn.shmMin == 0 || n < ci.conn.shmMin {
		return make([]byte, n)
	}
	seg, err := ci.conn.segs.get(n)
	if err != nil {
		return make([]byte, n)
	}
	ci.mu.Lock()
	ci.bufs = append(ci.bufs, seg)
	ci.mu.Unlock()
	return seg.Mem[:n]
}

// done gives back the ResultBuffers the result did not use.
func (ci *callState) done() {
	ci.mu.Lock()
	bufs := ci.bufs
	ci.bufs = nil
	ci.mu.Unlock()
	for _, seg := range bufs {
		if gone := ci.conn.segs.put(seg); gone != 0 {
			ci.conn.sendGone(gone)
		}
	}
}

// shmResult returns the handle of a result that goes through shared memory.
func (c *conn) shmResult(ci *callState, out []byte) (wire.Handle, bool) {
	if !c.v2 || len(out) == 0 {
		return wire.Handle{}, false
	}
	if ci.arg != nil {
		if off, ok := shm.Within(ci.arg.Mem, out); ok {
			h := ci.argHandle // the pool's own segment: nothing to release
			h.Offset, h.Length = uint64(off), uint64(len(out))
			return h, true
		}
	}
	ci.mu.Lock()
	for i, seg := range ci.bufs {
		if off, ok := shm.Within(seg.Mem, out); ok {
			ci.bufs = append(ci.bufs[:i], ci.bufs[i+1:]...)
			ci.mu.Unlock()
			c.segs.lend(seg)
			return seg.Handle(c.pid, off, len(out)), true
		}
	}
	ci.mu.Unlock()
	if c.shmMin == 0 || len(out) < c.shmMin {
		return wire.Handle{}, false
	}
	seg, err := c.segs.get(len(out))
	if err != nil {
		return wire.Handle{}, false // the pipe, then
	}
	copy(seg.Mem, out)
	c.segs.lend(seg)
	return seg.Handle(c.pid, 0, len(out)), true
}

// Segments kept for reuse beyond those lent to the pool.
const keepSegments = 4

// segments are the worker's side of shared memory: the pool's segments it
// has mapped, and its own, in which it sends results.
type segments struct {
	mu   sync.Mutex
	pool map[uint64]*shm.Mapping
	ids  uint64
	free []*shm.Segment
	lent map[uint64]*shm.Segment // results the pool has not released
}

// mapPool returns the mapping of the pool's segment h names, mapping it
// the first time.
func (s *segments) mapPool(h wire.Handle) (*shm.Mapping, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if m := s.pool[h.ID]; m != nil {
		if uint64(len(m.Mem)) < h.Size {
			return nil, fmt.Errorf("segment %d is %d bytes, the handle says %d", h.ID, len(m.Mem), h.Size)
		}
		return m, nil
	}
	m, err := shm.Open(h, true)
	if err != nil {
		return nil, err
	}
	if s.pool == nil {
		s.pool = make(map[uint64]*shm.Mapping)
	}
	s.pool[h.ID] = m
	return m, nil
}

// poolGone unmaps a segment the pool destroyed.
func (s *segments) poolGone(id uint64) {
	s.mu.Lock()
	m := s.pool[id]
	delete(s.pool, id)
	s.mu.Unlock()
	if m != nil {
		_ = m.Close()
	}
}

// get returns a free segment of at least n bytes, or a new one.
func (s *segments) get(n int) (*shm.Segment, error) {
	s.mu.Lock()
	best := -1
	for i, seg := range s.free {
		if m := len(seg.Mem); m >= n && (best < 0 || m < len(s.free[best].Mem)) {
			best = i
		}
	}
	if best >= 0 {
		seg := s.free[best]
		s.free = append(s.free[:best], s.free[best+1:]...)
		s.mu.Unlock()
		return seg, nil
	}
	s.ids++
	id := s.ids
	s.mu.Unlock()
	return shm.Create(id, n)
}

// lend records that seg carries a result until the pool releases it.
func (s *segments) lend(seg *shm.Segment) {
	s.mu.Lock()
	if s.lent == nil {
		s.lent = make(map[uint64]*shm.Segment)
	}
	s.lent[seg.ID] = seg
	s.mu.Unlock()
}

// resultDone handles the pool's release of a result segment; it returns
// the id of a segment destroyed to keep the cache small (the pool must
// hear of it), 0 if none.
func (s *segments) resultDone(id uint64) (gone uint64, ok bool) {
	s.mu.Lock()
	seg := s.lent[id]
	delete(s.lent, id)
	s.mu.Unlock()
	if seg == nil {
		return 0, false
	}
	return s.put(seg), true
}

// put keeps seg for reuse, or destroys it and returns its id.
func (s *segments) put(seg *shm.Segment) (gone uint64) {
	s.mu.Lock()
	if len(s.free) < keepSegments {
		s.free = append(s.free, seg)
		s.mu.Unlock()
		return 0
	}
	s.mu.Unlock()
	_ = seg.Close()
	return seg.ID
}

func (s *segments) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, m := range s.pool {
		_ = m.Close()
		delete(s.pool, id)
	}
	for _, seg := range s.free {
		_ = seg.Close()
	}
	s.free = nil
	for id, seg := range s.lent {
		_ = seg.Close()
		delete(s.lent, id)
	}
}
