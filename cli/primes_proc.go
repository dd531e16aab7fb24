package cli

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"reflect"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

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
	})
	addCommand(newInternalWorkerCmd)
	withPrimesProcFlags()
}

// withPrimesProcFlags adds --worker-cmd to the primes command built by
// primes.go, whose factory registered before this file's init ran (files
// initialize in name order). If primes.go adds the flag itself, by calling
// addPrimesProcFlags, this does nothing.
func withPrimesProcFlags() {
	primesFactory := reflect.ValueOf(newPrimesCmd).Pointer()
	for i, f := range commandFactories {
		if reflect.ValueOf(f).Pointer() != primesFactory {
			continue
		}
		commandFactories[i] = func() *cobra.Command {
			cmd := f()
			if cmd.Flags().Lookup("worker-cmd") == nil {
				addPrimesProcFlags(cmd.Flags())
			}
			return cmd
		}
	}
}

// primesWorkerCmd is set by --worker-cmd (see addPrimesProcFlags).
var primesWorkerCmd string

// addPrimesProcFlags adds the flags of the proc mode to `conq primes`.
func addPrimesProcFlags(f *pflag.FlagSet) {
	f.StringVar(&primesWorkerCmd, "worker-cmd", "", "with --mode proc: worker command line (default: conq's own Go worker, or $"+primesWorkerEnv+")")
}

// primesWorkerCommand resolves the worker of the proc mode.
func primesWorkerCommand() ([]string, error) {
	line := primesWorkerCmd
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
	argv, err := primesWorkerCommand()
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
		if fs[i], err = procpool.SubmitJSON[workerCheck](ctx, p, "check", n); err != nil {
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
