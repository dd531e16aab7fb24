package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/conqhq/conq/internal/wire"
	"github.com/conqhq/conq/internal/wire/shm"
)

// conn is one conversation with a pool.
type conn struct {
	s        *Server
	v2       bool
	slots    int
	maxFrame int
	shmMin   int // results from this size go in shared memory; 0: never
	pid      int

	r   *wire.Reader
	wmu sync.Mutex // guards w
	w   *wire.Writer

	segs segments
}

// Serve speaks the protocol on r and w until r ends, which is a normal
// return (nil). maxFrame bounds the frames either way. The protocol
// version, the slots asked for and the shared-memory threshold come from
// the environment the pool set (CONQ_PROTOCOL, CONQ_SLOTS,
// CONQ_SHM_THRESHOLD), then from the Server's fields.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer, maxFrame int) error {
	c := &conn{s: s, maxFrame: maxFrame, pid: os.Getpid(), w: wire.NewWriter(w), r: wire.NewReader(r, maxFrame)}
	pool := wire.Version
	if v, err := strconv.Atoi(os.Getenv(wire.EnvProtocol)); err == nil && v > 0 {
		pool = v
	}
	proto := min(pool, wire.Version)
	if s.Protocol > 0 {
		proto = min(proto, s.Protocol)
	}
	c.v2 = proto >= 2
	c.slots = 1
	ready := wire.Ready{Protocol: wire.VersionV1, SDK: "conq-go", PID: c.pid, Tasks: s.tasks()}
	if c.v2 {
		ready.Protocol = wire.Version
		c.slots = s.Slots
		if c.slots <= 0 {
			c.slots, _ = strconv.Atoi(os.Getenv(wire.EnvSlots))
		}
		c.slots = max(c.slots, 1)
		ready.Slots = c.slots
		ready.Features = []string{wire.FeatureMeta}
		if shm.Supported() {
			ready.Features = append(ready.Features, wire.FeatureShm)
			if n, err := strconv.Atoi(os.Getenv(wire.EnvShmThreshold)); err == nil && n > 0 {
				c.shmMin = n
			}
		}
	} else {
		c.r.SetVersion(wire.VersionV1)
	}
	defer c.segs.closeAll()
	b, _ := json.Marshal(ready)
	if err := c.w.Write(wire.KindReady, 0, "", b); err != nil {
		return fmt.Errorf("worker: sending ready: %w", err)
	}
	if c.slots > 1 {
		return c.serveMany(ctx)
	}
	return c.serveOne(ctx)
}

func (s *Server) tasks() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	tasks := make([]string, 0, len(s.handlers))
	for name := range s.handlers {
		tasks = append(tasks, name)
	}
	sort.Strings(tasks)
	return tasks
}

// serveOne serves one call at a time. Two goroutines take turns reading.
// The one that reads a call runs the handler itself, so no goroutine
// handoff sits between a request and its answer. If the handler runs
// longer than promoteAfter, the turn passes to the other goroutine, which
// then watches for cancel frames and the end of the stream; short calls
// never wake it.
func (c *conn) serveOne(ctx context.Context) error {
	var cur struct {
		sync.Mutex
		id     uint64
		cancel context.CancelFunc
	}
	turn := make(chan struct{}, 1)
	promote := time.AfterFunc(time.Hour, func() { turn <- struct{}{} })
	promote.Stop()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	loop := func() error {
		haveTurn := false
		for {
			if !haveTurn {
				select {
				case <-turn:
				case <-ctx.Done():
					return nil
				}
			}
			f, err := c.r.Read()
			for err == nil && f.Kind != wire.KindCall {
				switch f.Kind {
				case wire.KindCancel:
					cur.Lock()
					if cur.cancel != nil && cur.id == f.ID {
						cur.cancel()
					}
					cur.Unlock()
				case wire.KindRelease:
					c.release(f)
				default:
					err = fmt.Errorf("unexpected %s frame from the pool", f.Kind)
					continue
				}
				f, err = c.r.Read()
			}
			if err != nil {
				cur.Lock()
				if cur.cancel != nil {
					cur.cancel() // the pool is gone: stop the running handler
				}
				cur.Unlock()
				stop()
				if err == io.EOF {
					return nil
				}
				return fmt.Errorf("worker: reading requests: %w", err)
			}
			// The ctx exists before the turn can pass, so that a cancel
			// frame read right after finds it.
			tctx, cancel := context.WithCancel(ctx)
			cur.Lock()
			cur.id, cur.cancel = f.ID, cancel
			cur.Unlock()
			promote.Reset(promoteAfter)

			werr := c.handle(tctx, f)
			haveTurn = promote.Stop() // false: the other goroutine reads now
			cur.Lock()
			cur.cancel = nil
			cur.Unlock()
			cancel()
			if werr != nil {
				stop()
				return fmt.Errorf("worker: writing response: %w", werr)
			}
		}
	}
	turn <- struct{}{}
	errc := make(chan error, 1)
	go func() { errc <- loop() }()
	return errors.Join(loop(), <-errc)
}

// serveMany reads calls and runs each on a goroutine of its own; the pool
// sends at most c.slots at once.
func (c *conn) serveMany(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var mu sync.Mutex
	running := make(map[uint64]context.CancelFunc)
	var wg sync.WaitGroup
	defer wg.Wait()
	var werr error
	for {
		f, err := c.r.Read()
		if err == nil {
			switch f.Kind {
			case wire.KindCall:
				tctx, cancel := context.WithCancel(ctx)
				mu.Lock()
				running[f.ID] = cancel
				mu.Unlock()
				wg.Go(func() {
					if err := c.handle(tctx, f); err != nil {
						mu.Lock()
						werr = err
						mu.Unlock()
						stop()
					}
					mu.Lock()
					delete(running, f.ID)
					mu.Unlock()
					cancel()
				})
				continue
			case wire.KindCancel:
				mu.Lock()
				if cancel := running[f.ID]; cancel != nil {
					cancel()
				}
				mu.Unlock()
				continue
			case wire.KindRelease:
				c.release(f)
				continue
			}
			err = fmt.Errorf("unexpected %s frame from the pool", f.Kind)
		}
		stop() // the pool is gone, or broke the protocol: stop the handlers
		wg.Wait()
		if werr != nil {
			return fmt.Errorf("worker: writing response: %w", werr)
		}
		if err == io.EOF {
			return nil
		}
		return fmt.Errorf("worker: reading requests: %w", err)
	}
}

// handle runs the call f and writes its answer; it returns only write
// errors.
func (c *conn) handle(ctx context.Context, f wire.Frame) error {
	ci := &callState{Context: ctx, info: Info{ID: f.ID, Task: f.Name}, conn: c}
	args, err := c.decodeCall(ci, f)
	var out []byte
	if err == nil {
		out, err = c.s.call(ci, f.Name, args)
	}
	return c.respond(ci, out, err)
}

// decodeCall takes the META part and the shared-memory argument out of a
// call frame.
func (c *conn) decodeCall(ci *callState, f wire.Frame) ([]byte, error) {
	p := f.Payload
	if f.Flags&wire.FlagMeta != 0 {
		meta, rest, _ := wire.SplitMeta(p) // validated by the reader
		var m wire.Meta
		if err := json.Unmarshal(meta, &m); err != nil {
			return nil, &Error{Type: "BadMeta", Message: err.Error()}
		}
		ci.info.fill(m)
		p = rest
	}
	if f.Flags&wire.FlagShm == 0 {
		return p, nil
	}
	h, _ := wire.ParseHandle(p)
	m, err := c.segs.mapPool(h)
	if err != nil {
		return nil, &Error{Type: "ShmUnavailable", Message: err.Error()}
	}
	ci.arg, ci.argHandle, ci.info.Shm = m, h, true
	return m.Mem[h.Offset : h.Offset+h.Length], nil
}

// respond writes the answer to a call: through shared memory when the
// result lies in the argument's segment or a ResultBuffer, or is large;
// through the pipe otherwise.
func (c *conn) respond(ci *callState, out []byte, err error) error {
	defer ci.done()
	if err != nil {
		return c.write(wire.KindError, 0, ci.info.ID, nil, encodeError(err, c.v2))
	}
	if h, ok := c.shmResult(ci, out); ok {
		var head [wire.HandleSize]byte
		return c.write(wire.KindResult, wire.FlagShm, ci.info.ID, h.Append(head[:0]), nil)
	}
	if wire.HeaderSize+len(out) > c.maxFrame {
		err := &Error{Type: "PayloadTooLarge", Message: fmt.Sprintf("result of %d bytes exceeds the pool's frame limit of %d", len(out), c.maxFrame)}
		return c.write(wire.KindError, 0, ci.info.ID, nil, encodeError(err, c.v2))
	}
	return c.write(wire.KindResult, 0, ci.info.ID, nil, out)
}

func (c *conn) write(kind wire.Kind, flags uint8, id uint64, head, body []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.w.WriteFrame(kind, flags, id, "", head, body)
}

// release handles the pool's release frames.
func (c *conn) release(f wire.Frame) {
	switch f.Payload[0] {
	case wire.ReleaseDone:
		if gone, ok := c.segs.resultDone(f.ID); ok && gone != 0 {
			c.sendGone(gone)
		}
	case wire.ReleaseGone:
		c.segs.poolGone(f.ID)
	}
}

// sendGone tells the pool one of our segments is destroyed.
func (c *conn) sendGone(id uint64) {
	_ = c.write(wire.KindRelease, 0, id, nil, []byte{wire.ReleaseGone})
}
