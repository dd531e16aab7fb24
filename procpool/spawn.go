package procpool

import (
	"os/exec"
	"runtime"
	"sync"
)

// Pdeathsig fires when the thread that forked the child exits, not the
// process (golang/go#27505), and a Go program can lose a thread whenever a
// goroutine that locked one exits. So workers are forked from one thread
// that is locked to a goroutine which never exits.
var (
	spawnOnce sync.Once
	spawnReqs chan spawnReq
)

type spawnReq struct {
	cmd  *exec.Cmd
	done chan error
}

// startCmd starts cmd from the spawner thread.
func startCmd(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnReqs = make(chan spawnReq)
		go spawnLoop(spawnReqs)
	})
	req := spawnReq{cmd: cmd, done: make(chan error, 1)}
	spawnReqs <- req
	return <-req.done
}

func spawnLoop(reqs <-chan spawnReq) {
	runtime.LockOSThread() // never unlocked: the thread lives as long as the process
	for req := range reqs {
		req.done <- req.cmd.Start()
	}
}
