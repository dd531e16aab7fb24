// Package redisproc starts real redis-server processes for tests that must
// control them: kill a node with SIGKILL, wait for a failover, restart it.
// It builds a standalone server, a primary with replicas watched by Redis
// Sentinel, or a Redis Cluster, each process a child of the test on free
// loopback ports with append-only files in the test's temp dir.
//
// Everything is stopped (SIGKILL) when the test ends, and the children get
// SIGKILL from the kernel if the test binary dies first (Pdeathsig), so a
// crashed run leaves no redis-server behind; the temp dirs are the testing
// package's and removed by it.
//
// When redis-server is not installed the test ends by the rule of
// internal/testenv: it skips, or fails under CI / CONQ_REQUIRE_SERVERS.
//
// # Policy, written down
//
//   - Real processes only; a helper never fakes a role or a failover.
//   - Waits are bounded by the caller's ctx and report what they last saw,
//     so a failure on a slow machine says which node was not ready.
//   - No timing is asserted here: these are fixtures, not benchmarks.
//   - Durability is explicit: Options.AppendFsync defaults to "always", so a
//     SIGKILLed node keeps every write it acknowledged; replication is still
//     asynchronous (use WAIT for replica acknowledgement).
package redisproc

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
)

// Options apply to every data node (not to sentinels).
type Options struct {
	// AppendFsync is the appendfsync policy: "always" (default: nothing
	// acknowledged is lost when the node is killed), "everysec" or "no".
	AppendFsync string
	// Args are extra redis-server arguments, e.g. "--maxmemory", "1gb".
	Args []string
}

func (o Options) fsync() string {
	if o.AppendFsync == "" {
		return "always"
	}
	return o.AppendFsync
}

// Server is one redis-server (or sentinel) child process.
type Server struct {
	// Name says what the process is for in messages: "standalone",
	// "primary", "replica-1", "sentinel-2", "node-3".
	Name string
	// Port is the client port, kept across restarts.
	Port int
	// Dir holds the node's files: redis.log, the AOF, nodes.conf.
	Dir string
	// ID is the cluster node ID ("" outside a cluster); it survives
	// restarts (nodes.conf).
	ID string

	tb   testing.TB
	args []string // argv after the binary, reused by Restart
	bus  int      // cluster bus port (0 outside a cluster)

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Addr is "127.0.0.1:Port".
func (s *Server) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)) }

// Pid is the process ID, 0 while the server is down.
func (s *Server) Pid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil || s.cmd.Process == nil {
		return 0
	}
	return s.cmd.Process.Pid
}

// Running reports whether the process is alive (started and not exited).
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Kill stops the process with SIGKILL (no chance to flush anything more)
// and waits until it is gone. Killing a stopped server does nothing.
func (s *Server) Kill() {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the process again with the same port, files and options
// (the AOF is replayed; a cluster node rejoins with its nodes.conf) and
// waits until it answers PING.
func (s *Server) Restart(ctx context.Context) error {
	if s.Running() {
		return fmt.Errorf("redisproc: %s (%s) is running", s.Name, s.Addr())
	}
	if err := s.start(); err != nil {
		return err
	}
	return s.waitPing(ctx)
}

// Client returns a plain client of this server, closed when the test ends.
func (s *Server) Client() *goredis.Client {
	c := goredis.NewClient(&goredis.Options{Addr: s.Addr(), DialTimeout: time.Second})
	s.tb.Cleanup(func() { c.Close() })
	return c
}

// probe is a short-lived client for the helpers' own checks: no retries,
// so a dead node answers with an error at once.
func (s *Server) probe() *goredis.Client {
	return goredis.NewClient(&goredis.Options{Addr: s.Addr(), DialTimeout: 500 * time.Millisecond,
		ReadTimeout: 2 * time.Second, MaxRetries: -1, PoolSize: 1})
}

// LogTail returns the last n lines of the server's log.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(filepath.Join(s.Dir, "redis.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func (s *Server) start() error {
	cmd := exec.Command("redis-server", s.args...)
	cmd.Dir = s.Dir
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	// The kernel kills the child if the test binary dies without its
	// cleanups (a panic in another goroutine, a -timeout kill).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("redisproc: start %s: %w", s.Name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()
	return nil
}

// waitPing waits until the server answers PING, failing early when the
// process exits (a port taken meanwhile, a bad option).
func (s *Server) waitPing(ctx context.Context) error {
	c := s.probe()
	defer c.Close()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for {
		if c.Ping(ctx).Err() == nil {
			return nil
		}
		s.mu.Lock()
		done := s.done
		s.mu.Unlock()
		select {
		case <-done:
			return fmt.Errorf("%w: %s exited on port %d; log:\n%s", errStart, s.Name, s.Port, s.LogTail(15))
		case <-ctx.Done():
			return fmt.Errorf("redisproc: %s on port %d does not answer PING: %w; log:\n%s", s.Name, s.Port, ctx.Err(), s.LogTail(15))
		case <-time.After(25 * time.Millisecond):
		}
	}
}

var errStart = errors.New("redisproc: redis-server did not start")

// lab owns every process of one fixture and kills them when the test ends.
type lab struct {
	tb      testing.TB
	dir     string // the nodes' files, one subdirectory each
	servers []*Server
}

func newLab(tb testing.TB) *lab {
	tb.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Need(tb, "redis-server not in PATH", "install it (apt-get install -y redis-server; it brings redis-cli and Sentinel)")
	}
	// The temp dir first: cleanups run last-registered first, so the
	// processes are killed (and reaped) before the testing package removes
	// the directory they write their AOF and logs into. The other order
	// races a node still appending against RemoveAll ("directory not
	// empty").
	l := &lab{tb: tb, dir: tb.TempDir()}
	tb.Cleanup(func() {
		for _, s := range l.servers {
			s.Kill()
		}
	})
	return l
}

// logsOnFailure puts the log of every server of the lab in the test log
// when the test has failed, so a failure seen once (a flake in CI) can be
// explained afterwards. It runs before the servers are killed (cleanups
// run last-registered first).
func (l *lab) logsOnFailure() {
	l.tb.Cleanup(func() {
		if !l.tb.Failed() {
			return
		}
		for _, s := range l.servers {
			l.tb.Logf("%s (%s) log, last %d lines:\n%s", s.Name, s.Addr(), failureLogLines, s.LogTail(failureLogLines))
		}
	})
}

// failureLogLines bounds each server's log in a failed test's output: a
// fixture's whole life is a few hundred lines a node.
const failureLogLines = 500

// freePorts returns n distinct free loopback ports (all bound at once).
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, n)
	for i := range ports {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// launch starts a server whose arguments args(port) builds, on fresh free
// ports until one works (another process may take a port between the
// check and the bind), and waits for PING.
func (l *lab) launch(ctx context.Context, name string, args func(dir string, ports []int) []string, nports int) (*Server, error) {
	dir := filepath.Join(l.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var last error
	for range 5 {
		ports, err := freePorts(nports)
		if err != nil {
			return nil, err
		}
		s := &Server{Name: name, Port: ports[0], Dir: dir, tb: l.tb, args: args(dir, ports)}
		if nports > 1 {
			s.bus = ports[1]
		}
		if err := s.start(); err != nil {
			return nil, err
		}
		if err := s.waitPing(ctx); err != nil {
			s.Kill()
			last = err
			if errors.Is(err, errStart) {
				continue // likely a port taken meanwhile: new ports
			}
			return nil, err
		}
		l.servers = append(l.servers, s)
		return s, nil
	}
	return nil, last
}

// dataArgs are the arguments of a data node on port in dir.
func dataArgs(dir string, port int, o Options) []string {
	a := []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--logfile", filepath.Join(dir, "redis.log"), "--save", "",
		"--appendonly", "yes", "--appendfsync", o.fsync(),
		// Replicas sync at once, not after the 5 s wait for more replicas.
		"--repl-diskless-sync-delay", "0",
	}
	return append(a, o.Args...)
}

// Standalone starts one append-only redis-server.
func Standalone(tb testing.TB, o Options) *Server {
	tb.Helper()
	l := newLab(tb)
	s, err := l.launch(context.Background(), "standalone", func(dir string, p []int) []string {
		return dataArgs(dir, p[0], o)
	}, 1)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// info returns the fields of INFO section from c.
func info(ctx context.Context, c *goredis.Client, section string) (map[string]string, error) {
	txt, err := c.Info(ctx, section).Result()
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(txt))
	for sc.Scan() {
		if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// poll calls check until it returns nil, ctx ends (the error then includes
// check's last answer) or check returns a permanent error.
func poll(ctx context.Context, what string, check func(ctx context.Context) error) error {
	var last error
	for {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		last = check(cctx)
		cancel()
		if last == nil {
			return nil
		}
		var p permanent
		if errors.As(last, &p) {
			return p.err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redisproc: %s: %w (last: %v)", what, ctx.Err(), last)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }

// defaultWait bounds the fixtures' own waits when the caller's ctx has no
// deadline: generous, for a busy 2-core machine.
const defaultWait = 60 * time.Second

func bounded(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, defaultWait)
}
