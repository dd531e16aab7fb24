package metrics

import (
	"context"
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conqhq/conq/queue"
)

// WorkerConfig configures WorkerMetrics.
type WorkerConfig struct {
	// Registerer receives the metrics. Default prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
	// Namespace prefixes metric names. Default "conq".
	Namespace string
	// DurationBuckets are the processing-duration histogram's buckets in
	// seconds. Default 1ms to ~10 min, exponential.
	DurationBuckets []float64
	// LatencyBuckets are the enqueue-to-start histogram's buckets in
	// seconds. Default 1ms to ~1 h, exponential.
	LatencyBuckets []float64
}

// WorkerMetrics instruments task handlers. Its Middleware reports, per
// queue and kind:
//
//	conq_tasks_processed_total         attempts finished, whatever the outcome
//	conq_tasks_failed_total            attempts that failed (error, panic, timeout)
//	conq_tasks_retried_total           failed attempts after which the task will be retried
//	conq_tasks_active                  attempts running now (gauge)
//	conq_task_duration_seconds         handler run time (histogram)
//	conq_task_queue_latency_seconds    enqueue-to-start time of first attempts (histogram)
//
// Successes are processed minus failed; failed minus retried are the
// attempts that left their task dead.
type WorkerMetrics struct {
	processed, failed, retried *prometheus.CounterVec
	active                     *prometheus.GaugeVec
	duration, latency          *prometheus.HistogramVec
}

// NewWorkerMetrics registers the worker metrics. Two WorkerMetrics on one
// registry share their series.
func NewWorkerMetrics(cfg WorkerConfig) (*WorkerMetrics, error) {
	ns := cfg.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	if cfg.DurationBuckets == nil {
		cfg.DurationBuckets = prometheus.ExponentialBuckets(0.001, 4, 11) // 1ms … ~17min
	}
	if cfg.LatencyBuckets == nil {
		cfg.LatencyBuckets = prometheus.ExponentialBuckets(0.001, 4, 12) // 1ms … ~70min
	}
	labels := []string{"queue", "kind"}
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	}
	m := &WorkerMetrics{
		processed: counter("tasks_processed_total", "Task attempts finished by this worker, whatever their outcome."),
		failed:    counter("tasks_failed_total", "Task attempts that failed (error, panic or timeout)."),
		retried:   counter("tasks_retried_total", "Failed task attempts after which the task is retried."),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "tasks_active",
			Help: "Task attempts running now."}, labels),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "task_duration_seconds",
			Help: "Time a handler took to process one attempt.", Buckets: cfg.DurationBuckets}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "task_queue_latency_seconds",
			Help:    "Time from enqueue (or the scheduled time of a delayed task) to the start of its first attempt.",
			Buckets: cfg.LatencyBuckets}, labels),
	}
	var err error
	if m.processed, err = register(cfg.Registerer, m.processed); err != nil {
		return nil, err
	}
	if m.failed, err = register(cfg.Registerer, m.failed); err != nil {
		return nil, err
	}
	if m.retried, err = register(cfg.Registerer, m.retried); err != nil {
		return nil, err
	}
	if m.active, err = register(cfg.Registerer, m.active); err != nil {
		return nil, err
	}
	if m.duration, err = register(cfg.Registerer, m.duration); err != nil {
		return nil, err
	}
	if m.latency, err = register(cfg.Registerer, m.latency); err != nil {
		return nil, err
	}
	return m, nil
}

// Middleware returns the instrumenting middleware; add it with
// worker.Use(m.Middleware()). Add it first so that it sees the outcome of
// the other middleware too.
func (m *WorkerMetrics) Middleware() queue.Middleware {
	return func(next queue.Handler) queue.Handler {
		return queue.HandlerFunc(func(ctx context.Context, t *queue.TaskInfo) (result []byte, err error) {
			lv := []string{t.Queue, t.Kind}
			start := queue.Now(ctx) // the broker's clock
			if t.Attempts == 0 {
				from := t.EnqueuedAt
				if t.ProcessAt.After(from) {
					from = t.ProcessAt
				}
				if !from.IsZero() {
					m.latency.WithLabelValues(lv...).Observe(max(start.Sub(from), 0).Seconds())
				}
			}
			active := m.active.WithLabelValues(lv...)
			active.Inc()
			panicked := true
			defer func() {
				active.Dec()
				m.duration.WithLabelValues(lv...).Observe(queue.Now(ctx).Sub(start).Seconds())
				m.processed.WithLabelValues(lv...).Inc()
				if panicked {
					// The worker turns the panic into a failed attempt.
					err = fmt.Errorf("panic")
				}
				if err != nil {
					m.failed.WithLabelValues(lv...).Inc()
					if m.willRetry(ctx, t, err) {
						m.retried.WithLabelValues(lv...).Inc()
					}
				}
			}()
			result, err = next.ProcessTask(ctx, t)
			panicked = false
			return result, err
		})
	}
}

// willRetry mirrors the worker's decision: no retry after SkipRetry, past
// MaxRetries, or once the task's deadline has passed. Two cases are not
// visible from here: a retry whose delay would cross the deadline (counted
// as retried) and an attempt interrupted by a worker shutdown, which the
// worker requeues without counting (counted as failed and retried).
func (m *WorkerMetrics) willRetry(ctx context.Context, t *queue.TaskInfo, err error) bool {
	if errors.Is(err, queue.SkipRetry) || t.Attempts+1 > t.MaxRetries {
		return false
	}
	return t.Deadline.IsZero() || queue.Now(ctx).Before(t.Deadline)
}
