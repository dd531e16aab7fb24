package redisproc

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ClusterOptions shape a Cluster fixture. Zero values take the defaults.
type ClusterOptions struct {
	Options
	// Masters is the number of masters (default 3, the minimum Redis
	// accepts); the 16384 slots are split among them in equal ranges, as
	// redis-cli --cluster create does.
	Masters int
	// Replicas per master (default 1; -1 for none).
	Replicas int
	// NodeTimeout is cluster-node-timeout (default 1 s): how long a master
	// must be unreachable before its replica takes over.
	NodeTimeout time.Duration
}

// Cluster is a Redis Cluster of child processes. Which node is a master
// changes with failovers: ask [Cluster.Masters] or [Cluster.MasterOf].
type Cluster struct {
	// Nodes are the masters at the start, then the replicas (replica i
	// of master i%Masters).
	Nodes []*Server

	tb testing.TB
	mu sync.Mutex
	// owned is each node ID's slot ranges in the last healthy view, so
	// WaitFailover knows which slots a killed master held.
	owned map[string][][2]int
}

// StartCluster starts the nodes, assigns the slots, joins them (CLUSTER
// MEET), attaches the replicas (CLUSTER REPLICATE) and waits until every
// node agrees the cluster is healthy.
func StartCluster(tb testing.TB, o ClusterOptions) *Cluster {
	tb.Helper()
	if o.Masters <= 0 {
		o.Masters = 3
	}
	switch {
	case o.Replicas == 0:
		o.Replicas = 1
	case o.Replicas < 0:
		o.Replicas = 0
	}
	if o.NodeTimeout <= 0 {
		o.NodeTimeout = time.Second
	}
	l := newLab(tb)
	ctx, cancel := context.WithTimeout(context.Background(), defaultWait)
	defer cancel()
	c := &Cluster{tb: tb}
	total := o.Masters * (1 + o.Replicas)
	nodes := make([]*Server, total)
	errs := make([]error, total)
	var wg sync.WaitGroup
	var lmu sync.Mutex // launch appends to l.servers
	for i := range total {
		wg.Go(func() {
			name := fmt.Sprintf("node-%d", i+1)
			s, err := l.launchLocked(ctx, &lmu, name, func(dir string, p []int) []string {
				return append(dataArgs(dir, p[0], o.Options),
					"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
					"--cluster-port", strconv.Itoa(p[1]),
					"--cluster-node-timeout", strconv.FormatInt(o.NodeTimeout.Milliseconds(), 10),
					// A replica may take over however long its link was
					// down: on a busy machine the link flaps.
					"--cluster-replica-validity-factor", "0")
			}, 2)
			nodes[i], errs[i] = s, err
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	c.Nodes = nodes
	if err := c.create(ctx, o.Masters); err != nil {
		tb.Fatal(err)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		tb.Fatal(err)
	}
	return c
}

// launchLocked is launch for parallel callers.
func (l *lab) launchLocked(ctx context.Context, mu *sync.Mutex, name string, args func(string, []int) []string, nports int) (*Server, error) {
	sub := &lab{tb: l.tb, dir: l.dir}
	s, err := sub.launch(ctx, name, args, nports)
	if s != nil {
		mu.Lock()
		l.servers = append(l.servers, s)
		mu.Unlock()
	}
	return s, err
}

// create does what redis-cli --cluster create does: distinct config
// epochs, equal slot ranges for the masters, MEET, then REPLICATE once the
// replica has heard of its master.
func (c *Cluster) create(ctx context.Context, masters int) error {
	clients := make([]*goredis.Client, len(c.Nodes))
	for i, n := range c.Nodes {
		clients[i] = n.probe()
		defer clients[i].Close()
		id, err := clients[i].Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			return fmt.Errorf("redisproc: %s: CLUSTER MYID: %w", n.Name, err)
		}
		n.ID = id
		if err := clients[i].Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			return fmt.Errorf("redisproc: %s: CLUSTER SET-CONFIG-EPOCH: %w", n.Name, err)
		}
	}
	for i := range masters {
		lo, hi := i*16384/masters, (i+1)*16384/masters-1
		args := []any{"CLUSTER", "ADDSLOTS"}
		for s := lo; s <= hi; s++ {
			args = append(args, s)
		}
		if err := clients[i].Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("redisproc: %s: CLUSTER ADDSLOTS %d-%d: %w", c.Nodes[i].Name, lo, hi, err)
		}
	}
	for _, n := range c.Nodes[1:] {
		// The bus port is not port+10000 (--cluster-port): name it.
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", n.Port, n.bus).Err(); err != nil {
			return fmt.Errorf("redisproc: CLUSTER MEET %s: %w", n.Addr(), err)
		}
	}
	for i := masters; i < len(c.Nodes); i++ {
		m := c.Nodes[i%masters]
		tries := 0
		err := poll(ctx, c.Nodes[i].Name+" replicates "+m.Name, func(ctx context.Context) error {
			// Fails until gossip has told the replica about its master.
			err := clients[i].Do(ctx, "CLUSTER", "REPLICATE", m.ID).Err()
			if tries++; err != nil && tries%20 == 0 {
				// Still unknown after a second: on a loaded machine a MEET
				// handshake can outlast cluster-node-timeout and be dropped,
				// and nothing sends it again. Introduce them directly.
				_ = clients[i].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", m.Port, m.bus).Err()
			}
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Addrs are the nodes' addresses, masters at the start first.
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		out[i] = n.Addr()
	}
	return out
}

// URL is the cluster in go-redis ParseClusterURL form:
// "redis://N1?addr=N2&addr=N3...".
func (c *Cluster) URL() string {
	a := c.Addrs()
	return "redis://" + a[0] + "?addr=" + strings.Join(a[1:], "&addr=")
}

// Client returns a cluster client of all nodes, closed when the test ends.
func (c *Cluster) Client(tb testing.TB) *goredis.ClusterClient {
	cc := goredis.NewClusterClient(&goredis.ClusterOptions{Addrs: c.Addrs()})
	tb.Cleanup(func() { cc.Close() })
	return cc
}

// byID returns the node with a cluster node ID, or nil.
func (c *Cluster) byID(id string) *Server {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// nodeLine is one line of CLUSTER NODES.
type nodeLine struct {
	id, addr, master string
	flags            []string
	slots            [][2]int
}

func (l nodeLine) has(flag string) bool { return slices.Contains(l.flags, flag) }

func parseNodes(txt string) ([]nodeLine, error) {
	var out []nodeLine
	for line := range strings.SplitSeq(strings.TrimSpace(txt), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 {
			return nil, fmt.Errorf("CLUSTER NODES line %q", line)
		}
		addr, _, _ := strings.Cut(f[1], "@")
		nl := nodeLine{id: f[0], addr: addr, flags: strings.Split(f[2], ","), master: f[3]}
		for _, s := range f[8:] {
			if strings.HasPrefix(s, "[") {
				continue // a slot being migrated or imported
			}
			lo, hi, ok := strings.Cut(s, "-")
			if !ok {
				hi = lo
			}
			a, err1 := strconv.Atoi(lo)
			b, err2 := strconv.Atoi(hi)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("CLUSTER NODES slot %q", s)
			}
			nl.slots = append(nl.slots, [2]int{a, b})
		}
		out = append(out, nl)
	}
	return out, nil
}

// view reads CLUSTER NODES from a running node.
func (c *Cluster) view(ctx context.Context, n *Server) ([]nodeLine, error) {
	cl := n.probe()
	defer cl.Close()
	txt, err := cl.ClusterNodes(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: CLUSTER NODES: %v", n.Name, err)
	}
	return parseNodes(txt)
}

// anyView reads CLUSTER NODES from the first running node that answers.
func (c *Cluster) anyView(ctx context.Context) ([]nodeLine, error) {
	var last error
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		v, err := c.view(ctx, n)
		if err == nil {
			return v, nil
		}
		last = err
	}
	if last == nil {
		last = fmt.Errorf("no node is running")
	}
	return nil, last
}

// Masters returns the nodes that own slots, as a running node sees it.
func (c *Cluster) Masters(ctx context.Context) ([]*Server, error) {
	v, err := c.anyView(ctx)
	if err != nil {
		return nil, err
	}
	var out []*Server
	for _, l := range v {
		if l.has("master") && len(l.slots) > 0 {
			if n := c.byID(l.id); n != nil {
				out = append(out, n)
			}
		}
	}
	return out, nil
}

// MasterOf returns the node that owns slot, as a running node sees it.
func (c *Cluster) MasterOf(ctx context.Context, slot int) (*Server, error) {
	v, err := c.anyView(ctx)
	if err != nil {
		return nil, err
	}
	for _, l := range v {
		for _, r := range l.slots {
			if slot >= r[0] && slot <= r[1] {
				if n := c.byID(l.id); n != nil {
					return n, nil
				}
				return nil, fmt.Errorf("redisproc: slot %d is owned by %s, not a node of this fixture", slot, l.id)
			}
		}
	}
	return nil, fmt.Errorf("redisproc: slot %d has no owner", slot)
}

// MasterOfKey returns the node that owns key's slot (CLUSTER KEYSLOT).
func (c *Cluster) MasterOfKey(ctx context.Context, key string) (*Server, error) {
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl := n.probe()
		slot, err := cl.ClusterKeySlot(ctx, key).Result()
		cl.Close()
		if err == nil {
			return c.MasterOf(ctx, int(slot))
		}
	}
	return nil, fmt.Errorf("redisproc: no running node answers CLUSTER KEYSLOT")
}

// WaitHealthy waits until every running node reports cluster_state:ok with
// all 16384 slots ok, every slot is owned by a running master (in every
// running node's view), and every running replica's link to its master is
// up.
func (c *Cluster) WaitHealthy(ctx context.Context) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	return poll(ctx, "cluster healthy", func(ctx context.Context) error {
		var owned map[string][][2]int
		for _, n := range c.Nodes {
			if !n.Running() {
				continue
			}
			cl := n.probe()
			ci, err := cl.ClusterInfo(ctx).Result()
			var repl map[string]string
			if err == nil {
				repl, err = info(ctx, cl, "replication")
			}
			cl.Close()
			if err != nil {
				return fmt.Errorf("%s: %v", n.Name, err)
			}
			if !strings.Contains(ci, "cluster_state:ok") || !strings.Contains(ci, "cluster_slots_ok:16384") {
				return fmt.Errorf("%s: cluster state not ok:\n%s", n.Name, ci)
			}
			if repl["role"] == "slave" && repl["master_link_status"] != "up" {
				return fmt.Errorf("%s: replica link to port %s is %q", n.Name, repl["master_port"], repl["master_link_status"])
			}
			v, err := c.view(ctx, n)
			if err != nil {
				return err
			}
			owned = map[string][][2]int{}
			covered := 0
			for _, l := range v {
				if len(l.slots) == 0 {
					continue
				}
				o := c.byID(l.id)
				if o == nil || !o.Running() || l.has("fail") || l.has("fail?") {
					return fmt.Errorf("%s sees slots %v owned by %s (%s, flags %v), which is down", n.Name, l.slots, l.addr, l.id, l.flags)
				}
				owned[l.id] = l.slots
				for _, r := range l.slots {
					covered += r[1] - r[0] + 1
				}
			}
			if covered != 16384 {
				return fmt.Errorf("%s sees %d slots owned", n.Name, covered)
			}
		}
		if owned == nil {
			return permanent{fmt.Errorf("redisproc: no cluster node is running")}
		}
		c.mu.Lock()
		c.owned = owned
		c.mu.Unlock()
		return nil
	})
}

// WaitFailover waits until the slots that killed owned in the last healthy
// view ([StartCluster], [Cluster.WaitHealthy]) are served by another
// running node and the cluster is healthy again; it returns that node.
func (c *Cluster) WaitFailover(ctx context.Context, killed *Server) (*Server, error) {
	c.mu.Lock()
	slots := c.owned[killed.ID]
	c.mu.Unlock()
	if len(slots) == 0 {
		return nil, fmt.Errorf("redisproc: %s owned no slots in the last healthy view", killed.Name)
	}
	ctx, cancel := bounded(ctx)
	defer cancel()
	var m *Server
	err := poll(ctx, "failover of "+killed.Name, func(ctx context.Context) error {
		var err error
		if m, err = c.MasterOf(ctx, slots[0][0]); err != nil {
			return err
		}
		if m == killed {
			return fmt.Errorf("slot %d still owned by %s", slots[0][0], killed.Name)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := c.WaitHealthy(ctx); err != nil {
		return nil, err
	}
	return m, nil
}
