package shm

import (
	"fmt"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/conqhq/conq/internal/wire"
)

// Supported reports whether this process can create segments.
func Supported() bool { return true }

// seals make a segment's size fixed: a peer that could shrink it would
// make the owner's next access fault (SIGBUS).
const seals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// Create makes a segment of size bytes (rounded up to pages), sealed
// against resizing, mapped read-write with its pages populated.
func Create(id uint64, size int) (*Segment, error) {
	size = PageRound(size)
	fd, err := unix.MemfdCreate("conq-shm", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, fmt.Errorf("shm: memfd_create: %w", err)
	}
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: sizing a segment of %d bytes: %w", size, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, seals); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: sealing: %w", err)
	}
	mem, err := unix.Mmap(fd, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("shm: mapping %d bytes: %w", size, err)
	}
	return &Segment{ID: id, FD: fd, Mem: mem}, nil
}

// Close unmaps the segment and closes its descriptor.
func (s *Segment) Close() error {
	err := unix.Munmap(s.Mem)
	s.Mem = nil
	if cerr := unix.Close(s.FD); err == nil {
		err = cerr
	}
	return err
}

// Open maps the peer segment h names (the whole segment, read-write if
// writable). It checks that the descriptor is a sealed memfd at least as
// large as the handle says, so the peer cannot make our accesses fault.
func Open(h wire.Handle, writable bool) (*Mapping, error) {
	if h.Size > 1<<40 {
		return nil, fmt.Errorf("shm: segment of %d bytes is not believable", h.Size)
	}
	flags, prot := unix.O_RDONLY, unix.PROT_READ
	if writable {
		flags, prot = unix.O_RDWR, unix.PROT_READ|unix.PROT_WRITE
	}
	path := "/proc/" + strconv.FormatUint(uint64(h.PID), 10) + "/fd/" + strconv.FormatUint(uint64(h.FD), 10)
	fd, err := unix.Open(path, flags|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("shm: opening %s: %w", path, err)
	}
	defer unix.Close(fd) // the mapping keeps the segment
	got, err := unix.FcntlInt(uintptr(fd), unix.F_GET_SEALS, 0)
	if err != nil || got&unix.F_SEAL_SHRINK == 0 {
		return nil, fmt.Errorf("shm: %s is not a memfd sealed against shrinking", path)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("shm: stat %s: %w", path, err)
	}
	if uint64(st.Size) < h.Size || h.Size == 0 {
		return nil, fmt.Errorf("shm: %s holds %d bytes, the handle says %d", path, st.Size, h.Size)
	}
	mem, err := unix.Mmap(fd, 0, int(h.Size), prot, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("shm: mapping %s: %w", path, err)
	}
	return &Mapping{ID: h.ID, Mem: mem}, nil
}

// Close unmaps m.
func (m *Mapping) Close() error {
	err := unix.Munmap(m.Mem)
	m.Mem = nil
	return err
}
