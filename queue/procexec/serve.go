package procexec

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/conqhq/conq/metrics"
	"github.com/conqhq/conq/procpool"
	"github.com/conqhq/conq/queue"
)

// ServeConfig configures Serve.
type ServeConfig struct {
	// Command is the worker program (Go or Python SDK). Required.
	Command []string
	// Env is added to the environment of the worker processes (for
	// instance CONQ_URL, so a task can enqueue follow-up tasks).
	Env []string
	// Processes is the number of worker processes; 0 means
	// Worker.Concurrency, one task at a time each. With fewer, each process
	// is asked to take ceil(Concurrency/Processes) tasks at once
	// (procpool.Config.Slots); a protocol 1 worker takes one anyway.
	Processes int
	// Pipeline is procpool.Config.Pipeline: how many calls a process that
	// runs one call at a time in order (the Python SDK's plain functions)
	// holds while its calls are short, the running one and those queued
	// behind it. With such processes the queue worker takes that many
	// tasks per process at once while tasks are short (its
	// ShortConcurrency is the pool's Slots), so each finds its next task
	// in its pipe. 0 means
	// procpool.DefaultPipeline; 1 turns it off.
	Pipeline int
	// Worker configures the queue worker; its Logger is Logger.
	Worker queue.WorkerConfig
	// Metrics, if set, serves Prometheus metrics of the worker (task
	// counts, durations, latencies) at http://ADDR/metrics on it, without
	// authentication. Serve closes it.
	Metrics net.Listener
	// PoolShutdownTimeout bounds the stop of the worker processes after
	// the queue worker has stopped. Default 10s.
	PoolShutdownTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Serve runs a queue worker of b whose every task kind is sent to a pool of
// worker processes (Handler), until ctx ends; then it shuts the worker
// down gracefully (queue.Worker.Run) and stops the processes. It is what
// "conq worker" runs, for Go programs that embed it:
//
//	b, _ := redis.Open(ctx, url, redis.Config{})
//	err := procexec.Serve(ctx, b, procexec.ServeConfig{
//		Command: []string{"python3", "tasks.py"},
//		Worker:  queue.WorkerConfig{Concurrency: 8},
//	})
//
// A bad configuration is an error wrapping queue.ErrInvalidOption; a
// worker program that does not start is an error naming Command.
func Serve(ctx context.Context, b queue.Broker, cfg ServeConfig) error {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	if cfg.Metrics != nil {
		defer cfg.Metrics.Close()
	}
	if len(cfg.Command) == 0 {
		return fmt.Errorf("procexec: ServeConfig.Command is empty: %w", queue.ErrInvalidOption)
	}
	wc := cfg.Worker
	wc.Logger = log
	w, err := queue.NewWorker(b, wc)
	if err != nil {
		return err
	}
	concurrency := w.Info().Concurrency
	procs := cfg.Processes
	if procs <= 0 || procs > concurrency {
		procs = concurrency
	}
	slots := (concurrency + procs - 1) / procs
	if slots == 1 {
		slots = 0 // ask nothing: the SDKs' default of one
	}
	pool, err := procpool.New(ctx, procpool.Config{
		Command:  cfg.Command,
		Env:      cfg.Env,
		Workers:  procs,
		Slots:    slots,
		Pipeline: cfg.Pipeline,
		Logger:   log.With("component", "procpool"),
	})
	if err != nil {
		return fmt.Errorf("procexec: worker program %q: %w", cfg.Command, err)
	}
	stopPool := func() {
		d := cfg.PoolShutdownTimeout
		if d <= 0 {
			d = 10 * time.Second
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d)
		defer cancel()
		_ = pool.Shutdown(sctx)
	}
	defer stopPool()
	switch got := pool.Slots(); {
	case got > concurrency && pool.Ordered():
		// The processes queue short calls behind the running one: hand
		// them as many tasks at once as they hold.
		wc.Concurrency, wc.ShortConcurrency = concurrency, got
		if w, err = queue.NewWorker(b, wc); err != nil {
			return err
		}
		log.Info("procexec: worker processes queue short tasks behind the running one; while tasks are short the worker hands them that many at once",
			"concurrency", concurrency, "processes", procs, "short_concurrency", got)
	case got < concurrency:
		log.Warn("procexec: the worker processes take fewer tasks at once than the worker's concurrency; the others wait for a free process",
			"concurrency", concurrency, "processes", procs, "slots", got)
	}
	if cfg.Metrics != nil {
		reg := metrics.NewRegistry()
		wm, err := metrics.NewWorkerMetrics(metrics.WorkerConfig{Registerer: reg})
		if err != nil {
			return err
		}
		w.Use(wm.Middleware())
		mctx, stop := context.WithCancel(ctx)
		defer stop()
		go func() { _ = metrics.ServeListener(mctx, cfg.Metrics, reg, log) }()
		log.Info("queue: worker metrics", "url", "http://"+cfg.Metrics.Addr().String()+"/metrics")
	}
	// Every kind goes to the pool, through the worker's middleware.
	w.HandleDefault(Handler(pool))
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("procexec: worker shutdown: %w", err)
	}
	return nil
}
