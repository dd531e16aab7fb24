package procpool

import (
	"os"
	"syscall"
)

// fSetPipeSz is F_SETPIPE_SZ (linux/fcntl.h), missing from package syscall.
const fSetPipeSz = 1031

// growPipe raises a pipe's capacity so large payloads move in fewer, larger
// system calls. Best effort: the limit is /proc/sys/fs/pipe-max-size.
func growPipe(f *os.File, size int) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, fd, fSetPipeSz, uintptr(size))
	})
}
