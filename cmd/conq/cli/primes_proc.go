package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/internal/primes"
	"github.com/conqhq/conq/procpool"
	"github.com/conqhq/conq/procpool/worker"
)

// primesWorkerEnv names a worker command line for `conq primes --mode
// proc`, e.g. "python3 sdk/python/examples/primes_worker.py"; by default
// the conq binary serves as its own Go worker (conq __worker primes).
const primesWorkerEnv = "CONQ_PRIMES_WORKER_CMD"

func init() {
	registerPrimesMode("proc", primesMode{
		Summary: "conq's process pool, --workers worker processes (Go: conq itself; Python: --worker-cmd or $" + primesWorkerEnv + ")",
		Run:     runPrimesProc,
		Setup:   setupPrimesProc,
	})
	addCommand(newInternalWorkerCmd)
}

// setupPrimesProc adds --worker-cmd to conq primes.
// The value is bound to this command's runner, so concurrent commands
// stay independent.
func setupPrimesProc(cmd *cobra.Command) func(string) (primesRunner, error) {
	var line string
	cmd.Flags().StringVar(&line, "worker-cmd", "", "with --mode proc: worker command line (default: conq's own Go worker, or $"+primesWorkerEnv+")")
	return func(mode string) (primesRunner, error) {
		if mode != "proc" {
			if cmd.Flags().Changed("worker-cmd") {
				return nil, usageError("--worker-cmd is only for --mode proc")
			}
			return nil, nil
		}
		return func(ctx context.Context, workers int, numbers []uint64, report func(primeCheck)) error {
			return runPrimesProcWith(ctx, line, workers, numbers, report)
		}, nil
	}
}

// primesWorkerCommand resolves the worker of the proc mode from
// --worker-cmd ("" if not given).
func primesWorkerCommand(line string) ([]string, error) {
	if line == "" {
		line = os.Getenv(primesWorkerEnv)
	}
	if line != "" {
		argv, err := splitCommandLine(line)
		if err != nil {
			return nil, fmt.Errorf("worker command %q: %w", line, err)
		}
		return argv, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("finding the conq binary to run as the Go worker: %w", err)
	}
	return []string{exe, internalWorkerCmd, "primes"}, nil
}

// workerCheck is the result of the "check" task of both primes workers.
type workerCheck struct {
	N       uint64  `json:"n"`
	Prime   bool    `json:"prime"`
	Elapsed float64 `json:"elapsed"` // seconds, measured in the worker
}

func runPrimesProc(ctx context.Context, workers int, numbers []uint64, report func(primeCheck)) error {
	return runPrimesProcWith(ctx, "", workers, numbers, report)
}

func runPrimesProcWith(ctx context.Context, workerCmd string, workers int, numbers []uint64, report func(primeCheck)) error {
	argv, err := primesWorkerCommand(workerCmd)
	if err != nil {
		return err
	}
	p, err := procpool.New(ctx, procpool.Config{
		Command: argv,
		Workers: workers,
		Logger:  slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Shutdown(sctx)
	}()
	fs := make([]*future.Future[workerCheck], len(numbers))
	for i, n := range numbers {
		if fs[i], err = procpool.SubmitJSON[uint64, workerCheck](ctx, p, "check", n); err != nil {
			return err
		}
	}
	// Completion order, like procs.py's result queue.
	for f := range future.AsCompleted(ctx, fs) {
		c, err := f.Result(ctx)
		if err != nil {
			return err
		}
		report(primeCheck{N: c.N, Prime: c.Prime, Elapsed: time.Duration(c.Elapsed * float64(time.Second))})
	}
	return ctx.Err()
}

// internalWorkerCmd is the hidden command through which the conq binary
// serves as a Go process-pool worker.
const internalWorkerCmd = "__worker"

func newInternalWorkerCmd() *cobra.Command {
	return &cobra.Command{
		Use:    internalWorkerCmd + " primes",
		Short:  "Serve as a process-pool worker (started by conq itself)",
		Hidden: true,
		Args:   cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			if args[0] != "primes" {
				return &ExitError{Code: 2, Err: fmt.Errorf("%s: unknown task set %q (want primes)", internalWorkerCmd, args[0])}
			}
			s := &worker.Server{}
			worker.HandleJSONOn(s, "is_prime", func(_ context.Context, n uint64) (bool, error) {
				return primes.IsPrime(n), nil
			})
			worker.HandleJSONOn(s, "check", func(_ context.Context, n uint64) (workerCheck, error) {
				t0 := time.Now()
				prime := primes.IsPrime(n)
				return workerCheck{N: n, Prime: prime, Elapsed: time.Since(t0).Seconds()}, nil
			})
			return s.Run()
		},
	}
}
