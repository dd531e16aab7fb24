package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

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
}

func newServerCommand() *cobra.Command {
	var o serverOptions
	cmd := &cobra.Command{
		Use:   "server --broker URL [--listen 127.0.0.1:8080] [--auth-token T | --basic-auth user:pass]",
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
auth credentials from $` + basicAuthEnv + `, which keeps them out of ps.`,
		Example: `  conq server --broker redis://localhost:6379/0
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
	return cmd
}

func runServer(ctx context.Context, o serverOptions, stderr io.Writer) error {
	if o.authToken == "" {
		o.authToken = os.Getenv(authTokenEnv)
	}
	if o.basicAuth == "" {
		o.basicAuth = os.Getenv(basicAuthEnv)
	}
	cfg := server.Config{Addr: o.listen, AuthToken: strings.TrimSpace(o.authToken), AllowInsecure: o.allowInsecure}
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
	logger, err := newLogger(stderr, o.logLevel, o.logJSON)
	if err != nil {
		return err
	}
	cfg.Logger = logger
	b, err := openSharedBroker(ctx, "server", o.broker, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	cfg.Broker = b
	srv, err := server.New(cfg)
	if err != nil {
		return usageError("%v", err)
	}
	if err := srv.ListenAndServe(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return failure(fmt.Errorf("conq server: %w", err))
	}
	return nil
}
