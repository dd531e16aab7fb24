package redisproc

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of /proc/PID/stat times: USER_HZ, 100 on every Linux
// ABI Go supports.
const userHZ = 100

// ProcessCPU returns the CPU time (user + system) process pid has used,
// from /proc/PID/stat, in steps of 10 ms. Benchmarks read it before and
// after a run to record Redis CPU per node next to the client's.
func ProcessCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count the fields after its closing one.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("redisproc: /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("redisproc: /proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("redisproc: /proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / userHZ, nil
}

// CPU is [ProcessCPU] of the running server.
func (s *Server) CPU() (time.Duration, error) {
	pid := s.Pid()
	if pid == 0 {
		return 0, fmt.Errorf("redisproc: %s is not running", s.Name)
	}
	return ProcessCPU(pid)
}
