package procexec_test

import (
	"context"
	"log"

	"github.com/conqhq/conq/procpool"
	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
	"github.com/conqhq/conq/queue/procexec"
)

// Serve the "resize" and "thumbnail" kinds with a Python module of
// @conq.task handlers of those names.
func ExampleHandler() {
	ctx := context.Background()
	pool, err := procpool.New(ctx, procpool.Config{Command: []string{"python3", "tasks.py"}, Workers: 4})
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	w, err := queue.NewWorker(memory.New(memory.Config{}), queue.WorkerConfig{Concurrency: 4})
	if err != nil {
		log.Fatal(err)
	}
	h := procexec.Handler(pool)
	w.Handle("resize", h)
	w.Handle("thumbnail", h)
	if err := w.Run(ctx); err != nil {
		log.Fatal(err)
	}
}
