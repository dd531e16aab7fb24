// Package metrics exposes conq's task queue to Prometheus:
//
//   - QueueCollector reads queue depths (tasks per queue and state, paused
//     flag) from the broker on every scrape;
//   - WorkerMetrics is a queue.Middleware counting attempts processed,
//     failed and retried per queue and kind, with a processing-duration
//     histogram, an enqueue-to-start latency histogram and an active gauge;
//   - EnqueueCounter counts tasks enqueued by a producer;
//   - Handler and Serve publish a registry over HTTP, for
//     `conq worker --metrics-listen ADDR`.
//
// Every constructor takes a prometheus.Registerer so that tests and
// embedding programs can use their own registry; nil means
// prometheus.DefaultRegisterer.
//
// # Policy, written down
//
//   - Only the public queue API is used: the package imports no broker.
//   - Times are the broker's clock (queue.Now in a handler's ctx), so
//     durations and latencies agree with leases and deadlines, also under a
//     test's manual clock.
//   - A scrape never fails because the broker does: conq_broker_up says so.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultNamespace prefixes every metric name: conq_tasks_processed_total…
const DefaultNamespace = "conq"

// NewRegistry returns a registry with the Go runtime and process
// collectors, the usual base for a conq process's /metrics.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Handler serves the metrics of g in the Prometheus text (or negotiated
// OpenMetrics) format. A nil g means prometheus.DefaultGatherer.
func Handler(g prometheus.Gatherer) http.Handler {
	if g == nil {
		g = prometheus.DefaultGatherer
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true})
}

// Serve serves g's metrics on addr at /metrics (and /healthz) until ctx
// ends. A listen error is returned at once; use ServeListener to listen
// first and fail fast.
func Serve(ctx context.Context, addr string, g prometheus.Gatherer, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: listen on %s: %w", addr, err)
	}
	return ServeListener(ctx, ln, g, log)
}

// ServeListener serves g's metrics on ln at /metrics (and /healthz) until
// ctx ends, then shuts down and returns. It closes ln.
func ServeListener(ctx context.Context, ln net.Listener, g prometheus.Gatherer, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	addr := ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(g))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	log.Info("metrics: serving Prometheus metrics", "addr", addr, "path", "/metrics")
	select {
	case err := <-done:
		return fmt.Errorf("metrics: serve on %s: %w", addr, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("metrics: shutdown: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics: serve on %s: %w", addr, err)
	}
	return nil
}

// register registers c on r (DefaultRegisterer if nil), reusing an
// identical collector already registered, so that two WorkerMetrics on
// one registry share their series instead of failing.
func register[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	if r == nil {
		r = prometheus.DefaultRegisterer
	}
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, fmt.Errorf("metrics: register: %w", err)
	}
	return c, nil
}
