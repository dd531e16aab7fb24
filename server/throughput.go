package server

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/conqhq/conq/internal/startstop"
	"github.com/conqhq/conq/queue"
)

// exactNote says what the chart's numbers are with a broker that counts.
const exactNote = "Counted by the broker per second: processed = tasks completed, failed = attempts that failed " +
	"(retried or dead, expired leases and cancellations included)."

// throughputNote says what the chart's numbers are when the broker keeps
// no counters: they are estimated from its state counts.
const throughputNote = "Estimated from the broker's counts, sampled by this server: processed = tasks newly in the " +
	"completed state (only tasks enqueued with retention stay there; others are deleted on completion and not counted), " +
	"failed = tasks newly dead. For exact rates scrape the workers' conq_tasks_processed_total and conq_tasks_failed_total."

// throughput samples the queues every interval and keeps, for the last
// size intervals, how many tasks became completed and dead across all
// queues. A slot is unknown (null) when the broker did not answer.
type throughput struct {
	interval time.Duration
	startstop.Base

	mu        sync.Mutex
	processed []float64 // ring buffers; -1 = unknown
	failed    []float64
	next      int       // slot written next
	end       time.Time // time of the newest slot
	prev      map[string]map[queue.State]int64
}

func newThroughput(interval time.Duration, size int) *throughput {
	t := &throughput{interval: interval, processed: make([]float64, max(size, 2)), failed: make([]float64, max(size, 2))}
	for i := range t.processed {
		t.processed[i], t.failed[i] = -1, -1
	}
	return t
}

type queueLister interface {
	Queues(ctx context.Context) ([]queue.QueueInfo, error)
}

// start runs the sampler until stop (the lifecycle every background
// component of conq shares).
func (t *throughput) start(ctx context.Context, src queueLister, log *slog.Logger) error {
	return t.Base.Start(ctx, func(ctx context.Context) { t.run(ctx, src, log) })
}

func (t *throughput) run(ctx context.Context, src queueLister, log *slog.Logger) {
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			qctx, cancel := context.WithTimeout(ctx, t.interval*4)
			qs, err := src.Queues(qctx)
			cancel()
			if err != nil && ctx.Err() != nil {
				return
			}
			if err != nil && !failing {
				log.Warn("server: sampling queue counts failed; the throughput chart has a gap", "err", err)
			}
			failing = err != nil
			t.record(now, qs, err == nil)
		}
	}
}

// record adds one sample; ok false records a gap.
func (t *throughput) record(now time.Time, qs []queue.QueueInfo, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, f := -1.0, -1.0
	if ok {
		cur := make(map[string]map[queue.State]int64, len(qs))
		for _, q := range qs {
			cur[q.Name] = q.Counts
		}
		if t.prev != nil {
			p, f = 0, 0
			for name, c := range cur {
				old := t.prev[name] // nil for a new queue: all its counts are new
				p += float64(max(c[queue.StateCompleted]-old[queue.StateCompleted], 0))
				f += float64(max(c[queue.StateDead]-old[queue.StateDead], 0))
			}
		}
		t.prev = cur
	} else {
		t.prev = nil // the next delta would span the gap
	}
	t.processed[t.next], t.failed[t.next] = p, f
	t.next = (t.next + 1) % len(t.processed)
	t.end = now
}

// throughputView is the body of GET /api/v1/throughput; series are oldest
// first, per second, null where unknown.
type throughputView struct {
	IntervalSeconds float64    `json:"interval_seconds"`
	End             time.Time  `json:"end"`
	Processed       []*float64 `json:"processed"`
	Failed          []*float64 `json:"failed"`
	Note            string     `json:"note"`
	// Source is "broker" for the broker's exact counters, "estimate" for
	// the sampler's.
	Source string `json:"source"`
	Queue  string `json:"queue,omitempty"`
}

// maxThroughputMinutes is the longest range of GET /api/v1/throughput.
const maxThroughputMinutes = 60

// exactThroughput reads the broker's counters: per second, the last hour
// (or ?minutes=N) up to the last whole second, of one queue or all.
func (s *Server) exactThroughput(r *http.Request) (throughputView, error) {
	q := r.URL.Query()
	minutes := maxThroughputMinutes
	if v := q.Get("minutes"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxThroughputMinutes {
			return throughputView{}, badRequest("minutes=%q: want a number in 1..%d", v, maxThroughputMinutes)
		}
		minutes = n
	}
	end := s.clock.Now().Truncate(time.Second)
	ps, err := s.insp.Throughput(r.Context(), q.Get("queue"), end.Add(-time.Duration(minutes)*time.Minute), end)
	if err != nil {
		return throughputView{}, err
	}
	v := throughputView{IntervalSeconds: 1, End: end, Note: exactNote, Source: "broker", Queue: q.Get("queue"),
		Processed: make([]*float64, len(ps)), Failed: make([]*float64, len(ps))}
	for i, p := range ps {
		pr, f := float64(p.Processed), float64(p.Failed)
		v.Processed[i], v.Failed[i] = &pr, &f
	}
	return v, nil
}

func (t *throughput) snapshot() throughputView {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.processed)
	v := throughputView{IntervalSeconds: t.interval.Seconds(), End: t.end, Note: throughputNote, Source: "estimate",
		Processed: make([]*float64, n), Failed: make([]*float64, n)}
	per := t.interval.Seconds()
	for i := range n {
		j := (t.next + i) % n
		if t.processed[j] >= 0 {
			p, f := t.processed[j]/per, t.failed[j]/per
			v.Processed[i], v.Failed[i] = &p, &f
		}
	}
	return v
}
