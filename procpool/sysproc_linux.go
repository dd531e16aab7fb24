package procpool

import (
	"os"
	"syscall"
)

// sysProcAttr puts the worker in its own process group (a terminal's Ctrl-C
// reaches the pool, which then shuts down in order) and has the kernel kill
// it when the pool's process dies, however it dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// killGroup kills the worker and anything it started in its group.
func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

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
