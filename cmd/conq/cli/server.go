package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/procexec"
	"github.com/conqhq/conq/server"
)

func init() { addCommand(newServerCommand) }

// authTokenEnv gives --auth-token its default, so the token need not be
// on the command line (where other users can see it in ps).
const authTokenEnv = "CONQ_AUTH_TOKEN"

// basicAuthEnv gives --basic-auth its default, for the same reason.
const basicAuthEnv = "CONQ_BASIC_AUTH"

type serverOptions struct {
	broker, listen, authToken, basicAuth string
	allowInsecure                        bool
	logLevel                             string
	logJSON                              bool
	// --exec: serve the queues with worker processes in this process too.
	exec, queues, urlFile  string
	concurrency, processes int
	pipeline               int
	timeout                time.Duration
	maxFlowSteps           int
	stopOnStdinEOF         bool
}

func newServerCommand() *cobra.Command {
	var o serverOptions
	cmd := &cobra.Command{
		Use:   "server (--broker URL | --exec CMD) [--listen 127.0.0.1:8080] [--auth-token T | --basic-auth user:pass]",
		Short: "Serve the queue dashboard, the HTTP API and Prometheus metrics",
		Long: `Server serves, on one address:

  /              the dashboard: queues with counts per state, task lists,
                 payloads, error history; retry, delete, pause, resume
  /api/v1/...    the JSON API: enqueue, task, result, queues, retry, delete,
                 pause, resume (docs/http-api.md; sdk/python/conq_client.py)
  /metrics       Prometheus metrics: queue depth per queue and state,
                 tasks enqueued through the API
  /healthz       200 if the broker answers, else 503

It listens on 127.0.0.1:8080 by default. Any other address needs
--auth-token (the API takes "Authorization: Bearer TOKEN", the dashboard
asks for it once) or --basic-auth, and conq server refuses to start
without one. The token may come from $` + authTokenEnv + ` and the basic
auth credentials from $` + basicAuthEnv + `, which keeps them out of ps.

With --exec CMD it also runs a queue worker whose tasks go to worker
processes started from CMD (as "conq worker --exec" does), in the same
process. Without --broker the queue is then the embedded broker: the whole
queue on one machine, no Redis, gone when the server stops. The worker
processes get CONQ_URL (and CONQ_TOKEN with --auth-token) so a task can
enqueue follow-up tasks. The URL is logged and, with --url-file, written to
that file once the server listens (--listen 127.0.0.1:0 picks a free port).`,
		Example: `  conq server --exec "python3 tasks.py"
  conq server --exec "python3 tasks.py" --concurrency 4 --listen 127.0.0.1:0 --url-file /tmp/conq.url
  conq server --broker redis://localhost:6379/0
  CONQ_AUTH_TOKEN=$(openssl rand -hex 32) conq server --broker redis://redis:6379/0 --listen 0.0.0.0:8080`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServer(cmd.Context(), o, cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addBrokerFlag(cmd, &o.broker)
	f.StringVar(&o.listen, "listen", server.DefaultAddr, "address to listen on; non-loopback addresses need --auth-token or --basic-auth")
	// The default is read at run time, so --help never prints the token.
	f.StringVar(&o.authToken, "auth-token", "", "bearer token required by the API and the dashboard, at least 16 characters (default $"+authTokenEnv+")")
	f.StringVar(&o.basicAuth, "basic-auth", "", "user:password required with HTTP basic auth (default $"+basicAuthEnv+")")
	f.BoolVar(&o.allowInsecure, "insecure-no-auth", false, "allow a non-loopback --listen without authentication (only behind an authenticating proxy)")
	f.BoolVar(&o.logJSON, "log-json", false, "log JSON lines instead of text")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.StringVar(&o.exec, "exec", "", "also serve the queues with worker processes started from this command line (split like a shell); without --broker, on the embedded broker")
	f.IntVarP(&o.concurrency, "concurrency", "c", runtime.NumCPU(), "with --exec: tasks run at once, over all worker processes")
	f.IntVarP(&o.processes, "processes", "p", 0, "with --exec: worker processes (0: as many as --concurrency, one task each)")
	f.IntVar(&o.pipeline, "pipeline", 0, "with --exec: short tasks held by a process that runs one at a time (Python plain functions), the running one and those queued behind it (0: 8; 1: none)")
	f.StringVar(&o.queues, "queues", queue.DefaultQueue, "with --exec: queues to serve, with optional weights: name[:weight][,name[:weight]...]")
	f.DurationVar(&o.timeout, "timeout", 0, "with --exec: time limit of an attempt whose task sets none (0: none)")
	f.IntVar(&o.maxFlowSteps, "max-flow-steps", queue.DefaultMaxFlowSteps, "refuse a workflow (POST /api/v1/workflows) of more steps than this (413 flow_too_large)")
	f.StringVar(&o.urlFile, "url-file", "", "write the server's URL (http://host:port) to this file once it listens")
	f.BoolVar(&o.stopOnStdinEOF, "stop-on-stdin-eof", false, "stop, as on SIGTERM, when standard input ends: a parent that runs the server as its child passes a pipe, and the server stops when the parent is gone, however it died (conq.Executor's local engine does)")
	return cmd
}

func runServer(ctx context.Context, o serverOptions, stderr io.Writer) error {
	if o.authToken == "" {
		o.authToken = os.Getenv(authTokenEnv)
	}
	if o.basicAuth == "" {
		o.basicAuth = os.Getenv(basicAuthEnv)
	}
	if o.maxFlowSteps < 1 || o.maxFlowSteps > queue.DefaultMaxFlowSteps {
		return usageError("--max-flow-steps %d: must be in 1..%d", o.maxFlowSteps, queue.DefaultMaxFlowSteps)
	}
	if o.stopOnStdinEOF {
		// The parent holds the pipe's other end; the kernel closes it when
		// the parent dies, even by SIGKILL, which no signal handler sees.
		var stop context.CancelFunc
		ctx, stop = context.WithCancel(ctx)
		defer stop()
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			stop()
		}()
	}
	cfg := server.Config{Addr: o.listen, AuthToken: strings.TrimSpace(o.authToken), AllowInsecure: o.allowInsecure,
		MaxFlowSteps: o.maxFlowSteps}
	if o.basicAuth != "" {
		user, pass, ok := strings.Cut(o.basicAuth, ":")
		if !ok || user == "" || pass == "" {
			return usageError("--basic-auth: want user:password")
		}
		cfg.BasicAuthUser, cfg.BasicAuthPassword = user, pass
	}
	// Refuse bad auth and an unauthenticated public address before
	// touching the broker.
	if err := server.CheckAuthToken(cfg.AuthToken); err != nil {
		return usageError("--auth-token: %v", err)
	}
	if !o.allowInsecure {
		if err := server.CheckListenAddr(o.listen, cfg.AuthToken != "" || cfg.BasicAuthUser != ""); err != nil {
			return usageError("%v", err)
		}
	}
	var (
		argv   []string
		queues map[string]int
	)
	if o.exec != "" {
		var err error
		if argv, err = splitCommandLine(o.exec); err != nil {
			return usageError("--exec: %v", err)
		}
		if queues, err = parseQueueWeights(o.queues); err != nil {
			return usageError("--queues: %v", err)
		}
		if o.concurrency < 1 {
			return usageError("--concurrency must be at least 1, got %d", o.concurrency)
		}
		if o.processes < 0 || o.processes > o.concurrency {
			return usageError("--processes must be between 1 and --concurrency (%d), or 0, got %d", o.concurrency, o.processes)
		}
		if o.timeout < 0 {
			return usageError("--timeout must not be negative")
		}
		if o.pipeline < 0 || o.pipeline > 1024 {
			return usageError("--pipeline must be between 0 and 1024, got %d", o.pipeline)
		}
	}
	logger, err := newLogger(stderr, o.logLevel, o.logJSON)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	var b broker.Broker
	if o.exec != "" && strings.TrimSpace(o.broker) == "" && strings.TrimSpace(envBroker()) == "" {
		// One process holds the queue, the API and the workers: the
		// embedded broker is shared by all three.
		b, err = openBroker(ctx, "", logger)
	} else {
		b, err = openSharedBroker(ctx, "server", o.broker, logger)
	}
	if err != nil {
		return err
	}
	defer b.Close()
	cfg.Broker = b
	srv, err := server.New(cfg)
	if err != nil {
		return usageError("%v", err)
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return failure(fmt.Errorf("conq server: listen on %s: %w", o.listen, err))
	}
	url := "http://" + ln.Addr().String()
	if o.urlFile != "" {
		// Written whole under a temporary name, then renamed: a reader
		// polling for the file never sees half a URL.
		tmp := o.urlFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(url+"\n"), 0o600); err != nil {
			_ = ln.Close()
			return failure(fmt.Errorf("--url-file: %w", err))
		}
		if err := os.Rename(tmp, o.urlFile); err != nil {
			_ = ln.Close()
			return failure(fmt.Errorf("--url-file: %w", err))
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	workerDone := make(chan error, 1)
	if o.exec != "" {
		env := []string{"CONQ_URL=" + url}
		if cfg.AuthToken != "" {
			env = append(env, "CONQ_TOKEN="+cfg.AuthToken)
		}
		wcfg := procexec.ServeConfig{
			Command:   argv,
			Env:       env,
			Processes: o.processes,
			Pipeline:  o.pipeline,
			Worker: queue.WorkerConfig{
				Queues:         queues,
				Concurrency:    o.concurrency,
				DefaultTimeout: o.timeout,
			},
			Logger: logger,
		}
		logger.Info("conq server: serving tasks", "exec", o.exec, "concurrency", o.concurrency, "processes", max(o.processes, 0),
			"broker", brokerName(o.broker))
		go func() {
			err := procexec.Serve(ctx, b, wcfg)
			if err != nil {
				cancel() // the API without its workers would accept tasks no one runs
			}
			workerDone <- err
		}()
	} else {
		workerDone <- nil
	}
	fmt.Fprintf(stderr, "conq server: %s\n", url)
	serr := srv.Serve(ctx, ln)
	cancel()
	werr := <-workerDone
	switch {
	case errors.Is(werr, queue.ErrInvalidOption):
		return usageError("%v", werr)
	case werr != nil:
		return failure(fmt.Errorf("--exec %q: %w", o.exec, werr))
	}
	if serr != nil && !errors.Is(serr, context.Canceled) {
		return failure(fmt.Errorf("conq server: %w", serr))
	}
	return nil
}

// brokerName describes the broker for the log.
func brokerName(raw string) string {
	if strings.TrimSpace(raw) == "" {
		if env := envBroker(); strings.TrimSpace(env) != "" {
			return redactedURL(env)
		}
		return "embedded"
	}
	return redactedURL(raw)
}
