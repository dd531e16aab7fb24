package procpool

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/procpool"
)

// pyModelPool runs bench/python/<script> under py with env.
func pyModelPool(tb testing.TB, py, script string, workers int, env ...string) *procpool.Pool {
	tb.Helper()
	sdk, _ := filepath.Abs("../../sdk/python")
	s, _ := filepath.Abs(filepath.Join("../python", script))
	cfg := procpool.Config{Command: []string{py, s}, Env: append([]string{"PYTHONPATH=" + sdk}, env...), Workers: workers, MaxPayload: 128 << 20}
	p, err := procpool.New(context.Background(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { p.Shutdown(context.Background()) })
	return p
}

func python(tb testing.TB) string { return workerCommand(tb, "python")[0] }

// python313 is the newest pyenv Python >= 3.13, or "".
func python313() string {
	home, _ := os.UserHomeDir()
	for _, v := range []string{"3.15", "3.14", "3.13"} {
		m, _ := filepath.Glob(filepath.Join(home, ".pyenv/versions", v+".*", "bin/python3"))
		if len(m) > 0 {
			return m[len(m)-1]
		}
	}
	return ""
}

func submitAll(b *testing.B, p *procpool.Pool, task string, args [][]byte) {
	fs := make([]*future.Future[[]byte], len(args))
	for i, a := range args {
		var err error
		if fs[i], err = p.Submit(context.Background(), task, a); err != nil {
			b.Fatal(err)
		}
	}
	for _, f := range fs {
		if _, err := f.Result(context.Background()); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPythonIOBound: 2,000 tasks that each wait 100 ms on 2 worker
// processes x 100 slots (asyncio.sleep on the loop; time.sleep on 100
// threads). One op is the whole batch; s/op is its wall time.
func BenchmarkPythonIOBound(b *testing.B) {
	for _, mode := range []string{"async", "threads"} {
		b.Run(mode, func(b *testing.B) {
			p := pyModelPool(b, python(b), "io_bound_worker.py", 2, "IO_MODE="+mode)
			args := make([][]byte, 2000)
			submitAll(b, p, "wait", args[:200]) // warm
			b.ResetTimer()
			for range b.N {
				submitAll(b, p, "wait", args)
			}
		})
	}
}

var primes = []int{2, 142702110479723, 299593572317531, 3333333333333301, 3333333333333333, 3333335652092209,
	4444444444444423, 4444444444444444, 4444444488888889, 5555553133149889, 5555555555555503, 5555555555555555,
	6666666666666666, 6666666666666719, 6666667141414921, 7777777536340681, 7777777777777753, 7777777777777777,
	9999999999999917, 9999999999999999}

// BenchmarkPythonPrimes: the book's 20 primes, one op = all 20, on 1
// process (one at a time), 2 processes, and 1 process x 2
// sub-interpreters (Python >= 3.13 for all three, so they compare). The
// rss-KiB metric is the resident memory of the worker processes together.
func BenchmarkPythonPrimes(b *testing.B) {
	py := python313()
	if py == "" {
		b.Skip("no Python >= 3.13 under ~/.pyenv/versions")
	}
	args := make([][]byte, len(primes))
	for i, n := range primes {
		args[i] = []byte(strconv.Itoa(n))
	}
	for _, c := range []struct {
		name    string
		workers int
		interp  string
	}{{"1-process", 1, "0"}, {"2-processes", 2, "0"}, {"1-process-2-interpreters", 1, "2"}} {
		b.Run(c.name, func(b *testing.B) {
			p := pyModelPool(b, py, "interp_worker.py", c.workers, "INTERP="+c.interp)
			submitAll(b, p, "prime", args[:2])
			b.ResetTimer()
			for range b.N {
				submitAll(b, p, "prime", args)
			}
			b.StopTimer()
			// Each process answers "pid rss pss" (KiB); a worker busy with
			// one call takes the next, so with 2 workers submit 2 at once
			// until both have answered.
			var rss, pss int
			seen := map[string]bool{}
			for try := 0; try < 50 && len(seen) < c.workers; try++ {
				fs := make([]*future.Future[[]byte], c.workers)
				for i := range fs {
					fs[i], _ = p.Submit(context.Background(), "rss", nil)
				}
				for _, f := range fs {
					v, _ := f.Result(context.Background())
					var pid string
					var r, s int
					if _, err := fmt.Sscan(string(v), &pid, &r, &s); err != nil || seen[pid] {
						continue
					}
					seen[pid] = true
					rss += r
					pss += s
				}
				time.Sleep(time.Millisecond)
			}
			b.ReportMetric(float64(pss), "pss-KiB")
			b.ReportMetric(float64(rss), "rss-KiB")
			_ = runtime.NumCPU
		})
	}
}

// pyBuffered is go-buffer / go-buffer-copy with the Python SDK: the
// argument in a Buffer the caller filled, the result read in place.
func pyBuffered(task string) func(b *testing.B) {
	return func(b *testing.B) {
		arg := make([]byte, 64<<20)
		for i := range arg {
			arg[i] = byte(i)
		}
		p := pyModelPool(b, python(b), "shm_worker.py", 1)
		ctx := context.Background()
		b.SetBytes(int64(len(arg)))
		b.ResetTimer()
		for range b.N {
			buf, err := p.NewBuffer(len(arg))
			if err != nil {
				b.Fatal(err)
			}
			copy(buf.Bytes(), arg[:0])
			out, err := p.CallBuffer(ctx, task, buf)
			if err != nil || out.Len() != len(arg) || !out.Shared() {
				b.Fatalf("%v", err)
			}
			out.Release()
		}
	}
}
