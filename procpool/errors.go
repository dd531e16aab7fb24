package procpool

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"time"
)

// Sentinel errors. The typed errors below match their sentinel with
// errors.Is.
var (
	// Deprecated: ErrPoolClosed is the old name of ErrClosed.
	ErrPoolClosed      = ErrClosed
	ErrTaskTimeout     = fmt.Errorf("procpool: task timed out: %w", context.DeadlineExceeded)
	ErrPayloadTooLarge = errors.New("procpool: payload too large")
	ErrWorkerCrashed   = errors.New("procpool: worker crashed")
	ErrProtocol        = errors.New("procpool: protocol error")
	ErrWorkerStart     = errors.New("procpool: worker failed to start")
)

// WorkerCrashedError is the error of a task whose worker died under it.
type WorkerCrashedError struct {
	Task     string
	WorkerID int
	PID      int
	ExitCode int            // exit status, or -1 if killed by a signal
	Signal   syscall.Signal // the killing signal, 0 if it exited
	Stderr   []string       // the last lines the worker wrote to stderr
}

func (e *WorkerCrashedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "procpool: worker %d (pid %d) crashed running task %q: %s", e.WorkerID, e.PID, e.Task, exitText(e.ExitCode, e.Signal))
	writeTail(&b, e.Stderr)
	return b.String()
}

func (e *WorkerCrashedError) Is(target error) bool { return target == ErrWorkerCrashed }

// TaskError is an error raised by the task inside the worker: an exception
// in Python, an error or panic in Go.
type TaskError struct {
	Task      string
	Type      string // e.g. "ValueError", "panic", "UnknownTask"
	Message   string
	Traceback string // the worker's traceback or stack, if it sent one
	// What the task asked of a task queue (protocol 2 error fields): retry
	// no sooner than RetryAfter, or not at all.
	RetryAfter time.Duration
	SkipRetry  bool
}

func (e *TaskError) Error() string {
	return fmt.Sprintf("procpool: task %q failed: %s: %s", e.Task, e.Type, e.Message)
}

// ProtocolError means a worker broke the protocol (malformed, oversize or
// unexpected frame); the worker is killed and replaced.
type ProtocolError struct {
	WorkerID int
	PID      int
	Problem  string
}

func (e *ProtocolError) Error() string {
	return fmt.Sprintf("procpool: protocol error from worker %d (pid %d): %s", e.WorkerID, e.PID, e.Problem)
}

func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

// StartError means a worker process could not be started or did not
// complete its handshake.
type StartError struct {
	Command  []string
	Reason   string
	Err      error // underlying error, if any
	ExitCode int   // if the process exited during start; -1 if signalled, 0 if it did not exit
	Signal   syscall.Signal
	Stderr   []string // last lines of its stderr
}

func (e *StartError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "procpool: worker %q failed to start: %s", strings.Join(e.Command, " "), e.Reason)
	if e.Err != nil {
		fmt.Fprintf(&b, ": %v", e.Err)
	}
	writeTail(&b, e.Stderr)
	return b.String()
}

func (e *StartError) Is(target error) bool { return target == ErrWorkerStart }
func (e *StartError) Unwrap() error        { return e.Err }

func exitText(code int, sig syscall.Signal) string {
	if sig != 0 {
		return fmt.Sprintf("killed by signal %d (%v)", int(sig), sig)
	}
	return fmt.Sprintf("exit status %d", code)
}

func writeTail(b *strings.Builder, lines []string) {
	if len(lines) == 0 {
		return
	}
	b.WriteString("; stderr tail:")
	for _, l := range lines {
		b.WriteString("\n\t")
		b.WriteString(l)
	}
}
