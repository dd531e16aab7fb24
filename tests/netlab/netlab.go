// Package netlab puts test clients on "other hosts": Linux network
// namespaces, each joined to the root namespace by a veth pair on its own
// private /24 (10.77.X.0/24: the root side is .1, the namespace side .2),
// with a Toxiproxy (embedded, github.com/Shopify/toxiproxy/v2) listening on
// the root-side address in front of a server and adding latency.
//
//	lab := netlab.New(t, 2)                 // two namespaces, removed when t ends
//	p := lab.NS[0].Proxy(t, "127.0.0.1:6379") // listens on 10.77.X.1:port
//	p.SetLatency(5 * time.Millisecond)       // the round trip grows by 5 ms
//	c := goredis.NewClient(&goredis.Options{Addr: p.Addr(), Dialer: lab.NS[0].DialContext})
//	cmd := lab.NS[1].Command(ctx, "redis-cli", "-h", ip, "-p", port, "PING")
//
// A namespace reaches only its root-side address: a server on 127.0.0.1 is
// out of its reach except through the proxy, so everything a client in it
// sends crosses the veth pair and the proxy.
//
// # Latency
//
// Toxiproxy's latency toxic delays each chunk of data by a whole number of
// milliseconds in one direction. SetLatency(d) splits d into
// floor(d/2) on the upstream (client to server) and the rest on the
// downstream, so a request/response round trip grows by d, the figure a
// ping would show between two hosts d apart. Pipelined commands share the
// delay (chunks are delayed from the time they arrive, not queued behind
// each other), as on a real link. TCP handshakes and ACKs are not delayed:
// Toxiproxy relays data, not packets (the kernel has no netem here).
//
// # Cleanup
//
// Namespaces are named "conqlab-<pid>-<hex>-<i>". They are deleted when
// the test ends, after killing the processes still inside; [New] first
// deletes namespaces left by a run whose process is gone (a crash, a
// -timeout kill). Deleting a namespace deletes its veth pair.
//
// # Skip or fail
//
// Without Linux, root or the ip command the tests skip with a message (the
// machine cannot do it by design); when the tools are there but creating a
// namespace or a veth pair fails, they skip too, except under CI, where
// they fail ([testenv.Broken]).
//
// # Policy, written down
//
//   - Real namespaces, real sockets, a real proxy; no mock network.
//   - Traffic stays on this machine: 10.77.X.0/24 addresses exist only on
//     the veth pairs this package creates.
//   - The latency is a lower bound the harness test checks, not a speed
//     target; measured figures are logged, never asserted as upper bounds.
package netlab

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/conqhq/conq/internal/testenv"
)

// Prefix starts the name of every namespace this package creates.
const Prefix = "conqlab-"

// Subnet is the /16 the namespaces' /24s are taken from.
const Subnet = "10.77."

// Lab is a set of namespaces, deleted when its test ends.
type Lab struct {
	// ID is this lab's part of the names: "<pid>-<hex>".
	ID string
	NS []*Namespace
	tb testing.TB
}

// Namespace is one network namespace with a veth pair to the root.
type Namespace struct {
	// Name is the namespace's name (ip netns).
	Name string
	// HostIP is the root-side address (10.77.X.1), where proxies listen;
	// NSIP is the namespace side (10.77.X.2).
	HostIP, NSIP net.IP
	// HostIf is the root-side veth interface; inside, it is "veth0".
	HostIf string
}

// Available reports why network namespaces cannot be used here by design
// ("" when they can): not Linux, not root, no ip command.
func Available() string {
	switch {
	case runtime.GOOS != "linux":
		return "network namespaces need Linux"
	case os.Geteuid() != 0:
		return "network namespaces need root (ip netns add)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "the ip command (iproute2) is not installed; apt-get install iproute2"
	}
	return ""
}

// New creates n namespaces, each with its veth pair and addresses, or ends
// the test as the package doc says when the machine cannot.
func New(tb testing.TB, n int) *Lab {
	tb.Helper()
	if why := Available(); why != "" {
		tb.Skip(why + ": skipping the network-namespace test")
	}
	if removed, err := CleanLeftovers(); err != nil {
		tb.Logf("netlab: cleaning leftovers: %v", err)
	} else if len(removed) > 0 {
		tb.Logf("netlab: deleted namespaces left by dead runs: %v", removed)
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	l := &Lab{ID: strconv.Itoa(os.Getpid()) + "-" + hex.EncodeToString(b[:]), tb: tb}
	tb.Cleanup(l.close)
	for i := range n {
		ns, err := l.add(i)
		if err != nil {
			testenv.Broken(tb, "netlab: cannot build network namespace "+strconv.Itoa(i)+": "+err.Error(),
				"this machine (a container without CAP_SYS_ADMIN or without the veth module?) does not allow it")
		}
		l.NS = append(l.NS, ns)
	}
	return l
}

// ip runs the ip command and returns its output, or an error with its
// stderr.
func ip(args ...string) (string, error) {
	var out, errb bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return out.String(), nil
}

func (l *Lab) add(i int) (_ *Namespace, err error) {
	// Interface names are at most 15 bytes: "cq" + 6 hex + "h" + index.
	hexPart := l.ID[strings.IndexByte(l.ID, '-')+1:]
	ns := &Namespace{
		Name:   Prefix + l.ID + "-" + strconv.Itoa(i),
		HostIf: "cq" + hexPart + "h" + strconv.Itoa(i),
	}
	if _, err := ip("netns", "add", ns.Name); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = deleteNS(ns.Name)
		}
	}()
	if _, err := ip("link", "add", ns.HostIf, "type", "veth", "peer", "name", "veth0", "netns", ns.Name); err != nil {
		return nil, err
	}
	// The /24 is picked and assigned under a lock shared by every test
	// process, so two packages running at once never take the same one.
	unlock, err := lockSubnets()
	if err != nil {
		return nil, err
	}
	defer unlock()
	x, err := freeSubnet()
	if err != nil {
		return nil, err
	}
	ns.HostIP = net.ParseIP(fmt.Sprintf("%s%d.1", Subnet, x))
	ns.NSIP = net.ParseIP(fmt.Sprintf("%s%d.2", Subnet, x))
	for _, args := range [][]string{
		{"addr", "add", ns.HostIP.String() + "/24", "dev", ns.HostIf},
		{"link", "set", ns.HostIf, "up"},
		{"-n", ns.Name, "addr", "add", ns.NSIP.String() + "/24", "dev", "veth0"},
		{"-n", ns.Name, "link", "set", "veth0", "up"},
		{"-n", ns.Name, "link", "set", "lo", "up"},
	} {
		if _, err := ip(args...); err != nil {
			return nil, err
		}
	}
	return ns, nil
}

// lockSubnets takes an exclusive lock on a file every netlab process uses.
func lockSubnets() (func(), error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "conq-netlab.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}

// freeSubnet returns an X such that no address or route of this machine
// is in 10.77.X.0/24.
func freeSubnet() (int, error) {
	addrs, err := ip("-4", "-o", "addr", "show")
	if err != nil {
		return 0, err
	}
	routes, err := ip("-4", "route", "show", "table", "all")
	if err != nil {
		return 0, err
	}
	used := map[int]bool{}
	for _, txt := range []string{addrs, routes} {
		for _, f := range strings.Fields(txt) {
			if rest, ok := strings.CutPrefix(f, Subnet); ok {
				if x, err := strconv.Atoi(strings.SplitN(rest, ".", 2)[0]); err == nil {
					used[x] = true
				}
			}
		}
	}
	for x := 1; x < 255; x++ {
		if !used[x] {
			return x, nil
		}
	}
	return 0, fmt.Errorf("every %sX.0/24 is in use", Subnet)
}

// close kills what still runs in the namespaces and deletes them.
func (l *Lab) close() {
	for _, ns := range l.NS {
		if err := deleteNS(ns.Name); err != nil {
			l.tb.Errorf("netlab: %v", err)
		}
	}
}

func deleteNS(name string) error {
	if out, err := ip("netns", "pids", name); err == nil {
		for _, f := range strings.Fields(out) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	_, err := ip("netns", "delete", name)
	return err
}

// CleanLeftovers deletes the namespaces named by this package whose
// creating process is gone, and returns their names.
func CleanLeftovers() ([]string, error) {
	out, err := ip("netns", "list")
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for line := range strings.SplitSeq(out, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		rest, ok := strings.CutPrefix(name, Prefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // its process still runs
		}
		if err := deleteNS(name); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, name)
	}
	return removed, errors.Join(errs...)
}

// Command returns a command that runs name inside the namespace
// (ip netns exec), killed with ctx. ip execs name in place, so killing the
// command's process kills name.
func (ns *Namespace) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// DialContext dials from inside the namespace: the socket is created on an
// OS thread moved into the namespace for the call, so it belongs there
// for its whole life. It fits go-redis's Options.Dialer.
func (ns *Namespace) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// A goroutine of its own: the caller's thread never changes
		// namespace.
		runtime.LockOSThread()
		c, restored, err := ns.dialLocked(ctx, network, addr)
		if restored {
			runtime.UnlockOSThread()
		} // else the thread is in the wrong namespace: it dies with this goroutine
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// dialLocked runs on a locked thread; restored reports whether the thread
// is back in its own namespace.
func (ns *Namespace) dialLocked(ctx context.Context, network, addr string) (c net.Conn, restored bool, err error) {
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		return nil, true, err
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/run/netns", ns.Name))
	if err != nil {
		return nil, true, fmt.Errorf("netlab: namespace %s: %w", ns.Name, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, true, fmt.Errorf("netlab: setns %s: %w", ns.Name, err)
	}
	var d net.Dialer
	c, err = d.DialContext(ctx, network, addr)
	restored = unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil
	return c, restored, err
}
