// Package server is conq's HTTP server: a dashboard of the task queue
// (server-rendered, assets embedded), a JSON API under /api/v1 (see
// docs/http-api.md) and Prometheus metrics at /metrics.
//
// It listens on loopback by default. Any other address needs an auth token
// (Bearer, for the API; the dashboard logs in with it) or basic auth, and
// New refuses the configuration without one. State-changing dashboard
// requests carry a CSRF token, every response carries a strict CSP, and
// payloads are rendered as escaped text.
//
// # Policy, written down
//
//   - The server is written on the public queue API only (Client,
//     Inspector); it imports no queue/broker package, so it works with any
//     broker, wrapped or not.
//   - Its time is the broker's clock.
//   - Loopback without credentials, anything else with them: New refuses an
//     unsafe configuration rather than warn.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conqhq/conq/metrics"
	"github.com/conqhq/conq/queue"
)

// Defaults of Config.
const (
	DefaultAddr         = "127.0.0.1:8080"
	DefaultMaxBodyBytes = 8 << 20
	DefaultMaxWait      = 60 * time.Second
	DefaultPageSize     = 50
)

// ErrInsecureListen: a non-loopback listen address without authentication.
var ErrInsecureListen = errors.New("refusing to listen on a non-loopback address without authentication")

// Config configures a Server. Broker is required; the rest has defaults.
type Config struct {
	// Broker holds the queues. The server does not close it; it tells the
	// server's time too (sessions, charts).
	Broker queue.Broker
	// Addr is the listen address of ListenAndServe. Default 127.0.0.1:8080.
	Addr string
	// AuthToken, if set, is required as "Authorization: Bearer TOKEN" by
	// the API; the dashboard asks for it once and keeps a session cookie.
	AuthToken string
	// BasicAuthUser and BasicAuthPassword, if set, protect everything
	// with HTTP basic auth (API and dashboard).
	BasicAuthUser, BasicAuthPassword string
	// AllowInsecure lets a non-loopback address run without authentication
	// (e.g. behind an authenticating proxy). Off by default.
	AllowInsecure bool
	// MaxBodyBytes caps a request body; default 8 MiB. Payloads are also
	// capped one by one by Client (MaxPayloadSize, default 1 MiB).
	MaxBodyBytes int64
	// MaxPayloadSize is queue.ClientConfig.MaxPayloadSize. Default 1 MiB.
	MaxPayloadSize int
	// MaxFlowSteps caps the steps of a workflow created through POST
	// /api/v1/workflows (413 flow_too_large above it). Default and maximum
	// queue.DefaultMaxFlowSteps (100,000).
	MaxFlowSteps int
	// MaxWait caps the wait of GET /api/v1/tasks/{id}/result. Default 60s.
	MaxWait time.Duration
	// SampleInterval is the throughput sampler's period, for brokers that
	// keep no throughput counters (Inspector.KeepsThroughput; both built-in
	// brokers do, and then nothing is sampled); default 1s, the history
	// kept is one hour of samples. Negative turns sampling off.
	SampleInterval time.Duration
	// Registry receives the server's metrics and is served at /metrics.
	// Default: a new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Server serves the dashboard, API and metrics of one broker.
type Server struct {
	cfg     Config
	clock   interface{ Now() time.Time } // the broker's
	client  *queue.Client
	insp    *queue.Inspector
	workers workerList // the kind check's list of live workers
	log     *slog.Logger
	handler http.Handler
	tmpl    *templates
	secret  []byte // signs session cookies; new at every start
	revoked revokedSessions
	tp      *throughput
	stats   bool // the broker counts throughput

	enqueued *metrics.EnqueueCounter
	requests *prometheus.CounterVec
}

// New checks cfg and builds a server; call Handler, Serve or
// ListenAndServe.
func New(cfg Config) (*Server, error) {
	if cfg.Broker == nil {
		return nil, errors.New("server: Config.Broker is nil")
	}
	if cfg.Addr == "" {
		cfg.Addr = DefaultAddr
	}
	if (cfg.BasicAuthUser == "") != (cfg.BasicAuthPassword == "") {
		return nil, errors.New("server: basic auth needs both a user and a password")
	}
	if strings.Contains(cfg.BasicAuthUser, ":") {
		return nil, errors.New("server: basic auth user may not contain ':'")
	}
	if err := CheckAuthToken(cfg.AuthToken); err != nil {
		return nil, err
	}
	if !cfg.AllowInsecure {
		if err := CheckListenAddr(cfg.Addr, cfg.AuthToken != "" || cfg.BasicAuthUser != ""); err != nil {
			return nil, err
		}
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxFlowSteps < 0 || cfg.MaxFlowSteps > queue.DefaultMaxFlowSteps {
		return nil, fmt.Errorf("server: Config.MaxFlowSteps %d: want 0 (the default) to %d", cfg.MaxFlowSteps, queue.DefaultMaxFlowSteps)
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultMaxWait
	}
	if cfg.SampleInterval == 0 {
		cfg.SampleInterval = time.Second
	}
	if cfg.Registry == nil {
		cfg.Registry = metrics.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	client, err := queue.NewClient(cfg.Broker, queue.ClientConfig{MaxPayloadSize: cfg.MaxPayloadSize, Logger: cfg.Logger})
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	tmpl, err := parseTemplates()
	if err != nil {
		return nil, fmt.Errorf("server: templates: %w", err)
	}
	s := &Server{
		cfg: cfg, clock: cfg.Broker.Clock(), client: client, insp: queue.NewInspector(cfg.Broker),
		log: cfg.Logger, tmpl: tmpl, secret: []byte(rand.Text() + rand.Text()),
	}
	s.workers.list = s.insp.Workers
	s.stats = s.insp.KeepsThroughput()
	if cfg.SampleInterval > 0 && !s.stats {
		s.tp = newThroughput(cfg.SampleInterval, int(time.Hour/cfg.SampleInterval))
	}
	if s.enqueued, err = metrics.NewEnqueueCounter(cfg.Registry, ""); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	if err := cfg.Registry.Register(metrics.NewQueueCollector(s.insp, metrics.QueueCollectorConfig{Logger: cfg.Logger})); err != nil {
		return nil, fmt.Errorf("server: register queue collector: %w", err)
	}
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metrics.DefaultNamespace, Name: "http_requests_total",
		Help: "HTTP requests served by conq server, by route pattern and status code.",
	}, []string{"route", "code"})
	if err := cfg.Registry.Register(s.requests); err != nil {
		return nil, fmt.Errorf("server: register request counter: %w", err)
	}
	s.handler = s.routes()
	return s, nil
}

// CheckListenAddr returns ErrInsecureListen (wrapped, naming the address)
// if addr is not a loopback address and authenticated is false. A host
// name other than "localhost" counts as non-loopback, and so does an
// empty host (":8080" listens on every interface).
func CheckListenAddr(addr string, authenticated bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("server: listen address %q: %w", addr, err)
	}
	if authenticated || isLoopbackHost(host) {
		return nil
	}
	return fmt.Errorf("server: %w: %q; pass --auth-token or --basic-auth, or listen on 127.0.0.1", ErrInsecureListen, addr)
}

// MinTokenLength is the shortest auth token accepted.
const MinTokenLength = 16

// CheckAuthToken rejects a token ("" means none) that is too short to be
// a secret.
func CheckAuthToken(token string) error {
	if token != "" && len(token) < MinTokenLength {
		return fmt.Errorf("server: auth token is too short: use at least %d characters (e.g. openssl rand -hex 32)", MinTokenLength)
	}
	return nil
}

func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// Handler returns the server's HTTP handler (dashboard, API, metrics).
// The throughput sampler only runs under Serve/ListenAndServe or Run.
func (s *Server) Handler() http.Handler { return s.handler }

// Run runs the background work (the throughput sampler, for brokers
// without counters) until ctx ends; a second Run while one runs returns at
// once. Serve and ListenAndServe call it; call it yourself when mounting
// Handler in your own http.Server.
func (s *Server) Run(ctx context.Context) {
	if s.tp == nil || s.tp.start(ctx, s.insp, s.log) != nil {
		return
	}
	<-ctx.Done()
	_ = s.tp.Stop(context.WithoutCancel(ctx))
}

// ListenAndServe listens on Config.Addr and serves until ctx ends.
func (s *Server) ListenAndServe(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", s.cfg.Addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully (5s).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if !s.cfg.AllowInsecure {
		if err := CheckListenAddr(ln.Addr().String(), s.cfg.AuthToken != "" || s.cfg.BasicAuthUser != ""); err != nil {
			_ = ln.Close()
			return err
		}
	}
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		// No WriteTimeout: result waits are long; they are capped by MaxWait.
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	go s.Run(runCtx)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	s.log.Info("server: serving dashboard, API and metrics", "addr", "http://"+ln.Addr().String(),
		"auth", s.authMode())
	select {
	case err := <-done:
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; serr != nil && !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("server: shutdown: %w", err)
	}
	return nil
}

func (s *Server) authMode() string {
	switch {
	case s.cfg.AuthToken != "" && s.cfg.BasicAuthUser != "":
		return "token+basic"
	case s.cfg.AuthToken != "":
		return "token"
	case s.cfg.BasicAuthUser != "":
		return "basic"
	}
	return "none (loopback only)"
}
