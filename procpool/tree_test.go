//go:build linux

package procpool

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// gone reports whether pid no longer runs and is not left as a zombie
// child of ours (a subreaper must reap what it adopts).
func gone(pid int) bool {
	if alive(pid) {
		return false
	}
	st, ok := readStat(pid)
	return !ok || st.ppid != os.Getpid()
}

func waitGone(t *testing.T, what string, pids ...int) {
	t.Helper()
	for _, pid := range pids {
		deadline := time.Now().Add(10 * time.Second)
		for !gone(pid) {
			if time.Now().After(deadline) {
				st, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
				t.Fatalf("%s (pid %d) is still there: %s", what, pid, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// modes are the containments that must catch every kind of descendant.
func modes(t *testing.T) []Containment {
	ms := []Containment{ContainSubreaper}
	if j, err := newJail(ContainCgroup, nil); err == nil {
		j.close()
		ms = append([]Containment{ContainCgroup}, ms...)
	} else if os.Getenv("CI") != "" {
		t.Logf("cgroup containment not tested: %v", err)
	}
	return ms
}

func TestTreeKilledOnEveryExit(t *testing.T) {
	exits := []string{"crash", "timeout", "recycle", "shutdown", "killed"}
	for _, mode := range append(modes(t), ContainGroup) {
		kinds := []string{"plain", "setsid", "double", "pipes"}
		if mode == ContainGroup {
			kinds = []string{"plain", "pipes"} // the others leave the group
		}
		for _, kind := range kinds {
			for _, exit := range exits {
				t.Run(mode.String()+"/"+kind+"/"+exit, func(t *testing.T) {
					testTreeExit(t, mode, kind, exit)
				})
			}
		}
	}
}

func testTreeExit(t *testing.T, mode Containment, kind, exit string) {
	cfg := Config{Workers: 1, Containment: mode, CancelGrace: 200 * time.Millisecond}
	switch exit {
	case "timeout":
		cfg.TaskTimeout = 300 * time.Millisecond
	case "recycle":
		cfg.MaxTasksPerWorker = 3
	}
	p, _ := newPool(t, cfg)
	if p.jail.mode != mode {
		t.Fatalf("containment %v, want %v", p.jail.mode, mode)
	}
	wpid, _ := strconv.Atoi(mustCall(t, p, "pid", ""))
	child, err := strconv.Atoi(mustCall(t, p, "spawn", kind))
	if err != nil {
		t.Fatal(err)
	}
	if !alive(child) {
		t.Fatalf("descendant %d not running", child)
	}
	switch exit {
	case "crash":
		var ce *WorkerCrashedError
		if _, err := callT(t, p, "exit", "3"); !errors.As(err, &ce) || ce.ExitCode != 3 {
			t.Fatalf("err = %v, want the crash with exit status 3", err)
		}
	case "timeout":
		if _, err := callT(t, p, "sleep_ignore", "10s"); !errors.Is(err, ErrTaskTimeout) {
			t.Fatalf("err = %v, want ErrTaskTimeout", err)
		}
	case "recycle":
		mustCall(t, p, "echo", "x") // the third and last task of this worker
	case "shutdown":
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := p.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		if p.jail.cgroup != "" {
			if _, err := os.Stat(p.jail.cgroup); !os.IsNotExist(err) {
				t.Errorf("pool cgroup %s left behind: %v", p.jail.cgroup, err)
			}
		}
	case "killed":
		if err := p.procsPIDs(func(pid int) { _ = syscall.Kill(pid, syscall.SIGKILL) }); err != nil {
			t.Fatal(err)
		}
	}
	waitGone(t, "the worker", wpid)
	waitGone(t, "the "+kind+" descendant", child)
	if exit != "shutdown" {
		if got := mustCall(t, p, "pid", ""); got == strconv.Itoa(wpid) {
			t.Fatal("the old worker still serves")
		}
	}
}

// procsPIDs calls fn with each live worker's pid.
func (p *Pool) procsPIDs(fn func(int)) error {
	p.mu.Lock()
	var pids []int
	for pr := range p.procs {
		pids = append(pids, pr.pid)
	}
	p.mu.Unlock()
	if len(pids) == 0 {
		return errors.New("no worker")
	}
	for _, pid := range pids {
		fn(pid)
	}
	return nil
}

func pythonForkConfig(t *testing.T, mode Containment) Config {
	cfg := pythonConfig(t)
	script, _ := filepath.Abs("testdata/forkworker.py")
	cfg.Command[1] = script
	cfg.Workers = 1
	cfg.Containment = mode
	return cfg
}

func jsonString(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

func readPIDs(t *testing.T, path string) []int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, f := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			t.Fatalf("%s: %q", path, b)
		}
		pids = append(pids, pid)
	}
	return pids
}

// The repro: a Python task forks a child that sleeps holding the
// worker's pipes, then the worker exits. The call fails at once as a crash
// (also with a task timeout, which must not be what ends it) and the child
// dies with its worker.
func TestPythonForkThenExit(t *testing.T) {
	for _, mode := range append(modes(t), ContainGroup) {
		for _, timeout := range []time.Duration{0, 3 * time.Second} {
			t.Run(mode.String()+"/timeout="+timeout.String(), func(t *testing.T) {
				cfg := pythonForkConfig(t, mode)
				cfg.TaskTimeout = timeout
				p, _ := newPool(t, cfg)
				pidFile := filepath.Join(t.TempDir(), "pids")
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				_, err := p.Call(ctx, "fork_exit", jsonString(pidFile))
				var ce *WorkerCrashedError
				if !errors.As(err, &ce) || ce.ExitCode != 1 {
					t.Fatalf("err = %v, want *WorkerCrashedError with exit status 1", err)
				}
				waitGone(t, "the forked child", readPIDs(t, pidFile)...)
			})
		}
	}
}

// A daemon's double fork (setsid, orphaned grandchild) escapes the process
// group; the cgroup or the subreaper still finds it, whether the worker
// then crashes or the pool shuts down.
func TestPythonDaemonKilled(t *testing.T) {
	for _, mode := range modes(t) {
		t.Run(mode.String()+"/crash", func(t *testing.T) {
			p, _ := newPool(t, pythonForkConfig(t, mode))
			pidFile := filepath.Join(t.TempDir(), "pids")
			if _, err := callT(t, p, "daemon_exit", string(jsonString(pidFile))); !errors.Is(err, ErrWorkerCrashed) {
				t.Fatalf("err = %v, want a crash", err)
			}
			waitGone(t, "the daemon", readPIDs(t, pidFile)...)
		})
		t.Run(mode.String()+"/shutdown", func(t *testing.T) {
			p, _ := newPool(t, pythonForkConfig(t, mode))
			pidFile := filepath.Join(t.TempDir(), "pids")
			mustCall(t, p, "daemon", string(jsonString(pidFile)))
			pids := readPIDs(t, pidFile)
			if !alive(pids[0]) {
				t.Fatal("the daemon is not running")
			}
			if err := p.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
			waitGone(t, "the daemon", pids...)
		})
	}
}

// The subreaper reaps only the descendants of workers: children that
// os/exec started elsewhere in the program keep their exit status.
func TestSubreaperLeavesOtherChildren(t *testing.T) {
	p, _ := newPool(t, Config{Workers: 1, Containment: ContainSubreaper, MaxTasksPerWorker: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	runs := 0
	wg.Go(func() {
		for ctx.Err() == nil {
			err := exec.Command("sh", "-c", "sleep 0.01; exit 7").Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 7 {
				t.Errorf("own child: %v, want exit status 7", err)
				return
			}
			runs++
		}
	})
	var pids []int
	for range 10 {
		// Each worker leaves an orphan, then is recycled: the reaper kills
		// and reaps the orphans while the loop above runs.
		pid, _ := strconv.Atoi(mustCall(t, p, "spawn", "double"))
		pids = append(pids, pid)
		mustCall(t, p, "echo", "")
	}
	waitGone(t, "an orphan", pids...)
	cancel()
	wg.Wait()
	if runs == 0 {
		t.Fatal("the program's own children never ran")
	}
}

// A member of a worker's process group that leaves the group (setsid) as
// the group is killed dies with neither the group's id nor an environment
// to be recognised by. The tree kill notes the group's members just before
// its kill, and such a member is reaped all the same. Here the member
// leaves the group and exits once it has been noted.
func TestSubreaperReapsAMemberThatLeftTheGroup(t *testing.T) {
	if err := reaper.acquire(); err != nil {
		t.Skipf("no subreaper here: %v", err)
	}
	defer reaper.release()
	leader := exec.Command("sleep", "120")
	leader.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = leader.Process.Kill(); _ = leader.Wait() }()
	// Not a group leader, setsid(1) calls setsid() itself, with no fork.
	member := exec.Command("sh", "-c", "read x; exec setsid true")
	member.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pgid: leader.Process.Pid}
	in, err := member.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := member.Start(); err != nil {
		t.Fatal(err)
	}
	pid := member.Process.Pid
	defer func() { _ = member.Process.Kill() }()
	reaper.noteGroup(leader.Process.Pid)
	if _, err := in.Write([]byte("\n")); err != nil {
		t.Fatal(err)
	}
	waitGone(t, "the member that left the group", pid)
}

// A descendant the reaper took for a live worker's, and that the worker's
// tree kill then missed (the kill reads environments, and one cannot be
// read during an execve), is killed by a later sweep once the worker is
// gone. Here the child's worker "dies" by its token being marked dead.
func TestSubreaperKillsAKnownChildOfADeadWorker(t *testing.T) {
	if err := reaper.acquire(); err != nil {
		t.Skipf("no subreaper here: %v", err)
	}
	defer reaper.release()
	tok := "test-known-child-token"
	reaper.mu.Lock()
	reaper.tokens[tok] = true
	reaper.mu.Unlock()
	defer func() {
		reaper.mu.Lock()
		delete(reaper.tokens, tok)
		reaper.mu.Unlock()
	}()
	cmd := exec.Command("sleep", "120")
	cmd.Env = append(os.Environ(), envTreeToken+"="+tok)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	defer func() { _ = cmd.Process.Kill() }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		reaper.kick()
		reaper.mu.Lock()
		_, known := reaper.known[pid]
		reaper.mu.Unlock()
		if known {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the reaper never took the child for a live worker's")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !alive(pid) {
		t.Fatal("the child of a live worker was killed")
	}
	reaper.mu.Lock()
	reaper.tokens[tok] = false
	reaper.mu.Unlock()
	reaper.kick()
	waitGone(t, "the child of a dead worker", pid)
}

// statFields is the reference parse of a stat line, by strings.Fields.
func statFields(b []byte) (procStat, bool) {
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return procStat{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procStat{}, false
	}
	var st procStat
	var err error
	st.zombie = f[0] == "Z"
	if st.ppid, err = strconv.Atoi(f[1]); err != nil || st.ppid < 0 {
		st.ppid = 0
	}
	if st.pgrp, err = strconv.Atoi(f[2]); err != nil || st.pgrp < 0 {
		st.pgrp = 0
	}
	if st.start, err = strconv.ParseUint(f[19], 10, 63); err != nil {
		st.start = 0
	}
	return st, true
}

// parseStat reads every process of this machine as the reference parse
// does, and a zombie's line with a comm of spaces and parentheses.
func TestParseStat(t *testing.T) {
	zombie := []byte("4242 (a) b (c)) Z 1 4242 4242 0 -1 4228108 98 0 0 0 0 0 0 0 20 0 1 0 785857 0 0 18446744073709551615 0 0\n")
	st, ok := parseStat(zombie)
	if !ok || !st.zombie || st.ppid != 1 || st.pgrp != 4242 || st.start != 785857 {
		t.Fatalf("parseStat(%q) = %+v, %v", zombie, st, ok)
	}
	n := 0
	for _, pid := range allPIDs() {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		got, ok := parseStat(b)
		want, wok := statFields(b)
		if got != want || ok != wok {
			t.Fatalf("parseStat(%q) = %+v, %v; want %+v, %v", b, got, ok, want, wok)
		}
		n++
	}
	if n == 0 {
		t.Fatal("no process read")
	}
	if st, ok := readStat(os.Getpid()); !ok || st.ppid != os.Getppid() || st.zombie {
		t.Fatalf("readStat(self) = %+v, %v; want ppid %d", st, ok, os.Getppid())
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("1 (systemd) S 0 1 1 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 10 0 0\n"))
	f.Add([]byte("7 (x y) Z 1 2 3"))
	f.Add([]byte(") R 99999999999999999999999 -5 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := parseStat(b)
		// The reference also splits on other spaces and takes a sign; the
		// kernel writes neither, so compare lines of the kernel's bytes.
		for _, c := range b {
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || strings.IndexByte(" \n()-", c) >= 0) {
				return
			}
		}
		want, wok := statFields(b)
		if got != want || ok != wok {
			t.Fatalf("parseStat(%q) = %+v, %v; want %+v, %v", b, got, ok, want, wok)
		}
	})
}

// The two scans of every process of the machine that a worker's exit costs
// in subreaper mode: its group's members noted, then its token's holders
// killed (here none match). Results in docs/benchmarks.md.
func BenchmarkSubreaperExitScans(b *testing.B) {
	for b.Loop() {
		reaper.noteGroup(1 << 30)
		reaper.killTree("no-such-token", 1<<30)
	}
	b.ReportMetric(float64(len(allPIDs())), "procs")
}
