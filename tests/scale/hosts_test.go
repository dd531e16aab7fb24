package scale

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
	"github.com/conqhq/conq/tests/netlab"
)

// The worker process of TestWorkersOnManyHosts: the test binary run again
// inside a network namespace (ip netns exec) with these variables set.
const (
	envRole    = "CONQ_SCALE_ROLE" // "worker"
	envURL     = "CONQ_SCALE_URL"  // the broker URL as seen from the namespace (one server)
	envSeeds   = "CONQ_SCALE_SEEDS"
	envAddrMap = "CONQ_SCALE_ADDRMAP" // cluster: "nodeAddr=proxyAddr,..."
	envPrefix  = "CONQ_SCALE_PREFIX"
	envName    = "CONQ_SCALE_NAME" // returned as every task's result
)

func TestMain(m *testing.M) {
	if os.Getenv(envRole) == "worker" {
		os.Exit(workerMain())
	}
	os.Exit(m.Run())
}

// workerMain runs a queue worker until SIGTERM. On a cluster it dials each
// node through the proxy the test set up for it in this namespace (the
// nodes announce loopback addresses, out of reach from here).
func workerMain() int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	fail := func(err error) int {
		fmt.Fprintln(os.Stderr, "worker:", err)
		return 1
	}
	cfg := redisbroker.Config{Prefix: os.Getenv(envPrefix)}
	var b *redisbroker.Broker
	var err error
	if seeds := os.Getenv(envSeeds); seeds != "" {
		m := map[string]string{}
		for _, kv := range strings.Split(os.Getenv(envAddrMap), ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				m[k] = v
			}
		}
		var d net.Dialer
		cc := goredis.NewClusterClient(&goredis.ClusterOptions{
			Addrs: strings.Split(seeds, ","),
			Dialer: func(ctx context.Context, network, addr string) (net.Conn, error) {
				if p, ok := m[addr]; ok {
					addr = p
				}
				return d.DialContext(ctx, network, addr)
			},
			ClusterStateReloadInterval: 2 * time.Second,
		})
		defer cc.Close()
		cfg.Client = cc
		b, err = redisbroker.New(cfg)
	} else {
		b, err = redisbroker.Open(ctx, os.Getenv(envURL), cfg)
	}
	if err != nil {
		return fail(err)
	}
	defer b.Close()
	name := []byte(os.Getenv(envName))
	w, err := queue.NewWorker(b, queue.WorkerConfig{Concurrency: 16, LeaseDuration: 2 * time.Second})
	if err != nil {
		return fail(err)
	}
	w.HandleFunc("work", func(context.Context, *queue.TaskInfo) ([]byte, error) { return name, nil })
	if err := w.Start(context.Background()); err != nil {
		return fail(err)
	}
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := w.Shutdown(sctx); err != nil {
		return fail(err)
	}
	return 0
}

// TestWorkersOnManyHosts puts worker processes on two "other hosts":
// network namespaces joined to this one by veth pairs, reaching Redis only
// through a Toxiproxy that adds 1 ms, then 5 ms, to every round trip. On
// one Redis and on the 3-master cluster (the queue in 3 shards, every node
// behind its own proxy), every task enqueued completes, with a worker
// SIGKILLed halfway through in the 5 ms runs. Throughput is logged, not
// asserted (bench/ measures it next to asynq).
func TestWorkersOnManyHosts(t *testing.T) {
	lab := netlab.New(t, 2)
	for _, lat := range []time.Duration{time.Millisecond, 5 * time.Millisecond} {
		t.Run(fmt.Sprintf("standalone/%v", lat), func(t *testing.T) {
			runHosts(t, lab, lat, hostsTarget(t, false))
		})
		t.Run(fmt.Sprintf("cluster/%v", lat), func(t *testing.T) {
			runHosts(t, lab, lat, hostsTarget(t, true))
		})
	}
}

// target is the Redis deployment of a run: the addresses workers must
// reach (every node of a cluster) and a broker on it from here.
type target struct {
	addrs   []string
	cluster bool
	admin   *redisbroker.Broker
	prefix  string
}

func hostsTarget(t *testing.T, cluster bool) target {
	t.Helper()
	ctx := context.Background()
	if !cluster {
		u := testenv.RedisURL(t)
		prefix := testenv.UniquePrefix(t, testenv.RedisClient(t))
		b, err := redisbroker.Open(ctx, u, redisbroker.Config{Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		o, _ := url.Parse(u)
		return target{addrs: []string{o.Host}, admin: b, prefix: prefix}
	}
	cu := testenv.RedisClusterURL(t)
	prefix := testenv.UniquePrefix(t, testenv.RedisClusterClient(t))
	b, err := redisbroker.Open(ctx, cu, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	if err := b.SetShards(ctx, broker.ShardParams{Queue: queue.DefaultQueue, Shards: 3}); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	shards, err := b.Cluster().ClusterShards(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range shards {
		for _, n := range s.Nodes {
			addrs = append(addrs, net.JoinHostPort(n.IP, strconv.FormatInt(n.Port, 10)))
		}
	}
	return target{addrs: addrs, cluster: true, admin: b, prefix: prefix}
}

// worker is a worker process in a namespace.
type worker struct {
	ns   *netlab.Namespace
	cmd  *os.Process
	done chan error
	out  *syncBuf
}

func runHosts(t *testing.T, lab *netlab.Lab, lat time.Duration, tg target) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var workers []*worker
	defer func() {
		for _, w := range workers {
			if w.cmd != nil {
				_ = w.cmd.Signal(syscall.SIGTERM)
			}
		}
		for _, w := range workers {
			if w.cmd == nil {
				continue // killed and reaped by the test
			}
			select {
			case err := <-w.done:
				if err != nil {
					t.Errorf("worker in %s: %v\n%s", w.ns.Name, err, w.out)
				}
			case <-time.After(20 * time.Second):
				_ = w.cmd.Kill()
				t.Errorf("worker in %s did not stop on SIGTERM\n%s", w.ns.Name, w.out)
			}
		}
	}()
	for _, ns := range lab.NS {
		// One proxy per node the workers may dial, all in the path.
		var pairs []string
		var first string
		for _, a := range tg.addrs {
			p := ns.Proxy(t, a)
			if err := p.SetLatency(lat); err != nil {
				t.Fatal(err)
			}
			pairs = append(pairs, a+"="+p.Addr())
			if first == "" {
				first = p.Addr()
			}
		}
		env := append(os.Environ(), envRole+"=worker", envPrefix+"="+tg.prefix, envName+"="+ns.Name)
		if tg.cluster {
			env = append(env, envSeeds+"="+strings.Join(tg.addrs, ","), envAddrMap+"="+strings.Join(pairs, ","))
		} else {
			env = append(env, envURL+"=redis://"+first)
		}
		cmd := ns.Command(context.Background(), os.Args[0], "-test.run=^$")
		cmd.Env = env
		w := &worker{ns: ns, done: make(chan error, 1), out: &syncBuf{}}
		cmd.Stdout, cmd.Stderr = w.out, w.out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.cmd = cmd.Process
		go func() { w.done <- cmd.Wait() }()
		workers = append(workers, w)
	}

	const n = 3000
	client, err := queue.NewClient(tg.admin, queue.ClientConfig{Options: []queue.Option{queue.Retention(time.Hour), queue.MaxRetries(5)}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; i < n; i += 500 {
		tasks := make([]*queue.Task, 500)
		for j := range tasks {
			tasks[j] = queue.NewTask("work", nil)
		}
		if _, err := client.EnqueueMany(ctx, tasks); err != nil {
			t.Fatal(err)
		}
	}
	in := queue.NewInspector(tg.admin)
	killed := false
	var counts map[queue.State]int64
	for {
		q, err := in.Queue(ctx, queue.DefaultQueue)
		if err != nil {
			t.Fatal(err)
		}
		counts = q.Counts
		if counts[queue.StateCompleted] == n {
			break
		}
		if lat >= 5*time.Millisecond && !killed && counts[queue.StateCompleted] >= n/3 {
			// A host dies: its leases expire and the other host runs
			// the tasks.
			_ = workers[1].cmd.Kill()
			<-workers[1].done
			workers[1].cmd = nil
			killed = true
		}
		if ctx.Err() != nil {
			t.Fatalf("after %v: counts %v, want %d completed\nworker 0:\n%s\nworker 1:\n%s", time.Since(start), counts, n, workers[0].out, workers[1].out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(start)
	for st, c := range counts {
		if st != queue.StateCompleted && c != 0 {
			t.Fatalf("counts %v: %d %s", counts, c, st)
		}
	}
	// Which host ran what (the result names the namespace).
	per := map[string]int{}
	for off := 0; off < n; off += 1000 {
		ts, err := in.Tasks(ctx, queue.DefaultQueue, queue.StateCompleted, off, 1000)
		if err != nil {
			t.Fatal(err)
		}
		for _, task := range ts {
			per[string(task.Result)]++
		}
	}
	for _, ns := range lab.NS {
		if per[ns.Name] == 0 {
			t.Fatalf("the worker in %s ran no task: %v", ns.Name, per)
		}
	}
	note := ""
	if killed {
		note = fmt.Sprintf("; the worker in %s was SIGKILLed at a third", lab.NS[1].Name)
	}
	t.Logf("%d tasks completed over %v of added latency in %v (%.0f tasks/s, 2 worker processes of concurrency 16), per host %v%s",
		n, lat, took.Round(time.Millisecond), float64(n)/took.Seconds(), per, note)
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
