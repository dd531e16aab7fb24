//go:build !linux

package procpool

import (
	"fmt"
	"log/slog"
	"os"
	"sync"
	"syscall"
)

func growPipe(*os.File, int) {}

// Without Linux there is no cgroup, no subreaper and no way to see a
// worker's exit before reaping it: the pool kills the worker's process
// group when it kills the worker, and workers rely on seeing end of file
// on their request descriptor when the pool's process dies.
type jail struct{ mode Containment }

var forceContainment Containment

func newJail(want Containment, _ *slog.Logger) (*jail, error) {
	if want == ContainCgroup || want == ContainSubreaper {
		return nil, fmt.Errorf("procpool: Containment %v needs Linux", want)
	}
	return &jail{mode: ContainGroup}, nil
}

func (j *jail) close() {}

type tree struct {
	pid    int
	mu     sync.Mutex
	reaped bool
}

func (j *jail) newTree(int) (*tree, error) { return &tree{}, nil }
func (t *tree) env() []string              { return nil }

func (t *tree) start(start func(*syscall.SysProcAttr) (int, error)) error {
	pid, err := start(&syscall.SysProcAttr{Setpgid: true})
	t.pid = pid
	return err
}

// wait reaps the worker with os/exec's wait. There is no way here to see
// the exit before reaping, so the group is not killed on the way out.
func (t *tree) wait(wait func() error) {
	_ = wait()
	t.mu.Lock()
	t.reaped = true
	t.mu.Unlock()
}

func (t *tree) kill() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pid != 0 && !t.reaped {
		_ = syscall.Kill(-t.pid, syscall.SIGKILL)
	}
}

func (t *tree) release() {}
