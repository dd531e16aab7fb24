//go:build !linux

package procpool

import (
	"os"
	"syscall"
)

// Without Pdeathsig, workers rely on seeing end of file on their request
// descriptor when the pool's process dies.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func killGroup(pid int) { _ = syscall.Kill(-pid, syscall.SIGKILL) }

func growPipe(*os.File, int) {}
