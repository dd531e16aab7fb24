// Package procpool benchmarks conq's process pool: round trips of no-op
// tasks to Go and Python workers and large-argument throughput. The Python
// multiprocessing baselines are bench/python/mp_*.py; numbers and commands
// are in docs/benchmarks.md.
package procpool

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/procpool"
)

var goWorker string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bench-procpool")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	goWorker = filepath.Join(dir, "worker")
	build := exec.Command("go", "build", "-o", goWorker, "./worker")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the bench worker:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func workerCommand(tb testing.TB, lang string) []string {
	if lang == "go" {
		return []string{goWorker}
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		tb.Skip("python3 not found")
	}
	script, _ := filepath.Abs("pyworker.py")
	return []string{py, script}
}

func newPool(tb testing.TB, lang string, workers int) *procpool.Pool {
	return newPoolConfig(tb, lang, procpool.Config{Workers: workers})
}

func newPoolConfig(tb testing.TB, lang string, cfg procpool.Config) *procpool.Pool {
	tb.Helper()
	sdk, _ := filepath.Abs("../../sdk/python")
	cfg.Command, cfg.Env = workerCommand(tb, lang), []string{"PYTHONPATH=" + sdk}
	cfg.MaxPayload, cfg.Logger = 128<<20, slog.New(slog.DiscardHandler)
	p, err := procpool.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Shutdown(context.Background()) })
	return p
}

// BenchmarkRoundTrip is the per-item cost of a no-op task with persistent
// workers, one per CPU, items submitted in batches like an executor's map
// (compare mp_pool.py / mp_executor.py at chunksize 1).
func BenchmarkRoundTrip(b *testing.B) {
	for _, lang := range []string{"go", "python"} {
		b.Run(lang, func(b *testing.B) {
			p := newPool(b, lang, runtime.NumCPU())
			ctx := context.Background()
			const batch = 256
			fs := make([]*future.Future[[]byte], 0, batch)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				n := min(batch, b.N-done)
				fs = fs[:0]
				for range n {
					f, err := p.Submit(ctx, "noop", nil)
					if err != nil {
						b.Fatal(err)
					}
					fs = append(fs, f)
				}
				for _, f := range fs {
					if _, err := f.Result(ctx); err != nil {
						b.Fatal(err)
					}
				}
				done += n
			}
		})
	}
}

// BenchmarkLatency is one call at a time through one worker: the full
// round trip with nothing overlapped.
func BenchmarkLatency(b *testing.B) {
	for _, lang := range []string{"go", "python"} {
		b.Run(lang, func(b *testing.B) {
			p := newPool(b, lang, 1)
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := p.Call(ctx, "noop", nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkEcho64MiB sends a 64 MiB argument and gets a result of the same
// size back, one worker; MB/s counts the argument once.
//
//   - go-pipe, python: Submit with a []byte, both ways through the pipes
//     (ShmThreshold < 0 for go-pipe; the Python SDK speaks protocol 1).
//   - go-shm: Submit with a []byte: the pool copies it into a shared
//     segment, the worker answers with that segment, the pool copies the
//     result out into a new []byte (the plain API's two copies).
//   - go-buffer: the argument is in a Buffer the caller filled; echo answers
//     with the argument's segment: nothing is copied at all.
//   - go-buffer-copy: the same, but the handler writes a new result into a
//     ResultBuffer (one 64 MiB copy, in the worker), read in place by the
//     caller.
func BenchmarkEcho64MiB(b *testing.B) {
	arg := bytes.Repeat([]byte("conq"), 16<<20)
	plain := func(lang string, cfg procpool.Config) func(b *testing.B) {
		return func(b *testing.B) {
			cfg.Workers = 1
			p := newPoolConfig(b, lang, cfg)
			ctx := context.Background()
			b.SetBytes(int64(len(arg)))
			b.ResetTimer()
			for range b.N {
				out, err := p.Call(ctx, "echo", arg)
				if err != nil || len(out) != len(arg) {
					b.Fatalf("%d bytes, %v", len(out), err)
				}
			}
		}
	}
	b.Run("go-pipe", plain("go", procpool.Config{ShmThreshold: -1}))
	b.Run("go-shm", plain("go", procpool.Config{}))
	buffered := func(task string) func(b *testing.B) {
		return func(b *testing.B) {
			p := newPoolConfig(b, "go", procpool.Config{Workers: 1})
			ctx := context.Background()
			buf, err := p.NewBuffer(len(arg))
			if err != nil {
				b.Fatal(err)
			}
			copy(buf.Bytes(), arg)
			b.SetBytes(int64(len(arg)))
			b.ResetTimer()
			for range b.N {
				out, err := p.CallBuffer(ctx, task, buf)
				if err != nil || out.Len() != len(arg) || !out.Shared() {
					b.Fatalf("%v", err)
				}
				if task == "echo" {
					buf = out // the same segment: the next argument
					continue
				}
				out.Release()
				if buf, err = p.NewBuffer(len(arg)); err != nil { // the argument's segment, reused
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if task == "echo" && !bytes.Equal(buf.Bytes(), arg) {
				b.Fatal("the echoed bytes differ")
			}
			buf.Release()
		}
	}
	b.Run("go-buffer", buffered("echo"))
	b.Run("go-buffer-copy", buffered("copy"))
	b.Run("python", plain("python", procpool.Config{}))
	b.Run("python-buffer-copy", pyBuffered("copy"))
	b.Run("python-buffer-echo", pyBuffered("echo"))
}

func TestWorkersAnswer(t *testing.T) {
	for _, lang := range []string{"go", "python"} {
		p := newPool(t, lang, 1)
		out, err := p.Call(context.Background(), "echo", []byte("ok"))
		if err != nil || string(out) != "ok" {
			t.Fatalf("%s: %q, %v", lang, out, err)
		}
	}
}
