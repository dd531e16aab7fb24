package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/procexec"
)

func init() { addCommand(newWorkerCmd) }

type workerOptions struct {
	broker          string
	queues          string
	concurrency     int
	processes       int
	pipeline        int
	prefetch        int
	exec            string
	strict          bool
	shutdownTimeout time.Duration
	timeout         time.Duration
	lease           time.Duration
	logJSON         bool
	logLevel        string
	metricsListen   string
}

func newWorkerCmd() *cobra.Command {
	var o workerOptions
	cmd := &cobra.Command{
		Use:   "worker --broker URL --exec CMD",
		Short: "Serve queue tasks with a pool of worker processes (Go or Python SDK)",
		Long: `Worker takes tasks from the broker's queues and runs them, --concurrency
at once, in a pool of --processes worker processes started from --exec
(default: as many processes as --concurrency, one task each). With fewer
processes each is asked to take several tasks at once (CONQ_SLOTS): a Go SDK
worker runs them on goroutines; a worker that takes one at a time (protocol
1) leaves the others waiting for a free process. A Python module of plain
functions runs one task at a time per process, and while tasks are short
(under 1 ms) up to --pipeline tasks wait in its pipe behind the running one,
so it never sleeps through a round trip (the worker then hands the processes
that many tasks at once). Every task kind is sent
to the worker program as a task name, with the task's payload as its
argument: a Python module that registers @conq.task handlers (sdk/python)
serves the kinds it registers, unchanged.

An exception in a task fails the attempt with its type, message and
traceback; the task is retried with backoff up to its retries, then dead.
A worker process that crashes fails only its task (retried) and is
replaced. A kind the program does not know fails with "no handler
registered for task kind"; raise conq.TaskError("SkipRetry", msg) to give
up on a task at once.

SIGTERM or SIGINT shut it down gracefully: it stops fetching, gives running
tasks --shutdown-timeout to finish, then cancels them and puts them back on
their queue. Logs go to stderr.`,
		Example: `  conq worker --broker redis://localhost:6379/0 --exec "python3 tasks.py"
  conq worker --broker redis://localhost:6379/0 --queues critical:6,default:3,low:1 \
      --concurrency 8 --exec "python3 -m myapp.tasks" --timeout 5m`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorker(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addBrokerFlag(cmd, &o.broker)
	f.StringVar(&o.queues, "queues", queue.DefaultQueue, "queues to serve, with optional weights: name[:weight][,name[:weight]...]")
	f.IntVarP(&o.concurrency, "concurrency", "c", runtime.NumCPU(), "tasks run at once, over all worker processes")
	f.IntVarP(&o.processes, "processes", "p", 0, "worker processes (0: as many as --concurrency, one task each)")
	f.IntVar(&o.pipeline, "pipeline", 0, "short tasks held by a process that runs one at a time (Python plain functions), the running one and those queued behind it (0: 8; 1: none)")
	f.IntVar(&o.prefetch, "prefetch", 0, "tasks fetched ahead of free processes (0: adaptive, from --concurrency up to max(8 × --concurrency, 64) while tasks are short next to a fetch; N: fixed; -1: none)")
	f.StringVar(&o.exec, "exec", "", "worker program command line (split like a shell, no expansion)")
	f.BoolVar(&o.strict, "strict", false, "strict priority: always serve the queue of highest weight first")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "on SIGTERM/SIGINT, how long running tasks may take to finish before they are cancelled and requeued")
	f.DurationVar(&o.timeout, "timeout", 0, "time limit of an attempt whose task sets none (0: none)")
	f.DurationVar(&o.lease, "lease", 30*time.Second, "task lease: how long the tasks of a worker that dies wait before another takes them")
	f.BoolVar(&o.logJSON, "log-json", false, "log JSON lines instead of text")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.metricsListen, "metrics-listen", "", "serve Prometheus metrics at http://ADDR/metrics (no auth: keep it on loopback or a private network)")
	_ = cmd.MarkFlagRequired("exec")
	return cmd
}

func runWorker(ctx context.Context, o workerOptions, stderr io.Writer) error {
	queues, err := parseQueueWeights(o.queues)
	if err != nil {
		return usageError("--queues: %v", err)
	}
	if o.concurrency < 1 {
		return usageError("--concurrency must be at least 1, got %d", o.concurrency)
	}
	if o.processes < 0 || o.processes > o.concurrency {
		return usageError("--processes must be between 1 and --concurrency (%d), or 0, got %d", o.concurrency, o.processes)
	}
	if o.pipeline < 0 || o.pipeline > 1024 {
		return usageError("--pipeline must be between 0 and 1024, got %d", o.pipeline)
	}
	if o.shutdownTimeout < 0 || o.timeout < 0 {
		return usageError("--shutdown-timeout and --timeout must not be negative")
	}
	if o.lease < 3*time.Millisecond {
		return usageError("--lease %v is too short", o.lease)
	}
	argv, err := splitCommandLine(o.exec)
	if err != nil {
		return usageError("--exec: %v", err)
	}
	logger, err := newLogger(stderr, o.logLevel, o.logJSON)
	if err != nil {
		return err
	}
	prefetch := o.prefetch
	if prefetch < 0 {
		prefetch = -1
	}

	b, err := openSharedBroker(ctx, "worker", o.broker, logger)
	if err != nil {
		return err
	}
	defer b.Close()

	cfg := procexec.ServeConfig{
		Command:   argv,
		Processes: o.processes,
		Pipeline:  o.pipeline,
		Worker: queue.WorkerConfig{
			Queues:          queues,
			StrictPriority:  o.strict,
			Concurrency:     o.concurrency,
			Prefetch:        prefetch,
			LeaseDuration:   o.lease,
			ShutdownTimeout: o.shutdownTimeout,
			DefaultTimeout:  o.timeout,
		},
		Logger: logger,
	}
	if o.metricsListen != "" {
		if cfg.Metrics, err = net.Listen("tcp", o.metricsListen); err != nil {
			return usageError("--metrics-listen: %v", err)
		}
	}
	logger.Info("conq worker: serving", "broker", redactedURL(o.broker), "exec", o.exec, "concurrency", o.concurrency, "processes", max(o.processes, 0))
	switch err := procexec.Serve(ctx, b, cfg); {
	case errors.Is(err, queue.ErrInvalidOption):
		return usageError("%v", err)
	case err != nil:
		return failure(fmt.Errorf("--exec %q: %w", o.exec, err))
	}
	return nil
}

// parseQueueWeights parses "a,b:3,c:1" into weights (default 1).
func parseQueueWeights(s string) (map[string]int, error) {
	out := make(map[string]int)
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, weight := part, 1
		if i := strings.LastIndexByte(part, ':'); i >= 0 {
			if n, err := strconv.Atoi(part[i+1:]); err == nil {
				if n < 1 {
					return nil, fmt.Errorf("queue %q: weight %d must be at least 1", part[:i], n)
				}
				name, weight = part[:i], n
			}
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("queue %q given twice", name)
		}
		out[name] = weight
	}
	if len(out) == 0 {
		return nil, errors.New("no queue given")
	}
	return out, nil
}

// newLogger returns a slog logger writing to w.
func newLogger(w io.Writer, level string, jsonOut bool) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, usageError("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: l}
	if jsonOut {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}
