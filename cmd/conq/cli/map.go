package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/procpool"
)

func init() { addCommand(newMapCmd) }

type mapOptions struct {
	workerCmd   string
	task        string
	processes   int
	concurrency int
	timeout     time.Duration
	keepGoing   bool
	maxPayload  int
}

func newMapCmd() *cobra.Command {
	var o mapOptions
	cmd := &cobra.Command{
		Use:   "map --worker-cmd CMD --task NAME < in.jsonl > out.jsonl",
		Short: "Run a task over JSON lines in a pool of worker processes",
		Long: `Map reads one JSON value per line from stdin, runs the task on each in a
pool of worker processes (Go or Python SDK, see docs/protocol.md) and writes
one line per input line to stdout, in input order:

  {"result": <the task's JSON result>}
  {"error": {"type": "...", "message": "..."}}

Error types: worker_crashed, timeout, task_error, protocol_error, bad_input,
payload_too_large, start_error, cancelled. Every line is processed whatever
fails; the exit status is 1 if any line failed, or 0 with --keep-going.
Progress goes to stderr when it is a terminal.

--processes worker processes run; --concurrency lines are in flight at once
(default: one per process). With more lines than processes each process is
asked to take several at once (CONQ_SLOTS, protocol 2 workers: the Go SDK
runs them on goroutines); a protocol 1 worker takes one at a time anyway.`,
		Example: `  conq map --worker-cmd "python3 sdk/python/examples/primes_worker.py" --task is_prime < numbers.jsonl
  conq map --worker-cmd ./fetcher --task fetch --processes 2 --concurrency 64 < urls.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runMap(cmd.Context(), o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.workerCmd, "worker-cmd", "", "worker command line (split like a shell, no expansion)")
	f.StringVar(&o.task, "task", "", "task name")
	f.IntVarP(&o.processes, "processes", "p", runtime.NumCPU(), "number of worker processes")
	f.IntVarP(&o.processes, "workers", "w", runtime.NumCPU(), "the same as --processes")
	f.IntVarP(&o.concurrency, "concurrency", "c", 0, "lines in flight at once, over all processes (0: one per process)")
	f.DurationVar(&o.timeout, "timeout", 0, "per-task time limit (0: none)")
	f.BoolVarP(&o.keepGoing, "keep-going", "k", false, "exit 0 even if some lines fail (every line is processed either way)")
	f.IntVar(&o.maxPayload, "max-payload", procpool.DefaultMaxPayload, "largest input line or result, in bytes")
	_ = cmd.MarkFlagRequired("worker-cmd")
	_ = cmd.MarkFlagRequired("task")
	return cmd
}

// mapLine is one input line on its way through the pool.
type mapLine struct {
	n   int
	f   *future.Future[[]byte]
	err error // bad_input: never submitted
}

func runMap(ctx context.Context, o mapOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	argv, err := splitCommandLine(o.workerCmd)
	if err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("--worker-cmd: %w", err)}
	}
	if o.processes < 1 {
		return &ExitError{Code: 2, Err: fmt.Errorf("--processes must be at least 1, got %d", o.processes)}
	}
	if o.concurrency < 0 {
		return &ExitError{Code: 2, Err: fmt.Errorf("--concurrency must not be negative, got %d", o.concurrency)}
	}
	concurrency := max(o.concurrency, o.processes)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	pool, err := procpool.New(ctx, procpool.Config{
		Command: argv, Workers: o.processes, Slots: slotsFor(concurrency, o.processes),
		TaskTimeout: o.timeout, MaxPayload: o.maxPayload, Logger: logger,
	})
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = pool.Shutdown(sctx)
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // on an early stop, cancels the lines in flight

	var done, failed atomic.Int64
	if stderrIsTTY(stderr) {
		stop := showProgress(stderr, &done, &failed)
		defer stop()
	}

	// A reader goroutine submits lines in order, at most window ahead of
	// the writer; the writer waits for each in turn.
	window := 4 * max(concurrency, pool.Slots())
	lines := make(chan mapLine, window)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		readErr <- readLines(ctx, stdin, o.maxPayload, func(n int, line []byte) bool {
			ml := mapLine{n: n}
			if !json.Valid(line) {
				ml.err = errBadInput
			} else if ml.f, ml.err = pool.Submit(ctx, o.task, line); ml.err != nil && ctx.Err() != nil {
				return false
			}
			select {
			case lines <- ml:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()

	out := bufio.NewWriterSize(stdout, 64<<10)
	var firstFailure error
	for ml := range lines {
		var res []byte
		err := ml.err
		if err == nil {
			if ml.f.State() != future.Done {
				if err := out.Flush(); err != nil {
					return fmt.Errorf("writing output: %w", err)
				}
			}
			res, err = ml.f.Result(context.Background()) // ctx ending cancels the task, which then ends
		}
		if _, werr := out.Write(encodeMapLine(res, err)); werr != nil {
			return fmt.Errorf("writing output: %w", werr)
		}
		done.Add(1)
		if err != nil {
			failed.Add(1)
			if firstFailure == nil {
				firstFailure = fmt.Errorf("line %d: %w", ml.n, err)
			}
		}
	}
	cancel()
	for range lines { // let the reader finish; its lines are cancelled
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("writing output: %w", err)
	}
	if err := <-readErr; err != nil && !errors.Is(err, context.Canceled) {
		return &ExitError{Code: 2, Err: fmt.Errorf("reading input: %w", err)}
	}
	if ctx := context.Cause(ctx); ctx != nil && firstFailure == nil && !errors.Is(ctx, context.Canceled) {
		return ctx
	}
	if n := failed.Load(); n > 0 {
		summary := fmt.Errorf("%d of %d lines failed; first: %w", n, done.Load(), firstFailure)
		if o.keepGoing {
			fmt.Fprintf(stderr, "conq map: %v\n", summary)
			return nil
		}
		return &ExitError{Code: 1, Err: fmt.Errorf("%w (--keep-going exits 0)", summary)}
	}
	return nil
}

var errBadInput = errors.New("input line is not valid JSON")

// slotsFor is how many calls at once each of processes worker processes is
// asked to take for concurrency calls in flight; 0 (ask nothing) for one.
func slotsFor(concurrency, processes int) int {
	if n := (concurrency + processes - 1) / processes; n > 1 {
		return n
	}
	return 0
}

// readLines calls fn for each line of r (without its line ending) until fn
// returns false or r ends.
func readLines(ctx context.Context, r io.Reader, max int, fn func(n int, line []byte) bool) error {
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		var line []byte
		for {
			chunk, err := br.ReadSlice('\n')
			line = append(line, chunk...)
			if len(line) > max+2 {
				return fmt.Errorf("line %d is longer than --max-payload (%d bytes)", n, max)
			}
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			if err == io.EOF {
				if len(line) == 0 {
					return nil
				}
				break
			}
			if err != nil {
				return err
			}
			break
		}
		line = bytes.TrimRight(line, "\r\n")
		if !fn(n, line) {
			return ctx.Err()
		}
	}
}

// mapErrorType names an error for the output line.
func mapErrorType(err error) string {
	var te *procpool.TaskError
	switch {
	case errors.Is(err, errBadInput):
		return "bad_input"
	case errors.Is(err, procpool.ErrWorkerCrashed):
		return "worker_crashed"
	case errors.Is(err, procpool.ErrTaskTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.As(err, &te):
		return "task_error"
	case errors.Is(err, procpool.ErrProtocol):
		return "protocol_error"
	case errors.Is(err, procpool.ErrPayloadTooLarge):
		return "payload_too_large"
	case errors.Is(err, procpool.ErrWorkerStart):
		return "start_error"
	case errors.Is(err, context.Canceled), errors.Is(err, procpool.ErrClosed):
		return "cancelled"
	}
	return "error"
}

type mapError struct {
	Type      string `json:"type"`
	Message   string `json:"message"`
	Exception string `json:"exception,omitempty"` // task_error: the worker's error type, e.g. ValueError
}

func encodeMapLine(res []byte, err error) []byte {
	var b []byte
	if err != nil {
		me := mapError{Type: mapErrorType(err), Message: err.Error()}
		var te *procpool.TaskError
		if errors.As(err, &te) {
			me.Exception, me.Message = te.Type, te.Type+": "+te.Message
		}
		b, _ = json.Marshal(struct {
			Error mapError `json:"error"`
		}{me})
	} else {
		// A result that is not JSON (a raw task) is carried as a string.
		if !json.Valid(res) {
			res, _ = json.Marshal(string(res))
		}
		b = append(append([]byte(`{"result":`), compactJSON(res)...), '}')
	}
	return append(b, '\n')
}

// compactJSON keeps each output on one line even if the worker indented it.
func compactJSON(b []byte) []byte {
	if !bytes.ContainsAny(b, "\n\r") {
		return b
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// showProgress redraws a status line on stderr until stop is called.
func showProgress(w io.Writer, done, failed *atomic.Int64) (stop func()) {
	quit := make(chan struct{})
	finished := make(chan struct{})
	start := time.Now()
	draw := func() {
		d := done.Load()
		rate := float64(d) / max(time.Since(start).Seconds(), 1e-9)
		fmt.Fprintf(w, "\r\033[Kconq map: %d done, %d failed, %.0f/s", d, failed.Load(), rate)
	}
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				draw()
			case <-quit:
				draw()
				fmt.Fprintln(w)
				return
			}
		}
	}()
	return func() { close(quit); <-finished }
}

// splitCommandLine splits a command line like a POSIX shell would, with
// single and double quotes and backslash escapes but no expansion.
func splitCommandLine(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		case c == '\'':
			inArg = true
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case c == '"':
			inArg = true
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`\n", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
		case c == '\\':
			inArg = true
			if i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			}
		default:
			inArg = true
			cur.WriteByte(c)
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, errors.New("empty command")
	}
	return args, nil
}
