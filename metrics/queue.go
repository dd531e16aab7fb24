package metrics

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/conqhq/conq/queue"
)

// QueueLister is what QueueCollector reads: *queue.Inspector and every
// queue.Broker have it.
type QueueLister interface {
	Queues(ctx context.Context) ([]queue.QueueInfo, error)
}

// WorkerLister is optional in a QueueCollector's source: *queue.Inspector
// has it, over brokers that keep a worker registry.
type WorkerLister interface {
	Workers(ctx context.Context) ([]queue.WorkerInfo, error)
}

// QueueCollectorConfig configures a QueueCollector.
type QueueCollectorConfig struct {
	// Namespace prefixes metric names. Default "conq".
	Namespace string
	// Timeout bounds the broker call of one scrape. Default 5s.
	Timeout time.Duration
	// Logger receives scrape errors. Default slog.Default().
	Logger *slog.Logger
}

// QueueCollector is a prometheus.Collector that lists the queues on every
// scrape and reports:
//
//	conq_queue_tasks{queue,state}  tasks in each state (gauge)
//	conq_queue_paused{queue}       1 if the queue is paused
//	conq_broker_up                 1 if the last listing succeeded
//	conq_broker_scrape_duration_seconds
//
// and, when the source is also a WorkerLister with a worker registry:
//
//	conq_workers                   live workers (heartbeat not expired)
//	conq_worker_slots              their concurrency, summed
//	conq_worker_tasks_running      tasks they are running
type QueueCollector struct {
	src     QueueLister
	timeout time.Duration
	log     *slog.Logger

	tasks, paused, up, dur  *prometheus.Desc
	workers, slots, running *prometheus.Desc
}

// NewQueueCollector returns a collector over src; register it with
// prometheus.Registerer.Register.
func NewQueueCollector(src QueueLister, cfg QueueCollectorConfig) *QueueCollector {
	ns := cfg.Namespace
	if ns == "" {
		ns = DefaultNamespace
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &QueueCollector{
		src: src, timeout: cfg.Timeout, log: cfg.Logger,
		tasks:   prometheus.NewDesc(ns+"_queue_tasks", "Tasks in the queue by state, read from the broker at scrape time.", []string{"queue", "state"}, nil),
		paused:  prometheus.NewDesc(ns+"_queue_paused", "1 if the queue is paused (workers take none of its tasks).", []string{"queue"}, nil),
		up:      prometheus.NewDesc(ns+"_broker_up", "1 if the broker answered the last scrape's queue listing.", nil, nil),
		dur:     prometheus.NewDesc(ns+"_broker_scrape_duration_seconds", "Time the broker took to list the queues for this scrape.", nil, nil),
		workers: prometheus.NewDesc(ns+"_workers", "Live workers: those whose last heartbeat has not expired.", nil, nil),
		slots:   prometheus.NewDesc(ns+"_worker_slots", "Concurrency of the live workers, summed: tasks they can run at once.", nil, nil),
		running: prometheus.NewDesc(ns+"_worker_tasks_running", "Tasks the live workers reported running in their last heartbeat.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *QueueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.tasks
	ch <- c.paused
	ch <- c.up
	ch <- c.dur
	if _, ok := c.src.(WorkerLister); ok {
		ch <- c.workers
		ch <- c.slots
		ch <- c.running
	}
}

// Collect implements prometheus.Collector.
func (c *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	start := time.Now()
	qs, err := c.src.Queues(ctx)
	ch <- prometheus.MustNewConstMetric(c.dur, prometheus.GaugeValue, time.Since(start).Seconds())
	if err != nil {
		c.log.Warn("metrics: listing queues for a scrape failed", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, q := range qs {
		for _, st := range queue.States {
			ch <- prometheus.MustNewConstMetric(c.tasks, prometheus.GaugeValue, float64(q.Counts[st]), q.Name, string(st))
		}
		p := 0.0
		if q.Paused {
			p = 1
		}
		ch <- prometheus.MustNewConstMetric(c.paused, prometheus.GaugeValue, p, q.Name)
	}
	c.collectWorkers(ctx, ch)
}

// collectWorkers reports the worker registry, if the source has one; a
// broker without a registry (queue.ErrUnsupported) reports nothing.
func (c *QueueCollector) collectWorkers(ctx context.Context, ch chan<- prometheus.Metric) {
	wl, ok := c.src.(WorkerLister)
	if !ok {
		return
	}
	ws, err := wl.Workers(ctx)
	if err != nil {
		if !errors.Is(err, queue.ErrUnsupported) {
			c.log.Warn("metrics: listing workers for a scrape failed", "err", err)
		}
		return
	}
	slots, running := 0, 0
	for _, w := range ws {
		slots += w.Concurrency
		running += len(w.Running)
	}
	ch <- prometheus.MustNewConstMetric(c.workers, prometheus.GaugeValue, float64(len(ws)))
	ch <- prometheus.MustNewConstMetric(c.slots, prometheus.GaugeValue, float64(slots))
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(running))
}

// EnqueueCounter counts tasks enqueued by a producer:
//
//	conq_tasks_enqueued_total{queue,kind}
//
// Call Observe with what queue.Client.Enqueue/EnqueueMany returned.
type EnqueueCounter struct{ c *prometheus.CounterVec }

// NewEnqueueCounter registers the counter on r (nil: the default
// registerer); namespace "" means "conq".
func NewEnqueueCounter(r prometheus.Registerer, namespace string) (*EnqueueCounter, error) {
	if namespace == "" {
		namespace = DefaultNamespace
	}
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "tasks_enqueued_total",
		Help: "Tasks enqueued by this process, by queue and kind.",
	}, []string{"queue", "kind"})
	c, err := register(r, c)
	if err != nil {
		return nil, err
	}
	return &EnqueueCounter{c: c}, nil
}

// Observe counts the tasks that were enqueued; nil entries (items of a
// batch that failed) are skipped.
func (e *EnqueueCounter) Observe(tasks ...*queue.TaskInfo) {
	for _, t := range tasks {
		if t != nil {
			e.c.WithLabelValues(t.Queue, t.Kind).Inc()
		}
	}
}
