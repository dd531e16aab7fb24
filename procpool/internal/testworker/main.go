// Command testworker is the Go worker the procpool tests run: each task
// exercises one way a worker can behave or misbehave.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/conqhq/conq/procpool/worker"
)

// pattern fills b with bytes that depend on their offset.
func pattern(b []byte) {
	const period = 4099 // prime: no alignment hides a misplaced block
	for i := range min(len(b), period) {
		b[i] = byte(i*7 + i>>8)
	}
	for n := period; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

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
	// overlap waits until as many calls as its argument says run at once
	// in this process (or 20s pass), and returns when it started and ended.
	var running struct {
		sync.Mutex
		n    int
		cond *sync.Cond
	}
	running.cond = sync.NewCond(&running.Mutex)
	worker.Handle("overlap", func(_ context.Context, b []byte) ([]byte, error) {
		start := time.Now()
		want, _ := strconv.Atoi(string(b))
		running.Lock()
		running.n++
		running.cond.Broadcast()
		deadline := time.AfterFunc(20*time.Second, func() { running.Lock(); running.cond.Broadcast(); running.Unlock() })
		for running.n < want && time.Since(start) < 20*time.Second {
			running.cond.Wait()
		}
		reached := running.n >= want
		running.Unlock()
		deadline.Stop()
		if !reached {
			return nil, fmt.Errorf("only %d of %d calls ran at once", running.n, want)
		}
		return fmt.Appendf(nil, "%d %d %d", os.Getpid(), start.UnixNano(), time.Now().UnixNano()), nil
	})
	// hold creates <dir>/<name>.<pid>, then sleeps 3s honouring its ctx
	// and returns its pid; the argument is "<dir>/<name>".
	worker.Handle("hold", func(ctx context.Context, b []byte) ([]byte, error) {
		if err := os.WriteFile(fmt.Sprintf("%s.%d", b, os.Getpid()), nil, 0o600); err != nil {
			return nil, err
		}
		select {
		case <-time.After(3 * time.Second):
			return []byte(strconv.Itoa(os.Getpid())), nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	// block runs until cancelled, whatever its argument.
	worker.Handle("block", func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	})
	worker.Handle("info", func(ctx context.Context, b []byte) ([]byte, error) {
		info, ok := worker.CallInfo(ctx)
		if !ok {
			return nil, fmt.Errorf("no CallInfo")
		}
		return json.Marshal(info)
	})
	worker.Handle("sha", func(ctx context.Context, b []byte) ([]byte, error) {
		info, _ := worker.CallInfo(ctx)
		sum := sha256.Sum256(b)
		return fmt.Appendf(nil, "%x %d %t", sum, len(b), info.Shm), nil
	})
	// gen returns n bytes of a known pattern, built in a ResultBuffer if
	// the argument ends in " buf", on the heap otherwise.
	worker.Handle("gen", func(ctx context.Context, b []byte) ([]byte, error) {
		f := strings.Fields(string(b))
		n, _ := strconv.Atoi(f[0])
		var out []byte
		if len(f) > 1 && f[1] == "buf" {
			out = worker.ResultBuffer(ctx, n)
		} else {
			out = make([]byte, n)
		}
		pattern(out)
		return out, nil
	})
	// upper upper-cases its argument in place and returns it.
	worker.Handle("upper", func(_ context.Context, b []byte) ([]byte, error) {
		for i, c := range b {
			if 'a' <= c && c <= 'z' {
				b[i] = c - 32
			}
		}
		return b, nil
	})
	worker.Handle("retry", func(context.Context, []byte) ([]byte, error) {
		return nil, worker.RetryAfter(1500*time.Millisecond, &worker.Error{Type: "RateLimited", Message: "slow down"})
	})
	worker.Handle("skip", func(context.Context, []byte) ([]byte, error) {
		return nil, fmt.Errorf("hopeless: %w", worker.ErrSkipRetry)
	})
	var opts []worker.Option
	if v, err := strconv.Atoi(os.Getenv("TESTWORKER_PROTOCOL")); err == nil {
		opts = append(opts, worker.Protocol(v))
	}
	if err := worker.Run(opts...); err != nil {
		fmt.Fprintln(os.Stderr, "testworker:", err)
		os.Exit(1)
	}
	if os.Getenv("TESTWORKER_IGNORE_EOF") != "" {
		fmt.Fprintln(os.Stderr, "testworker: lingering after end of input")
		time.Sleep(time.Hour)
	}
}
