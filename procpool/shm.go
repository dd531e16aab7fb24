package procpool

import (
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/conqhq/conq/internal/wire"
	"github.com/conqhq/conq/internal/wire/shm"
)

// Shared memory (docs/protocol.md, "Shared memory"). The pool owns the
// segments its arguments travel in; a worker owns the segments its results
// travel in. Both sides keep segments and their mappings of the peer's
// across calls, so a steady stream of large payloads maps nothing and
// faults no page in after the first calls.

// Segments kept for reuse, per pool, beyond those in use.
const (
	shmKeepSegments = 8
	shmKeepBytes    = 512 << 20
)

// shmPool holds the pool's segments.
type shmPool struct {
	threshold int // payloads from this size travel in shared memory; 0: never
	pid       int
	wanted    atomic.Bool // a worker announced "shm": copy large arguments into segments at Submit

	mu        sync.Mutex
	ids       uint64
	free      []*segment
	freeBytes int
	closed    bool
}

// segment is one of the pool's segments and who uses it.
type segment struct {
	sp      *shmPool
	s       *shm.Segment
	refs    int                   // calls and Buffers holding it; under sp.mu
	seen    map[*process]struct{} // workers sent its handle: they may have it mapped; under sp.mu
	tainted bool                  // a worker died holding it: its descendants might write it
}

func newShmPool(threshold int) *shmPool {
	if threshold <= 0 || !shm.Supported() {
		threshold = 0
	}
	return &shmPool{threshold: threshold, pid: os.Getpid()}
}

// use reports whether a payload of n bytes goes through shared memory.
func (sp *shmPool) use(n int) bool { return sp.threshold > 0 && n >= sp.threshold }

// get returns a segment of at least n bytes, held once.
func (sp *shmPool) get(n int) (*segment, error) {
	sp.mu.Lock()
	best := -1
	for i, s := range sp.free {
		if m := len(s.s.Mem); m >= n && (best < 0 || m < len(sp.free[best].s.Mem)) {
			best = i
		}
	}
	if best >= 0 {
		seg := sp.free[best]
		sp.free = append(sp.free[:best], sp.free[best+1:]...)
		sp.freeBytes -= len(seg.s.Mem)
		seg.refs = 1
		sp.mu.Unlock()
		return seg, nil
	}
	sp.ids++
	id := sp.ids
	sp.mu.Unlock()
	s, err := shm.Create(id, n)
	if err != nil {
		return nil, err
	}
	return &segment{sp: sp, s: s, refs: 1}, nil
}

// put drops a hold; the last one keeps the segment for reuse or destroys
// it.
func (seg *segment) put() {
	sp := seg.sp
	sp.mu.Lock()
	seg.refs--
	if seg.refs > 0 {
		sp.mu.Unlock()
		return
	}
	n := len(seg.s.Mem)
	if !sp.closed && !seg.tainted && len(sp.free) < shmKeepSegments && sp.freeBytes+n <= shmKeepBytes {
		sp.free = append(sp.free, seg)
		sp.freeBytes += n
		sp.mu.Unlock()
		return
	}
	seen := seg.takeSeen()
	sp.mu.Unlock()
	seg.destroy(seen)
}

// taint marks a segment a dead worker held: it is not reused.
func (seg *segment) taint() {
	seg.sp.mu.Lock()
	seg.tainted = true
	seg.sp.mu.Unlock()
}

// sentTo records that pr got seg's handle. Called with pr's write lock.
func (seg *segment) sentTo(pr *process) {
	seg.sp.mu.Lock()
	if seg.seen == nil {
		seg.seen = make(map[*process]struct{})
	}
	seg.seen[pr] = struct{}{}
	seg.sp.mu.Unlock()
}

func (seg *segment) takeSeen() map[*process]struct{} {
	seen := seg.seen
	seg.seen = nil
	return seen
}

// destroy tells the workers that may have seg mapped to unmap it, and
// closes it.
func (seg *segment) destroy(seen map[*process]struct{}) {
	for pr := range seen {
		pr.queueRelease(wire.ReleaseGone, seg.s.ID)
	}
	_ = seg.s.Close()
}

// forget drops a dead worker from the segments kept for reuse.
func (sp *shmPool) forget(pr *process) {
	sp.mu.Lock()
	for _, seg := range sp.free {
		delete(seg.seen, pr)
	}
	sp.mu.Unlock()
}

// close destroys the segments kept for reuse; segments still held (by
// calls, by Buffers) are destroyed when let go.
func (sp *shmPool) close() {
	sp.mu.Lock()
	sp.closed = true
	free := sp.free
	sp.free, sp.freeBytes = nil, 0
	seens := make([]map[*process]struct{}, len(free))
	for i, seg := range free {
		seens[i] = seg.takeSeen()
	}
	sp.mu.Unlock()
	for i, seg := range free {
		seg.destroy(seens[i])
	}
}

// peerSeg is a worker's segment mapped in the pool.
type peerSeg struct {
	m    *shm.Mapping
	refs int  // results being read and Buffers; under pr.peerMu
	gone bool // the worker destroyed it, or died
}

// mapPeer returns the mapping of the worker's segment h names, held once.
func (pr *process) mapPeer(h wire.Handle) (*peerSeg, error) {
	pr.peerMu.Lock()
	defer pr.peerMu.Unlock()
	ps := pr.peers[h.ID]
	if ps == nil {
		m, err := shm.Open(h, true)
		if err != nil {
			return nil, err
		}
		ps = &peerSeg{m: m}
		if pr.peers == nil {
			pr.peers = make(map[uint64]*peerSeg)
		}
		pr.peers[h.ID] = ps
	} else if uint64(len(ps.m.Mem)) < h.Size {
		return nil, fmt.Errorf("segment %d is %d bytes, the handle says %d", h.ID, len(ps.m.Mem), h.Size)
	}
	ps.refs++
	return ps, nil
}

// unrefPeer drops a hold on a worker's segment. done: the pool has read the
// result in it, so the worker may reuse it.
func (pr *process) unrefPeer(id uint64, ps *peerSeg, done bool) {
	pr.peerMu.Lock()
	ps.refs--
	closeIt := ps.refs == 0 && ps.gone
	if closeIt && pr.peers[id] == ps {
		delete(pr.peers, id)
	}
	pr.peerMu.Unlock()
	if done && !closeIt {
		pr.queueRelease(wire.ReleaseDone, id)
	}
	if closeIt {
		_ = ps.m.Close()
	}
}

// peerGone handles the worker's release-gone frame for one of its segments.
func (pr *process) peerGone(id uint64) {
	pr.peerMu.Lock()
	ps := pr.peers[id]
	if ps == nil {
		pr.peerMu.Unlock()
		return
	}
	ps.gone = true
	closeIt := ps.refs == 0
	if closeIt {
		delete(pr.peers, id)
	}
	pr.peerMu.Unlock()
	if closeIt {
		_ = ps.m.Close()
	}
}

// dropPeers unmaps the dead worker's segments that nothing holds; the others
// go when their Buffers are released.
func (pr *process) dropPeers() {
	pr.peerMu.Lock()
	var closing []*peerSeg
	for id, ps := range pr.peers {
		ps.gone = true
		if ps.refs == 0 {
			closing = append(closing, ps)
			delete(pr.peers, id)
		}
	}
	pr.peerMu.Unlock()
	for _, ps := range closing {
		_ = ps.m.Close()
	}
}

// Buffer is memory for a large argument or result that crosses to a worker
// without being copied: NewBuffer gives one in a shared-memory segment when
// the size reaches Config.ShmThreshold (on the heap below it, or where
// shared memory is not available), SubmitBuffer sends it as the argument,
// and the result comes back as a Buffer, in the worker's segment or, if the
// worker answered with (part of) its argument, in the argument's.
//
// A Buffer must be released once: Release, or SubmitBuffer, which takes it
// over. One that is dropped unreleased is released when the garbage
// collector finds it unreachable, so nothing leaks, but its memory stays
// mapped until then.
type Buffer struct {
	b    []byte
	held *bufHold
	gc   runtime.Cleanup
}

// bufHold is what a Buffer holds; kept apart from the Buffer so that the
// cleanup does not keep the Buffer reachable.
type bufHold struct {
	released atomic.Bool
	seg      *segment // the pool's segment, or
	pr       *process // the worker whose segment
	peer     *peerSeg // this is
	peerID   uint64
}

func (h *bufHold) release() {
	if h == nil || !h.released.CompareAndSwap(false, true) {
		return
	}
	switch {
	case h.seg != nil:
		h.seg.put()
	case h.peer != nil:
		h.pr.unrefPeer(h.peerID, h.peer, true)
	}
}

func newBuffer(b []byte, h *bufHold) *Buffer {
	buf := &Buffer{b: b, held: h}
	if h != nil {
		buf.gc = runtime.AddCleanup(buf, (*bufHold).release, h)
	}
	return buf
}

// Bytes returns the buffer's memory, valid until the Buffer is released or
// submitted. A result's bytes may be written.
func (b *Buffer) Bytes() []byte { return b.b }

// Len is len(b.Bytes()).
func (b *Buffer) Len() int { return len(b.b) }

// Shared reports whether the bytes are in a shared-memory segment.
func (b *Buffer) Shared() bool { return b.held != nil }

// Release gives the memory back. It is safe to call more than once.
func (b *Buffer) Release() {
	if b == nil {
		return
	}
	b.gc.Stop()
	b.held.release()
	b.b = nil
}

// take hands the Buffer's hold to the caller (SubmitBuffer).
func (b *Buffer) take() (*bufHold, []byte) {
	b.gc.Stop()
	h, bs := b.held, b.b
	b.held, b.b = nil, nil
	return h, bs
}
