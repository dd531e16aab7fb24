package netlab_test

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/tests/netlab"
)

// redisAddr is the test Redis's host:port (skip-or-fail rule of testenv).
func redisAddr(t *testing.T) string {
	t.Helper()
	o, err := goredis.ParseURL(testenv.RedisURL(t))
	if err != nil {
		t.Fatal(err)
	}
	return o.Addr
}

// pingRTTs sends n PINGs one after the other and returns their round trips.
func pingRTTs(t *testing.T, c *goredis.Client, n int) []time.Duration {
	t.Helper()
	ctx := context.Background()
	out := make([]time.Duration, n)
	for i := range out {
		start := time.Now()
		if err := c.Ping(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		out[i] = time.Since(start)
	}
	slices.Sort(out)
	return out
}

// TestLatencyThroughProxy proves the harness: a client in a namespace
// reaches Redis only through the proxy, and with 1 ms and 5 ms set every
// PING round trip is at least that much longer than none could be (a
// lower bound: the proxy must delay; how much more a busy machine adds is
// logged, not asserted).
func TestLatencyThroughProxy(t *testing.T) {
	upstream := redisAddr(t)
	lab := netlab.New(t, 2)
	a, b := lab.NS[0], lab.NS[1]
	if a.HostIP.Equal(b.HostIP) {
		t.Fatalf("two namespaces got the same subnet %s", a.HostIP)
	}

	// Isolation: from inside, the server on loopback is out of reach.
	dctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	if c, err := a.DialContext(dctx, "tcp", upstream); err == nil {
		c.Close()
		t.Fatalf("dialed %s from inside namespace %s: not isolated", upstream, a.Name)
	}
	cancel()

	p := a.Proxy(t, upstream)
	c := goredis.NewClient(&goredis.Options{Addr: p.Addr(), Dialer: a.DialContext, PoolSize: 1, MaxRetries: -1})
	defer c.Close()
	// Redis sees the proxy's own connection, not the namespace's address.
	if out, err := c.ClientInfo(context.Background()).Result(); err != nil {
		t.Fatal(err)
	} else if host, _, _ := net.SplitHostPort(out.Addr); host == a.NSIP.String() {
		t.Fatalf("redis sees %s directly, not through the proxy", out.Addr)
	}

	const n = 40
	var base time.Duration
	for _, lat := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
		if err := p.SetLatency(lat); err != nil {
			t.Fatal(err)
		}
		pingRTTs(t, c, 3) // the toxics apply to the open connection from the next chunk
		rtts := pingRTTs(t, c, n)
		minRTT, median := rtts[0], rtts[n/2]
		if lat == 0 {
			base = median
		}
		t.Logf("latency %v: PING round trip min %v, median %v, p90 %v; added (median - median at 0) %v",
			lat, minRTT.Round(time.Microsecond), median.Round(time.Microsecond), rtts[n*9/10].Round(time.Microsecond),
			(median - base).Round(time.Microsecond))
		if minRTT < lat {
			t.Errorf("latency %v: a PING took only %v", lat, minRTT)
		}
	}

	// ip netns exec runs a program inside: redis-cli through b's proxy.
	if _, err := exec.LookPath("redis-cli"); err != nil {
		testenv.Need(t, "redis-cli not in PATH", "apt-get install redis-tools")
	}
	pb := b.Proxy(t, upstream)
	if err := pb.SetLatency(2 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(pb.Addr())
	out, err := b.Command(context.Background(), "redis-cli", "-h", host, "-p", port, "PING").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "PONG" {
		t.Fatalf("redis-cli PING from %s: %q, %v", b.Name, out, err)
	}
	// A direct attempt from inside b fails: only the proxy is reachable.
	uh, up, _ := net.SplitHostPort(upstream)
	if out, err := b.Command(context.Background(), "redis-cli", "-h", uh, "-p", up, "PING").CombinedOutput(); err == nil && strings.Contains(string(out), "PONG") {
		t.Fatalf("redis-cli reached %s directly from %s", upstream, b.Name)
	}
}

func TestSetLatencyRejectsFractions(t *testing.T) {
	upstream := redisAddr(t)
	lab := netlab.New(t, 1)
	p := lab.NS[0].Proxy(t, upstream)
	for _, d := range []time.Duration{-time.Millisecond, 1500 * time.Microsecond} {
		if err := p.SetLatency(d); err == nil {
			t.Errorf("SetLatency(%v) accepted", d)
		}
	}
}

// TestCleanup checks that a lab's namespaces are gone after its test, and
// that New deletes a namespace left by a dead process.
func TestCleanup(t *testing.T) {
	var names []string
	t.Run("lab", func(t *testing.T) {
		lab := netlab.New(t, 2)
		for _, ns := range lab.NS {
			names = append(names, ns.Name)
		}
		// A process left running inside is killed by the cleanup.
		cmd := lab.NS[0].Command(context.Background(), "sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = cmd.Wait() }()
	})
	if len(names) == 0 {
		return // skipped
	}
	list := func() string {
		out, err := exec.Command("ip", "netns", "list").Output()
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	for _, n := range names {
		if strings.Contains(list(), n) {
			t.Errorf("namespace %s outlived its test", n)
		}
	}

	// A leftover from a "crashed" run: a pid that no process has.
	dead := 0
	for pid := 4194000; pid < 4194300; pid++ {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			dead = pid
			break
		}
	}
	if dead == 0 {
		t.Skip("found no unused pid to fake a dead run")
	}
	left := netlab.Prefix + strconv.Itoa(dead) + "-leftover-0"
	if out, err := exec.Command("ip", "netns", "add", left).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", left, err, out)
	}
	mine := netlab.Prefix + strconv.Itoa(os.Getpid()) + "-alive-0"
	if out, err := exec.Command("ip", "netns", "add", mine).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", mine, err, out)
	}
	defer exec.Command("ip", "netns", "delete", mine).Run()
	removed, err := netlab.CleanLeftovers()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(removed, left) || strings.Contains(list(), left) {
		t.Errorf("leftover %s not removed (removed %v)", left, removed)
	}
	if slices.Contains(removed, mine) || !strings.Contains(list(), mine) {
		t.Errorf("namespace %s of a live process was removed", mine)
	}
}
