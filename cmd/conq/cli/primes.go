package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/internal/primes"
	"github.com/conqhq/conq/pool"
)

func init() {
	addCommand(newPrimesCmd)
	registerPrimesMode("seq", primesMode{
		Summary:    "one goroutine, one number after another (sequential.py)",
		Sequential: true,
		Run:        runPrimesSeq,
	})
	registerPrimesMode("pool", primesMode{
		Summary: "conq's goroutine pool, --workers goroutines (pool.MapUnordered)",
		Run:     runPrimesPool,
	})
}

// primeCheck is the outcome of one is_prime call.
type primeCheck struct {
	N       uint64        `json:"n"`
	Prime   bool          `json:"prime"`
	Elapsed time.Duration `json:"-"`
}

// primesRunner checks every number with the given number of workers. It
// calls report once per number, as each check completes; report is safe
// to call from any goroutine. It returns when all are reported, or with
// ctx's error when ctx ends first.
type primesRunner func(ctx context.Context, workers int, numbers []uint64, report func(primeCheck)) error

// primesMode is an execution mode of `conq primes`. Each mode registers
// itself from its own file (primes_proc.go, primes_queue.go, ...) with
// registerPrimesMode in an init function.
type primesMode struct {
	Summary    string // one line for --help
	Sequential bool   // ignores --workers; reported as 1 worker, not sweepable
	Run        primesRunner

	// Setup, if set, is called when the command is built, to add the
	// mode's own flags. The prepare function it returns is called before
	// any mode runs, with the selected mode: it validates the flags (say,
	// rejects them with another mode) and, for its own mode, may return
	// the runner to use instead of Run, with the flag values bound (never
	// in the ctx: flag values are arguments, not request-scoped values).
	Setup func(cmd *cobra.Command) (prepare func(mode string) (primesRunner, error))
}

var primesModes = map[string]primesMode{}

func registerPrimesMode(name string, m primesMode) {
	if _, dup := primesModes[name]; dup {
		panic("cli: primes mode registered twice: " + name)
	}
	primesModes[name] = m
}

// checkPrime times one is_prime call, like check() in the book.
func checkPrime(n uint64) primeCheck {
	t0 := time.Now()
	p := primes.IsPrime(n)
	return primeCheck{N: n, Prime: p, Elapsed: time.Since(t0)}
}

func runPrimesSeq(ctx context.Context, _ int, numbers []uint64, report func(primeCheck)) error {
	for _, n := range numbers {
		if err := ctx.Err(); err != nil {
			return err
		}
		report(checkPrime(n))
	}
	return nil
}

func runPrimesPool(ctx context.Context, workers int, numbers []uint64, report func(primeCheck)) error {
	p, err := pool.New(pool.Config{Workers: workers})
	if err != nil {
		return err
	}
	defer p.Close()
	check := func(_ context.Context, n uint64) (primeCheck, error) { return checkPrime(n), nil }
	// Completion order, like procs.py's result queue. The window covers
	// every number: they are few and the queue should never starve.
	for c, err := range pool.MapUnordered(ctx, p, slices.Values(numbers), check, pool.Window(len(numbers))) {
		if err != nil {
			return err
		}
		report(c)
	}
	return nil
}

type primesOptions struct {
	mode    string
	workers int
	json    bool
	sweep   string
	plot    string
	numbers string
	run     primesRunner // the mode's runner with its flags bound, if it has any
}

// sweepRange is the parsed --sweep A..B.
type sweepRange struct{ from, to int }

func newPrimesCmd() *cobra.Command {
	var o primesOptions
	cmd := &cobra.Command{
		Use:   "primes [--mode MODE] [--workers N] [--json] [--sweep A..B [--plot FILE.svg|.png]]",
		Short: "Check the 20 numbers of Fluent Python's chapter 19 for primality, in parallel",
		Long: `Primes runs the CPU-bound benchmark of Fluent Python, 2nd ed., chapter 19:
trial division of twenty 16-digit numbers. Like the book's procs.py it prints
one line per number as each check completes, then the total:

  3333333333333301  P  0.563817s
  ...
  20 checks in 2.71s with 2 workers

--sweep runs a parallel mode once per worker count and prints the totals;
--plot also draws them. A spinner shows on stderr when it is a terminal.

Modes:
` + primesModesHelp(),
		Example: `  conq primes --mode seq
  conq primes --mode pool --workers 2
  conq primes --json
  conq primes --sweep 1..4 --plot speedup.svg`,
		Args: cobra.NoArgs,
	}
	var prepares []func(string) (primesRunner, error)
	for _, name := range primesModeNames() {
		if setup := primesModes[name].Setup; setup != nil {
			if prepare := setup(cmd); prepare != nil {
				prepares = append(prepares, prepare)
			}
		}
	}
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if _, ok := primesModes[o.mode]; ok {
			for _, prepare := range prepares {
				run, err := prepare(o.mode)
				if err != nil {
					return err
				}
				if run != nil {
					o.run = run
				}
			}
		}
		return runPrimes(cmd.Context(), cmd, o)
	}
	f := cmd.Flags()
	f.StringVar(&o.mode, "mode", "pool", "execution mode: "+strings.Join(primesModeNames(), ", "))
	f.IntVarP(&o.workers, "workers", "w", runtime.NumCPU(), "number of workers")
	f.BoolVar(&o.json, "json", false, "print one JSON object instead of text")
	f.StringVar(&o.sweep, "sweep", "", "run with A, A+1, ... B workers (e.g. 1..4) and print the total of each")
	f.StringVar(&o.plot, "plot", "", "with --sweep, draw time and speedup per worker count to this .svg or .png file")
	f.StringVar(&o.numbers, "numbers", "", "comma-separated numbers to check instead of the book's twenty")
	return cmd
}

func primesModeNames() []string {
	names := make([]string, 0, len(primesModes))
	for name := range primesModes {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

func primesModesHelp() string {
	var b strings.Builder
	for _, name := range primesModeNames() {
		fmt.Fprintf(&b, "  %-6s %s\n", name, primesModes[name].Summary)
	}
	return b.String()
}

// primesUsage is a bad command line: exit status 2.
func primesUsage(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

func parseSweep(s string) (sweepRange, error) {
	a, b, ok := strings.Cut(s, "..")
	from, err1 := strconv.Atoi(a)
	to, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil {
		return sweepRange{}, primesUsage("--sweep %q: want A..B, e.g. 1..4", s)
	}
	if from < 1 || to < from {
		return sweepRange{}, primesUsage("--sweep %q: want 1 <= A <= B", s)
	}
	return sweepRange{from, to}, nil
}

func parseNumbers(s string) ([]uint64, error) {
	if s == "" {
		return primes.Numbers, nil
	}
	var ns []uint64
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 64)
		if err != nil {
			return nil, primesUsage("--numbers: %q is not a non-negative integer", f)
		}
		ns = append(ns, n)
	}
	return ns, nil
}

func runPrimes(ctx context.Context, cmd *cobra.Command, o primesOptions) error {
	mode, ok := primesModes[o.mode]
	if o.run != nil {
		mode.Run = o.run
	}
	if !ok {
		return primesUsage("--mode %q: unknown mode; want one of %s", o.mode, strings.Join(primesModeNames(), ", "))
	}
	if o.workers < 1 {
		return primesUsage("--workers must be at least 1, got %d", o.workers)
	}
	workers := o.workers
	if mode.Sequential {
		if cmd.Flags().Changed("workers") && o.workers != 1 {
			return primesUsage("--workers %d: mode %q runs one worker", o.workers, o.mode)
		}
		workers = 1
	}
	numbers, err := parseNumbers(o.numbers)
	if err != nil {
		return err
	}
	if o.plot != "" {
		if ext := strings.ToLower(filepath.Ext(o.plot)); ext != ".svg" && ext != ".png" {
			return primesUsage("--plot %q: want a .svg or .png file name", o.plot)
		}
		if o.sweep == "" {
			return primesUsage("--plot needs --sweep: it draws one point per worker count")
		}
	}
	stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
	if o.sweep != "" {
		r, err := parseSweep(o.sweep)
		if err != nil {
			return err
		}
		if mode.Sequential {
			return primesUsage("--sweep: mode %q has a single worker; sweep a parallel mode", o.mode)
		}
		return primesInterrupted(ctx, primesSweep(ctx, stdout, stderr, o, mode, r, numbers))
	}

	var mu sync.Mutex // serializes report: runners may call it concurrently
	var checks []primeCheck
	if !o.json {
		if mode.Sequential {
			fmt.Fprintf(stdout, "Checking %d numbers sequentially:\n", len(numbers))
		} else {
			fmt.Fprintf(stdout, "Checking %d numbers with %s (%s):\n", len(numbers), countNoun(workers, "worker"), o.mode)
		}
	}
	spin := newSpinner(stderr, "checking", len(numbers))
	t0 := time.Now()
	err = mode.Run(ctx, workers, numbers, func(c primeCheck) {
		mu.Lock()
		defer mu.Unlock()
		checks = append(checks, c)
		spin.Add(1)
		if !o.json {
			label := ' '
			if c.Prime {
				label = 'P'
			}
			spin.Print(func() { fmt.Fprintf(stdout, "%16d  %c %9.6fs\n", c.N, label, c.Elapsed.Seconds()) })
		}
	})
	total := time.Since(t0)
	spin.Stop()
	if err != nil {
		return primesInterrupted(ctx, fmt.Errorf("primes --mode %s: %w", o.mode, err))
	}
	mu.Lock()
	defer mu.Unlock()
	if len(checks) != len(numbers) {
		return &ExitError{Code: 1, Err: fmt.Errorf("primes --mode %s: %d of %d numbers reported", o.mode, len(checks), len(numbers))}
	}
	if o.json {
		return writePrimesJSON(stdout, o.mode, workers, total, checks)
	}
	fmt.Fprintf(stdout, "%d checks in %.2fs with %s\n", len(checks), total.Seconds(), countNoun(workers, "worker"))
	return nil
}

// primesInterrupted gives a failed run its exit status: 130 if ctx ended
// (Ctrl-C), as a shell reports SIGINT; 1 otherwise, unless err has one.
func primesInterrupted(ctx context.Context, err error) error {
	var ee *ExitError
	switch {
	case err == nil || errors.As(err, &ee):
		return err
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return &ExitError{Code: 130, Err: err}
	}
	return &ExitError{Code: 1, Err: err}
}

func countNoun(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.Itoa(n) + " " + word + "s"
}

type primesJSON struct {
	Mode    string           `json:"mode"`
	Workers int              `json:"workers"`
	TotalS  float64          `json:"total_s"`
	Checks  []primeCheckJSON `json:"checks"`
}

type primeCheckJSON struct {
	primeCheck
	ElapsedS float64 `json:"elapsed_s"`
}

func writePrimesJSON(w io.Writer, mode string, workers int, total time.Duration, checks []primeCheck) error {
	out := primesJSON{Mode: mode, Workers: workers, TotalS: total.Seconds(), Checks: make([]primeCheckJSON, len(checks))}
	for i, c := range checks {
		out.Checks[i] = primeCheckJSON{c, c.Elapsed.Seconds()}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// sweepPoint is the total time of one run in a sweep.
type sweepPoint struct {
	Workers int     `json:"workers"`
	TotalS  float64 `json:"total_s"`
	Speedup float64 `json:"speedup"` // the first point's time over this one's
}

func primesSweep(ctx context.Context, stdout, stderr io.Writer, o primesOptions, mode primesMode, r sweepRange, numbers []uint64) error {
	spin := newSpinner(stderr, "", len(numbers))
	defer spin.Stop()
	var points []sweepPoint
	if !o.json {
		fmt.Fprintf(stdout, "Checking %d numbers with %d to %d workers (%s):\n", len(numbers), r.from, r.to, o.mode)
		fmt.Fprintf(stdout, "%7s  %9s  %7s\n", "workers", "total", "speedup") // speedup vs the first row
	}
	for w := r.from; w <= r.to; w++ {
		spin.SetLabel(fmt.Sprintf("%s with %d workers", o.mode, w), len(numbers))
		var mu sync.Mutex
		n := 0
		t0 := time.Now()
		err := mode.Run(ctx, w, numbers, func(primeCheck) {
			mu.Lock()
			n++
			mu.Unlock()
			spin.Add(1)
		})
		total := time.Since(t0)
		if err != nil {
			return fmt.Errorf("primes --mode %s with %d workers: %w", o.mode, w, err)
		}
		if n != len(numbers) {
			return &ExitError{Code: 1, Err: fmt.Errorf("primes --mode %s with %d workers: %d of %d numbers reported", o.mode, w, n, len(numbers))}
		}
		pt := sweepPoint{Workers: w, TotalS: total.Seconds()}
		pt.Speedup = 1
		if len(points) > 0 {
			pt.Speedup = points[0].TotalS / pt.TotalS
		}
		points = append(points, pt)
		if !o.json {
			fmt.Fprintf(stdout, "%7d  %8.2fs  %6.2fx\n", pt.Workers, pt.TotalS, pt.Speedup)
		}
	}
	if o.plot != "" {
		if err := plotSweep(o.plot, o.mode, len(numbers), points); err != nil {
			return fmt.Errorf("--plot %s: %w", o.plot, err)
		}
		if !o.json {
			fmt.Fprintf(stdout, "plot written to %s\n", o.plot)
		}
	}
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(struct {
			Mode  string       `json:"mode"`
			Sweep []sweepPoint `json:"sweep"`
		}{o.mode, points})
	}
	return nil
}
