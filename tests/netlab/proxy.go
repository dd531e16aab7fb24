package netlab

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Proxy is a Toxiproxy proxy listening on a namespace's root-side address
// in front of an upstream server, stopped when its test ends.
type Proxy struct {
	p *toxiproxy.Proxy

	mu      sync.Mutex
	latency time.Duration
	toxics  []string // names of the toxics in place
}

// server is the in-process Toxiproxy; its HTTP API is never started.
var server = sync.OnceValue(func() *toxiproxy.ApiServer {
	return toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
})

var proxySeq struct {
	sync.Mutex
	n int
}

// Proxy starts a proxy on ns.HostIP (a free port) that forwards to
// upstream ("host:port", reached from the root namespace), with no
// latency until [Proxy.SetLatency].
func (ns *Namespace) Proxy(tb testing.TB, upstream string) *Proxy {
	tb.Helper()
	proxySeq.Lock()
	proxySeq.n++
	name := fmt.Sprintf("%s-%d", ns.Name, proxySeq.n)
	proxySeq.Unlock()
	p := &Proxy{p: toxiproxy.NewProxy(server(), name, net.JoinHostPort(ns.HostIP.String(), "0"), upstream)}
	if err := p.p.Start(); err != nil {
		tb.Fatalf("netlab: toxiproxy on %s: %v", ns.HostIP, err)
	}
	tb.Cleanup(p.p.Stop)
	return p
}

// Addr is where clients in the namespace connect: "10.77.X.1:port".
func (p *Proxy) Addr() string {
	p.p.Lock()
	defer p.p.Unlock()
	return p.p.Listen
}

// Latency is the round-trip latency set last.
func (p *Proxy) Latency() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.latency
}

// SetLatency makes every request/response round trip through the proxy d
// longer: floor(d/2) upstream, the rest downstream, in whole milliseconds
// (Toxiproxy's unit). It applies to open connections too. 0 removes it.
func (p *Proxy) SetLatency(d time.Duration) error {
	if d < 0 || d%time.Millisecond != 0 {
		return fmt.Errorf("netlab: latency %v is not a whole, non-negative number of milliseconds", d)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ctx := context.Background()
	for _, name := range p.toxics {
		if err := p.p.Toxics.RemoveToxic(ctx, name); err != nil {
			return fmt.Errorf("netlab: remove toxic %s: %w", name, err)
		}
	}
	p.toxics = nil
	ms := d.Milliseconds()
	up := ms / 2
	for _, t := range []struct {
		stream string
		ms     int64
	}{{"upstream", up}, {"downstream", ms - up}} {
		if t.ms == 0 {
			continue
		}
		name := "latency_" + t.stream
		body := fmt.Sprintf(`{"name":%q,"type":"latency","stream":%q,"attributes":{"latency":%d}}`, name, t.stream, t.ms)
		if _, err := p.p.Toxics.AddToxicJson(strings.NewReader(body)); err != nil {
			return fmt.Errorf("netlab: add toxic %s: %w", name, err)
		}
		p.toxics = append(p.toxics, name)
	}
	p.latency = d
	return nil
}
