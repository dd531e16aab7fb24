package procpool

import (
	"errors"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"time"
)

// exitPipe is the pool's end of a pipe that a worker writes (responses,
// stdout, stderr). End of file is not a sign that the worker is gone: a
// process it forked holds its own copy of the write end and may keep it
// open for as long as it lives. So once the worker has exited (finish),
// reads stop waiting: they return what is already in the pipe, then
// io.EOF. What a worker wrote before it exited is never lost.
type exitPipe struct {
	f    *os.File
	done atomic.Bool
}

func newExitPipe(f *os.File) *exitPipe { return &exitPipe{f: f} }

func (p *exitPipe) Read(b []byte) (int, error) {
	if !p.done.Load() {
		n, err := p.f.Read(b)
		if n > 0 || err == nil || !errors.Is(err, os.ErrDeadlineExceeded) || !p.done.Load() {
			return n, err
		}
	}
	return p.drain(b)
}

// drain reads without waiting; an empty pipe is the end.
func (p *exitPipe) drain(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	rc, err := p.f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	var rerr error
	// Control, not Read: an expired deadline does not stop it, and the
	// descriptor is non-blocking, so an empty pipe gives EAGAIN.
	if err := rc.Control(func(fd uintptr) {
		for {
			n, rerr = syscall.Read(int(fd), b)
			if rerr != syscall.EINTR {
				return
			}
		}
	}); err != nil {
		return 0, err
	}
	switch {
	case n > 0:
		return n, nil
	case rerr == nil || rerr == syscall.EAGAIN:
		return 0, io.EOF
	default:
		return 0, &os.PathError{Op: "read", Path: p.f.Name(), Err: rerr}
	}
}

// finish is called once the worker has exited: blocked and later reads
// drain the pipe instead of waiting for writers that may never close it.
func (p *exitPipe) finish() {
	p.done.Store(true)
	_ = p.f.SetReadDeadline(time.Now())
}

func (p *exitPipe) Close() error { return p.f.Close() }
