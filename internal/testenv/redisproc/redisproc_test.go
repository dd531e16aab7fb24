package redisproc_test

import (
	"context"
	"errors"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv/redisproc"
)

// gone fails t if any of pids is still a live process: the fixtures must
// kill everything they started when their test ends.
func gone(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process %d outlived its test (kill -0: %v)", pid, err)
		}
	}
}

func pidsOf(servers ...*redisproc.Server) []int {
	var out []int
	for _, s := range servers {
		if p := s.Pid(); p != 0 {
			out = append(out, p)
		}
	}
	return out
}

// writeAcked sets key on c's server and waits for one replica to have it
// (WAIT on the same connection), so a failover cannot lose it.
func writeAcked(t *testing.T, ctx context.Context, c *goredis.Client, key, val string) {
	t.Helper()
	var wait *goredis.Cmd
	_, err := c.Pipelined(ctx, func(p goredis.Pipeliner) error {
		p.Set(ctx, key, val, 0)
		wait = p.Do(ctx, "WAIT", 1, 5000)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := wait.Int(); err != nil || n < 1 {
		t.Fatalf("WAIT 1: %d replicas acknowledged, %v", n, err)
	}
}

func TestStandaloneKillRestart(t *testing.T) {
	t.Parallel()
	var pids []int
	t.Run("fixture", func(t *testing.T) {
		ctx := context.Background()
		s := redisproc.Standalone(t, redisproc.Options{})
		c := s.Client()
		if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
			t.Fatal(err)
		}
		s.Kill()
		if s.Running() {
			t.Fatal("running after Kill")
		}
		if err := s.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		// appendfsync always: the acknowledged write survived SIGKILL.
		if v, err := c.Get(ctx, "k").Result(); err != nil || v != "v" {
			t.Fatalf("after restart: %q, %v", v, err)
		}
		pids = pidsOf(s)

		// CPU time grows with work (10 ms steps, so enough of it).
		before, err := s.CPU()
		if err != nil {
			t.Fatal(err)
		}
		for range 20 {
			_, _ = c.Pipelined(ctx, func(p goredis.Pipeliner) error {
				for i := range 2000 {
					p.Set(ctx, "k"+strconv.Itoa(i), "v", 0)
				}
				return nil
			})
		}
		after, err := s.CPU()
		if err != nil || after <= before {
			t.Fatalf("CPU %v before 40000 SETs, %v after (%v)", before, after, err)
		}
		if self, err := redisproc.ProcessCPU(os.Getpid()); err != nil || self <= 0 {
			t.Fatalf("own CPU %v, %v", self, err)
		}
	})
	gone(t, pids)
}

func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	var pids []int
	t.Run("fixture", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		t0 := time.Now()
		s := redisproc.StartSentinel(t, redisproc.SentinelOptions{})
		t.Logf("primary, replica and 3 sentinels ready in %v", time.Since(t0).Round(time.Millisecond))
		pids = pidsOf(append(s.Data, s.Sentinels...)...)
		old, err := s.Master(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if old != s.Data[0] {
			t.Fatalf("primary at start is %s, want %s", old.Name, s.Data[0].Name)
		}
		writeAcked(t, ctx, old.Client(), "before", "1")

		fc := s.FailoverClient(t)
		if err := fc.Set(ctx, "via-failover-client", "1", 0).Err(); err != nil {
			t.Fatal(err)
		}

		start := time.Now()
		old.Kill()
		m, err := s.WaitFailover(ctx, old)
		if err != nil {
			t.Fatal(err)
		}
		// Until every sentinel is settled on the new primary: about 5-6.5 s
		// with the fixture's down-after-milliseconds of 3 s.
		t.Logf("sentinels promoted %s and all settled on it %v after the primary was killed", m.Name, time.Since(start).Round(time.Millisecond))
		if m != s.Data[1] {
			t.Fatalf("new primary %s, want the replica %s", m.Name, s.Data[1].Name)
		}
		if v, err := m.Client().Get(ctx, "before").Result(); err != nil || v != "1" {
			t.Fatalf("replicated key on the new primary: %q, %v", v, err)
		}
		// The failover client follows the new primary.
		if err := fc.Set(ctx, "after", "1", 0).Err(); err != nil {
			t.Fatalf("failover client after the failover: %v", err)
		}

		// The old primary comes back as a replica of the new one.
		if err := old.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		t0 = time.Now()
		if err := s.WaitHealthy(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("old primary back as a replica in %v", time.Since(t0).Round(time.Millisecond))
		if m2, err := s.Master(ctx); err != nil || m2 != m {
			t.Fatalf("primary after the old one rejoined: %v, %v", m2, err)
		}
		pids = append(pids, pidsOf(old)...)
	})
	gone(t, pids)
}

func TestClusterFailover(t *testing.T) {
	t.Parallel()
	var pids []int
	t.Run("fixture", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		t0 := time.Now()
		c := redisproc.StartCluster(t, redisproc.ClusterOptions{})
		t.Logf("3 masters + 3 replicas ready in %v", time.Since(t0).Round(time.Millisecond))
		pids = pidsOf(c.Nodes...)
		if len(c.Nodes) != 6 {
			t.Fatalf("%d nodes, want 3 masters + 3 replicas", len(c.Nodes))
		}
		ms, err := c.Masters(ctx)
		if err != nil || len(ms) != 3 {
			t.Fatalf("masters: %v, %v", ms, err)
		}
		cc := c.Client(t)
		// Keys on every master, through the cluster client.
		for i := range 30 {
			if err := cc.Set(ctx, "{k"+strconv.Itoa(i)+"}", "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		const key = "{q}:pending"
		victim, err := c.MasterOfKey(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		writeAcked(t, ctx, victim.Client(), key, "acked")

		start := time.Now()
		victim.Kill()
		m, err := c.WaitFailover(ctx, victim)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s took over %s's slots %v after the kill", m.Name, victim.Name, time.Since(start).Round(time.Millisecond))
		// go-redis keeps sending the slot's commands to the dead master
		// (dial errors, no MOVED) until its slot map is reloaded, which it
		// does by itself only every ClusterStateReloadInterval (60 s by
		// default): a client must call ReloadState on node errors. That is
		// what this loop does; the broker will have to as well.
		var v string
		err = nil
		for range 50 {
			if v, err = cc.Get(ctx, key).Result(); err == nil {
				break
			}
			cc.ReloadState(ctx)
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || v != "acked" {
			t.Fatalf("key after failover: %q, %v", v, err)
		}
		for i := range 30 {
			if err := cc.Get(ctx, "{k"+strconv.Itoa(i)+"}").Err(); err != nil {
				t.Fatalf("key %d after failover: %v", i, err)
			}
		}

		// The old master rejoins as a replica; the new one keeps the slots.
		if err := victim.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitHealthy(ctx); err != nil {
			t.Fatal(err)
		}
		if now, err := c.MasterOfKey(ctx, key); err != nil || now != m {
			t.Fatalf("owner after the old master rejoined: %v, %v", now, err)
		}
		pids = append(pids, pidsOf(victim)...)
	})
	gone(t, pids)
}
