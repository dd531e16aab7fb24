package redisproc

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// SentinelOptions shape a Sentinel fixture. Zero values take the defaults.
type SentinelOptions struct {
	Options
	// Replicas of the primary (default 1).
	Replicas int
	// Sentinels watching it (default 3; the quorum is a majority).
	Sentinels int
	// MasterName is the name the sentinels monitor (default "conq").
	MasterName string
	// DownAfter is down-after-milliseconds (default 3 s): how long the
	// primary must be unreachable before a failover starts. Not 1 s: on a
	// loaded machine (the race detector, a 2-core CI box) a sentinel's PING
	// can go unanswered for a second, the sentinels then judge a live
	// primary down and fail over a second time, e.g. promote the restarted
	// old primary, and writes acknowledged on the new one are lost. With
	// 3 s a failover in the tests takes about 5-6.5 s from SIGKILL until the
	// sentinels are settled ([Sentinel.WaitFailover]).
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout (default 10 s). It must stay well
	// above DownAfter plus the vote: it also spaces failovers of the same
	// primary (a sentinel does not retry one for twice this time).
	FailoverTimeout time.Duration
}

// Sentinel is a primary, its replicas and the sentinels watching them.
// Which data node is the primary changes with failovers: ask [Sentinel.Master].
type Sentinel struct {
	MasterName string
	// Data holds the primary at the start, then the replicas.
	Data []*Server
	// Sentinels are the sentinel processes.
	Sentinels []*Server
	quorum    int
}

// StartSentinel starts a primary, its replicas (in sync before it returns)
// and the sentinels (each knowing the replicas and the other sentinels, so
// a failover can be voted), all append-only on free ports.
func StartSentinel(tb testing.TB, o SentinelOptions) *Sentinel {
	tb.Helper()
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Sentinels <= 0 {
		o.Sentinels = 3
	}
	if o.MasterName == "" {
		o.MasterName = "conq"
	}
	if o.DownAfter <= 0 {
		o.DownAfter = 3 * time.Second
	}
	if o.FailoverTimeout <= 0 {
		o.FailoverTimeout = 10 * time.Second
	}
	l := newLab(tb)
	ctx, cancel := context.WithTimeout(context.Background(), defaultWait)
	defer cancel()
	s := &Sentinel{MasterName: o.MasterName, quorum: o.Sentinels/2 + 1}
	// A failover that goes wrong (a second one, a write lost) is only
	// explained by the sentinels' +sdown / +switch-master lines and the
	// nodes' replication lines: put them in the test log when it fails.
	l.logsOnFailure()
	primary, err := l.launch(ctx, "primary", func(dir string, p []int) []string {
		return dataArgs(dir, p[0], o.Options)
	}, 1)
	if err != nil {
		tb.Fatal(err)
	}
	s.Data = append(s.Data, primary)
	for i := range o.Replicas {
		r, err := l.launch(ctx, fmt.Sprintf("replica-%d", i+1), func(dir string, p []int) []string {
			return append(dataArgs(dir, p[0], o.Options), "--replicaof", "127.0.0.1", strconv.Itoa(primary.Port))
		}, 1)
		if err != nil {
			tb.Fatal(err)
		}
		s.Data = append(s.Data, r)
	}
	// Replicas first: a sentinel learns them from the primary's INFO.
	if err := s.waitReplication(ctx, primary); err != nil {
		tb.Fatal(err)
	}
	for i := range o.Sentinels {
		sn, err := l.launch(ctx, fmt.Sprintf("sentinel-%d", i+1), func(dir string, p []int) []string {
			// Sentinel rewrites its config file: one per process, in its dir.
			conf := filepath.Join(dir, "sentinel.conf")
			name := o.MasterName
			body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nlogfile %s\n", p[0], dir, filepath.Join(dir, "redis.log")) +
				fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d\n", name, primary.Port, s.quorum) +
				fmt.Sprintf("sentinel down-after-milliseconds %s %d\n", name, o.DownAfter.Milliseconds()) +
				fmt.Sprintf("sentinel failover-timeout %s %d\n", name, o.FailoverTimeout.Milliseconds()) +
				fmt.Sprintf("sentinel parallel-syncs %s 1\n", name)
			if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
				tb.Fatal(err)
			}
			return []string{conf, "--sentinel"}
		}, 1)
		if err != nil {
			tb.Fatal(err)
		}
		s.Sentinels = append(s.Sentinels, sn)
	}
	if err := s.WaitHealthy(ctx); err != nil {
		tb.Fatal(err)
	}
	return s
}

// SentinelAddrs are the sentinels' addresses.
func (s *Sentinel) SentinelAddrs() []string {
	out := make([]string, len(s.Sentinels))
	for i, sn := range s.Sentinels {
		out[i] = sn.Addr()
	}
	return out
}

// FailoverURL is the fixture as a broker URL (redisbroker.ParseTarget):
// "redis+sentinel://S1?addr=S2&addr=S3&master_name=NAME", the sentinels'
// addresses.
func (s *Sentinel) FailoverURL() string {
	var b strings.Builder
	b.WriteString("redis+sentinel://" + s.Sentinels[0].Addr() + "?master_name=" + s.MasterName)
	for _, sn := range s.Sentinels[1:] {
		b.WriteString("&addr=" + sn.Addr())
	}
	return b.String()
}

// FailoverClient returns a go-redis failover client (it follows the
// primary through failovers), closed when the test ends.
func (s *Sentinel) FailoverClient(tb testing.TB) *goredis.Client {
	c := goredis.NewFailoverClient(&goredis.FailoverOptions{MasterName: s.MasterName, SentinelAddrs: s.SentinelAddrs()})
	tb.Cleanup(func() { c.Close() })
	return c
}

// ServerAt returns the data node listening on addr, or nil.
func (s *Sentinel) ServerAt(addr string) *Server {
	for _, d := range s.Data {
		if d.Addr() == addr {
			return d
		}
	}
	return nil
}

// Master returns the data node a majority of the running sentinels name
// as the primary (SENTINEL get-master-addr-by-name).
func (s *Sentinel) Master(ctx context.Context) (*Server, error) {
	votes := map[string]int{}
	var errs []string
	for _, sn := range s.Sentinels {
		if !sn.Running() {
			continue
		}
		c := goredis.NewSentinelClient(&goredis.Options{Addr: sn.Addr(), DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
		a, err := c.GetMasterAddrByName(ctx, s.MasterName).Result()
		c.Close()
		if err != nil || len(a) != 2 {
			errs = append(errs, fmt.Sprintf("%s: %v", sn.Name, err))
			continue
		}
		votes[net.JoinHostPort(a[0], a[1])]++
	}
	for addr, n := range votes {
		if n >= s.quorum {
			if d := s.ServerAt(addr); d != nil {
				return d, nil
			}
			return nil, fmt.Errorf("redisproc: sentinels name %s, not one of this fixture's nodes", addr)
		}
	}
	return nil, fmt.Errorf("redisproc: no majority of sentinels agrees on the primary of %s: votes %v %s", s.MasterName, votes, strings.Join(errs, "; "))
}

// WaitFailover waits until every running sentinel names a primary other
// than old, that node says it is a master, and every sentinel is settled
// on it (see [Sentinel.settled]); it returns the new primary.
//
// A majority naming the new primary is not enough: the other sentinels may
// still be in the failover or not yet reach the new primary, and a test
// that restarts the old primary or writes right then can meet a second,
// spurious failover (the restarted old primary promoted back, the writes
// acknowledged on the new one lost).
func (s *Sentinel) WaitFailover(ctx context.Context, old *Server) (*Server, error) {
	ctx, cancel := bounded(ctx)
	defer cancel()
	var m *Server
	err := poll(ctx, "failover away from "+old.Addr(), func(ctx context.Context) error {
		var err error
		if m, err = s.Master(ctx); err != nil {
			return err
		}
		if m == old {
			return fmt.Errorf("sentinels still name %s", old.Addr())
		}
		if err := s.checkRole(ctx, m, "master"); err != nil {
			return err
		}
		for _, sn := range s.Sentinels {
			if !sn.Running() {
				continue
			}
			if _, err := s.settled(ctx, sn, m); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// WaitHealthy waits until every running sentinel names the same running
// primary and is settled on it (see [Sentinel.settled]), every running
// data node other than it replicates from it with its link up, and every
// running sentinel knows the replicas and the other sentinels.
func (s *Sentinel) WaitHealthy(ctx context.Context) error {
	ctx, cancel := bounded(ctx)
	defer cancel()
	running := 0
	for _, sn := range s.Sentinels {
		if sn.Running() {
			running++
		}
	}
	return poll(ctx, "sentinel fixture healthy", func(ctx context.Context) error {
		m, err := s.Master(ctx)
		if err != nil {
			return err
		}
		if !m.Running() {
			return fmt.Errorf("primary %s is down", m.Addr())
		}
		if err := s.checkRole(ctx, m, "master"); err != nil {
			return err
		}
		if err := s.waitReplicationOnce(ctx, m); err != nil {
			return err
		}
		for _, sn := range s.Sentinels {
			if !sn.Running() {
				continue
			}
			st, err := s.settled(ctx, sn, m)
			if err != nil {
				return err
			}
			if st["num-other-sentinels"] != strconv.Itoa(running-1) {
				return fmt.Errorf("%s knows %s other sentinels, want %d", sn.Name, st["num-other-sentinels"], running-1)
			}
			if n, _ := strconv.Atoi(st["num-slaves"]); n < len(s.Data)-1 {
				return fmt.Errorf("%s knows %d replicas, want %d", sn.Name, n, len(s.Data)-1)
			}
		}
		return nil
	})
}

// settled checks that sentinel sn names m as the primary (SENTINEL
// get-master-addr-by-name and SENTINEL MASTER) and is at rest with it: its
// flags are exactly "master" (no s_down, o_down, failover_in_progress...)
// and its last PING to m is answered (last-ping-sent 0). It returns the
// SENTINEL MASTER fields.
func (s *Sentinel) settled(ctx context.Context, sn, m *Server) (map[string]string, error) {
	c := goredis.NewSentinelClient(&goredis.Options{Addr: sn.Addr(), DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
	defer c.Close()
	a, err := c.GetMasterAddrByName(ctx, s.MasterName).Result()
	if err != nil || len(a) != 2 {
		return nil, fmt.Errorf("%s: SENTINEL GET-MASTER-ADDR-BY-NAME: %v, %v", sn.Name, a, err)
	}
	if addr := net.JoinHostPort(a[0], a[1]); addr != m.Addr() {
		return nil, fmt.Errorf("%s names %s as the primary, not %s (%s)", sn.Name, addr, m.Name, m.Addr())
	}
	st, err := c.Master(ctx, s.MasterName).Result()
	if err != nil {
		return nil, fmt.Errorf("%s: SENTINEL MASTER: %v", sn.Name, err)
	}
	if addr := net.JoinHostPort(st["ip"], st["port"]); addr != m.Addr() {
		return nil, fmt.Errorf("%s: SENTINEL MASTER is %s, not %s (%s)", sn.Name, addr, m.Name, m.Addr())
	}
	if st["flags"] != "master" {
		return nil, fmt.Errorf("%s sees the primary %s as %q", sn.Name, m.Name, st["flags"])
	}
	if st["last-ping-sent"] != "0" {
		return nil, fmt.Errorf("%s has a PING to the primary %s unanswered for %s ms", sn.Name, m.Name, st["last-ping-sent"])
	}
	return st, nil
}

func (s *Sentinel) checkRole(ctx context.Context, d *Server, role string) error {
	c := d.probe()
	defer c.Close()
	in, err := info(ctx, c, "replication")
	if err != nil {
		return fmt.Errorf("%s: INFO: %v", d.Name, err)
	}
	if in["role"] != role {
		return fmt.Errorf("%s (%s) has role %q, want %s", d.Name, d.Addr(), in["role"], role)
	}
	return nil
}

func (s *Sentinel) waitReplication(ctx context.Context, m *Server) error {
	return poll(ctx, "replicas in sync with "+m.Addr(), func(ctx context.Context) error {
		return s.waitReplicationOnce(ctx, m)
	})
}

// waitReplicationOnce checks that every running data node but m is a
// replica of m with its link up.
func (s *Sentinel) waitReplicationOnce(ctx context.Context, m *Server) error {
	for _, d := range s.Data {
		if d == m || !d.Running() {
			continue
		}
		c := d.probe()
		in, err := info(ctx, c, "replication")
		c.Close()
		if err != nil {
			return fmt.Errorf("%s: INFO: %v", d.Name, err)
		}
		if in["role"] != "slave" || in["master_port"] != strconv.Itoa(m.Port) || in["master_link_status"] != "up" {
			return fmt.Errorf("%s: role %q, master port %q, link %q; want replica of %s with the link up",
				d.Name, in["role"], in["master_port"], in["master_link_status"], m.Addr())
		}
	}
	return nil
}
