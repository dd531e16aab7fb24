// Command slotworker is a Go SDK worker for the conq map tests: its task
// "barrier" answers only once as many calls as its argument says run at
// once in this process (or fails after 20s).
package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/conqhq/conq/procpool/worker"
)

func main() {
	var mu sync.Mutex
	cond := sync.NewCond(&mu)
	running := 0
	worker.HandleJSON("barrier", func(_ context.Context, want int) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		running++
		cond.Broadcast()
		stop := time.AfterFunc(20*time.Second, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
		defer stop.Stop()
		start := time.Now()
		for running < want && time.Since(start) < 20*time.Second {
			cond.Wait()
		}
		if running < want {
			return 0, fmt.Errorf("only %d calls at once, want %d", running, want)
		}
		return os.Getpid(), nil
	})
	if err := worker.Run(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
