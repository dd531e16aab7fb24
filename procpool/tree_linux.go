package procpool

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A worker's process tree on Linux. Every worker gets a process group of
// its own and Pdeathsig; on top of that the pool's Containment finds the
// descendants that leave the group:
//
//   - cgroup: each worker is cloned straight into a cgroup v2 of its own
//     (CLONE_INTO_CGROUP, so even its first instruction runs inside), a
//     child of one cgroup per pool created under the pool's own cgroup.
//     Killing the tree writes cgroup.kill; setsid and double forks stay in
//     the cgroup. Descendants are not our children, so their parents (or
//     init) reap them.
//   - subreaper: the pool's process is a child subreaper, so orphans of a
//     worker's tree are reparented to it instead of to init. Each worker's
//     environment carries a random token (envTreeToken) that its
//     descendants inherit; killing the tree kills the group and every
//     process whose environment holds the token. Orphans adopted this way
//     are our children and must be reaped by us, but os/exec reaps the
//     children it started and a wait for any child would steal their exit
//     status, so the reaper waits only for pids it has recognised as
//     descendants of a worker (group or token), never for others.
//   - group: the process group only.
//
// The kill on a worker's exit happens while the worker is a zombie (seen
// with waitid WNOWAIT, before os/exec reaps it): the zombie keeps its pid,
// so the process group id cannot have been reused by an unrelated group.

// envTreeToken names the environment variable that marks a worker's
// descendants in subreaper mode.
const envTreeToken = "CONQ_WORKER_TOKEN"

// jail is a pool's containment.
type jail struct {
	mode    Containment // resolved: ContainCgroup, ContainSubreaper or ContainGroup
	cgroup  string      // the pool's cgroup directory (cgroup mode)
	canKill bool        // cgroup.kill exists (Linux 5.14); else freeze and kill each
	log     *slog.Logger
	closed  bool
}

// cgroupSeq numbers the pools' cgroups within the process.
var cgroupSeq atomic.Int64

// forceContainment lets tests pick the fallback on machines where
// cgroups work; ContainAuto means no override.
var forceContainment Containment

func newJail(want Containment, log *slog.Logger) (*jail, error) {
	if forceContainment != ContainAuto && want == ContainAuto {
		want = forceContainment
	}
	j := &jail{log: log, mode: ContainGroup}
	switch want {
	case ContainGroup:
		return j, nil
	case ContainAuto, ContainCgroup:
		dir, err := makePoolCgroup()
		if err == nil {
			j.mode, j.cgroup = ContainCgroup, dir
			_, err := os.Stat(filepath.Join(dir, "cgroup.kill"))
			j.canKill = err == nil
			return j, nil
		}
		if want == ContainCgroup {
			return nil, fmt.Errorf("procpool: Containment cgroup: %w", err)
		}
		log.Debug("procpool: no cgroup for the workers; using a subreaper", "reason", err)
	}
	if err := reaper.acquire(); err != nil {
		if want == ContainSubreaper {
			return nil, fmt.Errorf("procpool: Containment subreaper: %w", err)
		}
		log.Warn("procpool: cannot become a child subreaper; descendants that leave a worker's process group may outlive it", "err", err)
		return j, nil
	}
	j.mode = ContainSubreaper
	return j, nil
}

// close releases the pool's cgroup or its hold on the subreaper. Every
// tree must have been released.
func (j *jail) close() {
	if j.closed {
		return
	}
	j.closed = true
	switch j.mode {
	case ContainCgroup:
		if err := removeCgroup(j.cgroup, j.canKill); err != nil {
			j.log.Warn("procpool: removing the pool's cgroup", "dir", j.cgroup, "err", err)
		}
	case ContainSubreaper:
		reaper.release()
	}
}

// ownCgroup returns the directory of this process's cgroup v2.
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", err
	}
	var rel string
	found := false
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			rel, found = p, true
		}
	}
	if !found {
		return "", errors.New("no cgroup v2 (no 0:: line in /proc/self/cgroup)")
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(mi), "\n") {
		// id parent major:minor root mountpoint options ... - fstype source superopts
		pre, post, ok := strings.Cut(line, " - ")
		if !ok || !strings.HasPrefix(post, "cgroup2 ") {
			continue
		}
		f := strings.Fields(pre)
		if len(f) < 5 {
			continue
		}
		root, mnt := unescapeMount(f[3]), unescapeMount(f[4])
		p := rel
		if root != "/" {
			var ok bool
			if p, ok = strings.CutPrefix(rel, root); !ok {
				continue
			}
		}
		dir := filepath.Join(mnt, p)
		if st, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err == nil && st.Mode().IsRegular() {
			return dir, nil
		}
	}
	return "", errors.New("the cgroup v2 hierarchy is not mounted")
}

// unescapeMount undoes mountinfo's octal escapes of spaces and the like.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// makePoolCgroup creates this pool's cgroup under the process's own, after
// clearing what pools of dead processes left there.
func makePoolCgroup() (string, error) {
	own, err := ownCgroup()
	if err != nil {
		return "", err
	}
	cleanStaleCgroups(own)
	dir := filepath.Join(own, fmt.Sprintf("conq-%d-%d", os.Getpid(), cgroupSeq.Add(1)))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", err
	}
	// Being able to create it is not enough: moving a process in needs
	// write access to cgroup.procs of the common ancestor, our own cgroup.
	if err := unix.Access(filepath.Join(own, "cgroup.procs"), unix.W_OK); err != nil {
		_ = os.Remove(dir)
		return "", fmt.Errorf("%s/cgroup.procs is not writable: %w", own, err)
	}
	return dir, nil
}

// cleanStaleCgroups kills what is left in the cgroups of pools whose
// process died without cleaning up (SIGKILL, a crash) and removes them.
func cleanStaleCgroups(own string) {
	ents, err := os.ReadDir(own)
	if err != nil {
		return
	}
	for _, e := range ents {
		var pid, seq int
		if !e.IsDir() {
			continue
		}
		if n, _ := fmt.Sscanf(e.Name(), "conq-%d-%d", &pid, &seq); n != 2 || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // its pool's process lives
		}
		_, err := os.Stat(filepath.Join(own, e.Name(), "cgroup.kill"))
		_ = removeCgroup(filepath.Join(own, e.Name()), err == nil)
	}
}

// removeCgroup kills everything in dir and its children and removes them.
func removeCgroup(dir string, canKill bool) error {
	ents, _ := os.ReadDir(dir)
	var errs []error
	for _, e := range ents {
		if e.IsDir() {
			errs = append(errs, removeCgroup(filepath.Join(dir, e.Name()), canKill))
		}
	}
	if populated(dir) {
		killCgroup(dir, canKill)
		waitEmpty(dir, 2*time.Second)
	}
	if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// killCgroup SIGKILLs every process in the cgroup dir and below.
func killCgroup(dir string, canKill bool) {
	if canKill {
		if os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0) == nil {
			return
		}
	}
	// Before Linux 5.14: freeze so that nothing forks while we kill (a
	// frozen process still dies of SIGKILL), kill each, thaw.
	_ = os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("1"), 0)
	for range 100 {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil || len(bytes.TrimSpace(b)) == 0 {
			break
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(time.Millisecond)
	}
	_ = os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte("0"), 0)
}

// populated reports whether a cgroup still has live processes in it or
// below it.
func populated(dir string) bool {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("populated 1"))
}

func waitEmpty(dir string, limit time.Duration) bool {
	deadline := time.Now().Add(limit)
	for d := 100 * time.Microsecond; populated(dir); d = min(2*d, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(d)
	}
	return true
}

// tree is one worker's process tree.
type tree struct {
	j     *jail
	pid   int
	cgDir string // the worker's cgroup, "" if none
	cgFD  int    // its directory, open until the worker is started; -1 after
	token string // subreaper mode

	mu     sync.Mutex
	reaped bool // os/exec has reaped the worker: its pid (the group id) may be reused
}

// newTree prepares the tree of worker id before it starts.
func (j *jail) newTree(id int) (*tree, error) {
	t := &tree{j: j, cgFD: -1}
	switch j.mode {
	case ContainCgroup:
		t.cgDir = filepath.Join(j.cgroup, "w"+strconv.Itoa(id))
		if err := os.Mkdir(t.cgDir, 0o755); err != nil {
			return nil, fmt.Errorf("creating the worker's cgroup: %w", err)
		}
		fd, err := unix.Open(t.cgDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			_ = os.Remove(t.cgDir)
			return nil, fmt.Errorf("opening the worker's cgroup: %w", err)
		}
		t.cgFD = fd
	case ContainSubreaper:
		var b [16]byte
		_, _ = rand.Read(b[:])
		t.token = hex.EncodeToString(b[:])
	}
	return t, nil
}

// env is what the worker's environment needs for the tree.
func (t *tree) env() []string {
	if t.token == "" {
		return nil
	}
	return []string{envTreeToken + "=" + t.token}
}

// sysProcAttr puts the worker in its own process group (a terminal's
// Ctrl-C reaches the pool, which then shuts down in order) and in its
// cgroup, and has the kernel kill it when the pool's process dies, however
// it dies.
func (t *tree) sysProcAttr() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if t.cgFD >= 0 {
		a.UseCgroupFD, a.CgroupFD = true, t.cgFD
	}
	return a
}

// start starts the worker of this tree: start runs the command with the
// attributes given and returns its pid.
func (t *tree) start(start func(*syscall.SysProcAttr) (int, error)) error {
	if t.j.mode == ContainSubreaper {
		// The reaper must know the worker is os/exec's to wait for before
		// it can find it among its children.
		reaper.mu.Lock()
		defer reaper.mu.Unlock()
	}
	pid, err := start(t.sysProcAttr())
	if err != nil && t.cgFD >= 0 {
		// clone3 into a cgroup can be refused (an old kernel, a cgroup
		// that is not a domain, a policy); move it in after the start.
		t.j.log.Debug("procpool: starting the worker in its cgroup failed; moving it in after the start", "err", err)
		unix.Close(t.cgFD)
		t.cgFD = -1
		if pid, err = start(t.sysProcAttr()); err == nil {
			if werr := os.WriteFile(filepath.Join(t.cgDir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0); werr != nil {
				t.j.log.Warn("procpool: cannot move the worker into its cgroup; descendants that leave its process group may outlive it", "err", werr)
			}
		}
	}
	if t.cgFD >= 0 {
		unix.Close(t.cgFD)
		t.cgFD = -1
	}
	if err != nil {
		if t.cgDir != "" {
			_ = os.Remove(t.cgDir)
		}
		return err
	}
	t.pid = pid
	if t.token != "" {
		reaper.leaders[pid] = struct{}{}
		reaper.tokens[t.token] = true
	}
	return nil
}

// wait waits for the worker to exit, kills its tree while the worker is a
// zombie (its pid, the group id, cannot be reused yet), then reaps it with
// os/exec's wait.
func (t *tree) wait(wait func() error) {
	var info unix.Siginfo
	for {
		if err := unix.Waitid(unix.P_PID, t.pid, &info, unix.WEXITED|unix.WNOWAIT, nil); err != unix.EINTR {
			break
		}
	}
	t.kill()
	t.mu.Lock()
	t.reaped = true
	t.mu.Unlock()
	_ = wait()
}

// kill SIGKILLs the worker and every descendant the containment knows.
// Safe to call at any time, from any goroutine, more than once.
func (t *tree) kill() {
	if t.pid == 0 {
		return
	}
	t.mu.Lock()
	if !t.reaped {
		if t.token != "" {
			reaper.noteGroup(t.pid)
		}
		_ = syscall.Kill(-t.pid, syscall.SIGKILL)
	}
	t.mu.Unlock()
	switch {
	case t.cgDir != "":
		killCgroup(t.cgDir, t.j.canKill)
	case t.token != "":
		reaper.killTree(t.token, t.pid)
	}
}

// release runs once the worker has been reaped and its tree killed: it
// removes the worker's cgroup once it is empty.
func (t *tree) release() {
	switch {
	case t.cgDir != "":
		if !waitEmpty(t.cgDir, 2*time.Second) {
			killCgroup(t.cgDir, t.j.canKill) // something forked in between
			waitEmpty(t.cgDir, 2*time.Second)
		}
		if err := os.Remove(t.cgDir); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.j.log.Warn("procpool: removing a worker's cgroup", "dir", t.cgDir, "err", err)
		}
	case t.token != "":
		reaper.mu.Lock()
		delete(reaper.leaders, t.pid)
		if t.pid != 0 {
			reaper.groups[t.pid] = struct{}{}
			reaper.tokens[t.token] = false // its descendants are to be killed on sight
			reaper.dead = append(reaper.dead, t.token)
			if len(reaper.dead) > 1024 {
				delete(reaper.tokens, reaper.dead[0])
				reaper.dead = reaper.dead[1:]
			}
		}
		reaper.mu.Unlock()
		reaper.kick()
	}
}

// The reaper serves every pool of the process in subreaper mode.
var reaper = reaperState{
	leaders: map[int]struct{}{},
	tokens:  map[string]bool{},
	known:   map[int]uint64{},
	foreign: map[int]uint64{},
	groups:  map[int]struct{}{},
}

type reaperState struct {
	mu      sync.Mutex
	users   int
	ours    bool          // we set PR_SET_CHILD_SUBREAPER (and will clear it)
	stop    chan struct{} // ends the loop
	done    chan struct{}
	wake    chan struct{}
	leaders map[int]struct{} // workers: os/exec reaps them
	tokens  map[string]bool  // tokens issued: true while the worker lives
	dead    []string         // tokens of dead workers, oldest first
	known   map[int]uint64   // descendants of workers, by pid, with their start time: ours to reap once adopted
	groups  map[int]struct{} // process groups of reaped workers with members among our children
	foreign map[int]uint64   // other children, by pid, with their start time
}

func (r *reaperState) acquire() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users == 0 {
		var flag int32
		if _, _, e := syscall.Syscall6(syscall.SYS_PRCTL, unix.PR_GET_CHILD_SUBREAPER, uintptr(unsafe.Pointer(&flag)), 0, 0, 0, 0); e != 0 {
			return fmt.Errorf("prctl(PR_GET_CHILD_SUBREAPER): %w", e)
		}
		if flag == 0 {
			if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
				return fmt.Errorf("prctl(PR_SET_CHILD_SUBREAPER): %w", err)
			}
			r.ours = true
		}
		r.stop, r.done, r.wake = make(chan struct{}), make(chan struct{}), make(chan struct{}, 1)
		go r.loop(r.stop, r.done, r.wake)
	}
	r.users++
	return nil
}

func (r *reaperState) release() {
	r.mu.Lock()
	r.users--
	if r.users > 0 {
		r.mu.Unlock()
		return
	}
	stop, done := r.stop, r.done
	r.mu.Unlock()
	close(stop)
	<-done
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users == 0 && r.ours {
		// Orphans adopted so far stay our children; new ones go to init.
		_ = unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
		r.ours = false
	}
}

// kick asks the loop for a sweep.
func (r *reaperState) kick() {
	r.mu.Lock()
	w := r.wake
	r.mu.Unlock()
	if w != nil {
		select {
		case w <- struct{}{}:
		default:
		}
	}
}

// loop sweeps our children when one dies (SIGCHLD), when asked, and every
// second, for descendants adopted after their worker's tree was killed.
func (r *reaperState) loop(stop, done, wake chan struct{}) {
	defer close(done)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGCHLD)
	defer signal.Stop(sig)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			// The last pool is closing: every worker's tree has been
			// killed, so what is known is dying; reap it before leaving.
			deadline := time.Now().Add(2 * time.Second)
			for d := 100 * time.Microsecond; ; d = min(2*d, 20*time.Millisecond) {
				r.sweep()
				r.mu.Lock()
				left := len(r.known)
				r.mu.Unlock()
				if left == 0 || time.Now().After(deadline) {
					return
				}
				time.Sleep(d)
			}
		case <-sig:
		case <-wake:
		case <-tick.C:
		}
		r.sweep()
	}
}

// sweep reaps the dead among the known descendants, recognises the
// children it has not seen, and kills those whose worker is gone.
func (r *reaperState) sweep() {
	r.mu.Lock()
	defer r.mu.Unlock()
	self := os.Getpid()
	seen := make(map[int]bool)
	inGroup := make(map[int]bool)
	for _, c := range childrenOf(self) {
		seen[c] = true
		if _, ok := r.leaders[c]; ok {
			continue // os/exec's to reap
		}
		st, ok := readStat(c)
		if !ok || st.ppid != self {
			continue
		}
		inGroup[st.pgrp] = true
		if t, ok := r.known[c]; ok && t == st.start {
			if !st.zombie {
				// Known while its worker lived, it can have escaped that
				// worker's tree kill: the kill finds a process by its
				// environment, which cannot be read during an execve.
				if mine, live, _ := r.classify(c, st); mine && !live {
					_ = syscall.Kill(c, syscall.SIGKILL)
				}
			}
			r.reap(c)
			continue
		}
		if t, ok := r.foreign[c]; ok && t == st.start {
			continue
		}
		mine, live, sure := r.classify(c, st)
		if !mine {
			if sure {
				r.foreign[c] = st.start
			}
			continue
		}
		r.known[c] = st.start
		if !live {
			_ = syscall.Kill(c, syscall.SIGKILL) // its worker is gone
		}
		r.reap(c)
	}
	for pid := range r.foreign {
		if !seen[pid] {
			delete(r.foreign, pid)
		}
	}
	for pid, start := range r.known {
		if seen[pid] {
			continue
		}
		// Not (yet) our child: keep it while it lives, as the process it
		// was, for when its parent dies and it is reparented to us.
		if st, ok := readStat(pid); !ok || st.start != start {
			delete(r.known, pid)
		}
	}
	for g := range r.groups {
		// With no member among our children left, the group id may be
		// reused: forget it.
		if !inGroup[g] {
			delete(r.groups, g)
		}
	}
}

// classify tells whether a child of ours descends from a worker (its
// environment holds one of our tokens, or it sits in a worker's group) and
// whether that worker still lives. sure is false when the environment could
// not be read (an execve in progress, a zombie): the answer may change.
func (r *reaperState) classify(pid int, st procStat) (mine, live, sure bool) {
	tok, read := readEnvironToken(pid)
	if tok != "" {
		if live, ok := r.tokens[tok]; ok {
			return true, live, true
		}
	}
	// A zombie has no environment left. A group id lives as long as the
	// group has a member, so while a worker is unreaped, or one of our
	// children is still in its group, that group id is the worker's.
	if _, ok := r.leaders[st.pgrp]; ok {
		return true, true, true
	}
	if _, ok := r.groups[st.pgrp]; ok {
		return true, false, true
	}
	return false, false, read && !st.zombie
}

// reap waits for a known descendant if it is a zombie.
func (r *reaperState) reap(pid int) {
	var ws unix.WaitStatus
	got, err := unix.Wait4(pid, &ws, unix.WNOHANG, nil)
	if got == pid || err == unix.ECHILD {
		delete(r.known, pid)
	}
}

// killTree kills every process whose environment holds token (and the
// children of ours in the worker's group) and marks those that are our
// children for reaping.
func (r *reaperState) killTree(token string, leader int) {
	self := os.Getpid()
	for range 10 { // again while they fork under us
		killed := 0
		for _, pid := range allPIDs() {
			if pid == self || pid == leader {
				continue
			}
			// Most processes are not the tree's: a pidfd only for those
			// whose environment holds the token, read again once pinned.
			if environToken(pid) != token {
				continue
			}
			pfd, err := unix.PidfdOpen(pid, 0)
			if err != nil {
				continue
			}
			// The pidfd pins the process: what we read is about the one we
			// signal, even if the pid is reused meanwhile.
			if environToken(pid) == token {
				// Read before the kill: a zombie's start time is still
				// there, but the window for reuse is then closed.
				st, ok := readStat(pid)
				if unix.PidfdSendSignal(pfd, unix.SIGKILL, nil, 0) == nil {
					killed++
					if ok {
						// Whoever its parent is now, it may become ours
						// to reap when that parent dies.
						r.mu.Lock()
						if _, ok := r.leaders[pid]; !ok {
							r.known[pid] = st.start
						}
						r.mu.Unlock()
					}
				}
			}
			unix.Close(pfd)
		}
		if killed == 0 {
			break
		}
	}
	r.kick()
}

// noteGroup records the members of a worker's process group as
// descendants to reap, just before the group is killed. A member that is
// leaving the group (setsid) as the kill lands dies with neither the
// group's id nor an environment to be recognised by; unrecorded, it would
// stay our zombie until the program exits. /proc/<pid>/stat, unlike the
// environment, can be read at any time, even during an execve.
func (r *reaperState) noteGroup(pgrp int) {
	self := os.Getpid()
	members := map[int]uint64{}
	for _, pid := range allPIDs() {
		if pid == pgrp || pid == self {
			continue
		}
		if st, ok := readStat(pid); ok && st.pgrp == pgrp {
			members[pid] = st.start
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for pid, start := range members {
		if _, ok := r.leaders[pid]; !ok {
			r.known[pid] = start
		}
	}
}

// environToken returns the tree token in a process's environment, "" if
// none or unreadable.
func environToken(pid int) string {
	tok, _ := readEnvironToken(pid)
	return tok
}

// readEnvironToken is environToken, also telling whether the environment
// could be read at all: it cannot during an execve or once the process is a
// zombie.
func readEnvironToken(pid int) (string, bool) {
	var path [40]byte
	var buf [4096]byte
	b, ok := readProc(procPath(path[:0], pid, "environ"), buf[:0])
	if !ok || len(b) == 0 {
		return "", false
	}
	for len(b) > 0 {
		kv := b
		if i := bytes.IndexByte(b, 0); i >= 0 {
			kv, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if v, ok := bytes.CutPrefix(kv, []byte(envTreeToken+"=")); ok {
			return string(v), true
		}
	}
	return "", true
}

type procStat struct {
	ppid, pgrp int
	start      uint64
	zombie     bool
}

// procPath appends /proc/<pid>/<name> to b.
func procPath(b []byte, pid int, name string) []byte {
	b = strconv.AppendInt(append(b, "/proc/"...), int64(pid), 10)
	return append(append(b, '/'), name...)
}

// readProc appends the whole of a /proc file to buf. The reaper reads
// files of every process of the machine on each tree kill, so callers pass
// a buffer on their stack, and it costs open, reads and close (os.ReadFile
// adds an fstat, and allocates).
func readProc(path []byte, buf []byte) ([]byte, bool) {
	fd, err := unix.Open(string(path), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, false
	}
	defer unix.Close(fd)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		if err != nil {
			return nil, false
		}
		if n == 0 {
			return buf, true
		}
		buf = buf[:len(buf)+n]
	}
}

// readStat reads the fields of /proc/<pid>/stat the reaper needs (the file
// is well under 1 KiB) and parses them without allocating.
func readStat(pid int) (procStat, bool) {
	var path [40]byte
	var buf [1024]byte
	b, ok := readProc(procPath(path[:0], pid, "stat"), buf[:0])
	if !ok {
		return procStat{}, false
	}
	return parseStat(b)
}

// parseStat parses a /proc/<pid>/stat line: "pid (comm) state ppid pgrp
// session ..." with the start time as field 22. comm may hold spaces and
// parentheses, so the fields start after the last ')'.
func parseStat(b []byte) (procStat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, false
	}
	b = b[i+1:]
	var st procStat
	for k := 0; k < 20; k++ {
		for len(b) > 0 && (b[0] == ' ' || b[0] == '\n') {
			b = b[1:]
		}
		j := 0
		for j < len(b) && b[j] != ' ' && b[j] != '\n' {
			j++
		}
		if j == 0 {
			return procStat{}, false // fewer fields than a stat line has
		}
		f := b[:j]
		b = b[j:]
		switch k {
		case 0:
			st.zombie = len(f) == 1 && f[0] == 'Z'
		case 1:
			st.ppid = atoiBytes(f)
		case 2:
			st.pgrp = atoiBytes(f)
		case 19:
			st.start = uint64(atoiBytes(f))
		}
	}
	return st, true
}

// atoiBytes is strconv.Atoi for the kernel's decimal fields, without the
// string: 0 for anything that is not a non-negative decimal that fits.
func atoiBytes(b []byte) int {
	n := 0
	for _, c := range b {
		d := int(c - '0')
		if c < '0' || c > '9' || n > (math.MaxInt-d)/10 {
			return 0
		}
		n = n*10 + d
	}
	return n
}

// childrenOf lists a process's children, from the per-thread children
// files when the kernel has them, otherwise from every process's parent.
func childrenOf(pid int) []int {
	base := "/proc/" + strconv.Itoa(pid) + "/task"
	tasks, err := os.ReadDir(base)
	var out []int
	ok := err == nil
	for _, t := range tasks {
		b, err := os.ReadFile(filepath.Join(base, t.Name(), "children"))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				if _, serr := os.Stat(filepath.Join(base, t.Name())); serr == nil {
					ok = false // CONFIG_PROC_CHILDREN is off
					break
				}
			}
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
			}
		}
	}
	if ok {
		return out
	}
	out = out[:0]
	for _, c := range allPIDs() {
		if st, ok := readStat(c); ok && st.ppid == pid {
			out = append(out, c)
		}
	}
	return out
}

func allPIDs() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	pids := make([]int, 0, len(ents))
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}
