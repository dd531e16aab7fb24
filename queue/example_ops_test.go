package queue_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
)

func ExampleScheduler() {
	b := memory.New(memory.Config{})
	defer b.Close()
	s, _ := queue.NewScheduler(b, queue.SchedulerConfig{Missed: queue.MissedRunOnce})
	_, err := s.RegisterEntry(queue.Entry{
		Name: "nightly-report",
		Spec: "CRON_TZ=Europe/Paris 0 30 2 * * *", // 02:30:00, Paris time
		Task: queue.NewTask("report.nightly", nil),
	})
	fmt.Println(err)
	_, err = s.Register("* * *", queue.NewTask("k", nil))
	fmt.Println(err)
	// Output:
	// <nil>
	// queue: periodic entry of kind "k": spec "* * *": expected 5 to 6 fields, found 3: [* * *]: invalid option
}

func ExampleUnique() {
	b := memory.New(memory.Config{})
	defer b.Close()
	client, _ := queue.NewClient(b, queue.ClientConfig{})
	ctx := context.Background()
	task := queue.NewTask("email.welcome", []byte(`{"user":42}`), queue.Unique(time.Hour))
	_, err := client.Enqueue(ctx, task)
	fmt.Println(err)
	_, err = client.Enqueue(ctx, task)
	fmt.Println(errors.Is(err, queue.ErrDuplicateTask))
	// Output:
	// <nil>
	// true
}

func ExampleLimit() {
	b := memory.New(memory.Config{})
	defer b.Close()
	_, err := queue.NewWorker(b, queue.WorkerConfig{
		Limits: map[string]queue.Limit{
			"api.call": {Rate: 20},       // 20 starts a second across all workers
			"render":   {Concurrency: 2}, // 2 at once across all workers
		},
	})
	fmt.Println(err)
	// Output: <nil>
}
