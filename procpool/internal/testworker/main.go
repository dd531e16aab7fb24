// Command testworker is the Go worker the procpool tests run: each task
// exercises one way a worker can behave or misbehave.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/conqhq/conq/procpool/worker"
)

func main() {
	if path := os.Getenv("TESTWORKER_FAIL_IF_EXISTS"); path != "" {
		if _, err := os.Stat(path); err == nil {
			fmt.Fprintln(os.Stderr, "testworker: refusing to start:", path, "exists")
			os.Exit(3)
		}
	}
	if os.Getenv("TESTWORKER_NO_HANDSHAKE") != "" {
		fmt.Fprintln(os.Stderr, "testworker: not saying ready")
		time.Sleep(time.Hour)
	}
	if os.Getenv("TESTWORKER_BAD_HANDSHAKE") != "" {
		os.NewFile(4, "out").Write([]byte("hello, I am not a frame\n"))
		time.Sleep(time.Hour)
	}

	worker.Handle("echo", func(_ context.Context, b []byte) ([]byte, error) { return b, nil })
	worker.Handle("noop", func(context.Context, []byte) ([]byte, error) { return nil, nil })
	worker.Handle("pid", func(context.Context, []byte) ([]byte, error) {
		return []byte(strconv.Itoa(os.Getpid())), nil
	})
	worker.Handle("sleep", func(ctx context.Context, b []byte) ([]byte, error) {
		d, _ := time.ParseDuration(string(b))
		select {
		case <-time.After(d):
			return []byte("slept"), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	worker.Handle("sleep_ignore", func(_ context.Context, b []byte) ([]byte, error) {
		d, _ := time.ParseDuration(string(b))
		time.Sleep(d)
		return []byte("slept"), nil
	})
	worker.Handle("exit", func(_ context.Context, b []byte) ([]byte, error) {
		code, _ := strconv.Atoi(string(b))
		fmt.Fprintf(os.Stderr, "testworker: exiting with %d\n", code)
		os.Exit(code)
		return nil, nil
	})
	worker.Handle("sigkill", func(context.Context, []byte) ([]byte, error) {
		fmt.Fprintln(os.Stderr, "testworker: about to be killed")
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	})
	worker.Handle("segv", func(context.Context, []byte) ([]byte, error) {
		// A real SIGSEGV death, as a C extension would die: restore the
		// kernel's default action (the Go runtime turns faults into
		// panics), then fault.
		fmt.Fprintln(os.Stderr, "testworker: segfaulting")
		var act [4]uint64 // struct sigaction, all zero: SIG_DFL
		syscall.RawSyscall6(syscall.SYS_RT_SIGACTION, uintptr(syscall.SIGSEGV), uintptr(unsafe.Pointer(&act)), 0, 8, 0, 0)
		syscall.Kill(os.Getpid(), syscall.SIGSEGV)
		select {}
	})
	worker.Handle("noisy", func(_ context.Context, b []byte) ([]byte, error) {
		for i := range 50 {
			fmt.Printf("stdout line %d %s\n", i, b)
			fmt.Fprintf(os.Stderr, "stderr line %d\n", i)
		}
		fmt.Print("no newline at the end")
		return []byte("ok"), nil
	})
	worker.Handle("fail", func(_ context.Context, b []byte) ([]byte, error) {
		return nil, &worker.Error{Type: "ValueError", Message: string(b)}
	})
	worker.Handle("plainfail", func(_ context.Context, b []byte) ([]byte, error) {
		return nil, fmt.Errorf("plain: %s", b)
	})
	worker.Handle("panic", func(context.Context, []byte) ([]byte, error) { panic("boom") })
	worker.Handle("garbage", func(context.Context, []byte) ([]byte, error) {
		os.NewFile(4, "out").Write([]byte{0, 0, 0, 20, 77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8})
		select {}
	})
	worker.Handle("oversize", func(context.Context, []byte) ([]byte, error) {
		var hdr [16]byte
		binary.BigEndian.PutUint32(hdr[:], 0xFFFFFFF0)
		hdr[4] = 3
		os.NewFile(4, "out").Write(hdr[:])
		select {}
	})
	worker.Handle("wrongid", func(context.Context, []byte) ([]byte, error) {
		var hdr [16]byte
		binary.BigEndian.PutUint32(hdr[:], 12)
		hdr[4] = 3
		binary.BigEndian.PutUint64(hdr[8:], 1<<60)
		os.NewFile(4, "out").Write(hdr[:])
		select {}
	})
	// spawn starts a process that outlives this worker unless the pool
	// kills the worker's whole tree, and returns its pid. The argument says
	// how it hides: "plain" (a child in our process group), "setsid" (a
	// child in a session of its own), "double" (setsid and orphaned at
	// once, a daemon's double fork), "pipes" (a child holding the
	// protocol and output pipes).
	worker.Handle("spawn", func(_ context.Context, b []byte) ([]byte, error) {
		var cmd *exec.Cmd
		switch string(b) {
		case "plain":
			cmd = exec.Command("sleep", "120")
		case "setsid":
			cmd = exec.Command("sleep", "120")
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		case "pipes":
			cmd = exec.Command("sleep", "120")
			cmd.ExtraFiles = []*os.File{os.NewFile(3, "requests"), os.NewFile(4, "responses")}
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		case "double":
			out, err := exec.Command("sh", "-c", "setsid sleep 120 </dev/null >/dev/null 2>&1 & echo $!").Output()
			return bytes.TrimSpace(out), err
		default:
			return nil, fmt.Errorf("spawn %q: unknown kind", b)
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return []byte(strconv.Itoa(cmd.Process.Pid)), nil
	})
	worker.HandleJSON("double", func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	worker.Handle("bytes", func(_ context.Context, b []byte) ([]byte, error) {
		n, _ := strconv.Atoi(string(b))
		return make([]byte, n), nil
	})
	if err := worker.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "testworker:", err)
		os.Exit(1)
	}
	if os.Getenv("TESTWORKER_IGNORE_EOF") != "" {
		fmt.Fprintln(os.Stderr, "testworker: lingering after end of input")
		time.Sleep(time.Hour)
	}
}
