// Package queue is conq's distributed task queue: a Client enqueues tasks
// into a broker (queue/broker/memory in process, or Redis), Workers in any
// number of processes fetch and run them, and an Inspector looks after the
// queues.
//
//	b := memory.New(memory.Config{})
//	client, _ := queue.NewClient(b, queue.ClientConfig{})
//	info, _ := queue.EnqueueJSON(ctx, client, "email.send", Email{To: "a@b"}, queue.Retention(time.Hour))
//
//	w, _ := queue.NewWorker(b, queue.WorkerConfig{Concurrency: 20})
//	queue.HandleJSON(w, "email.send", func(ctx context.Context, e Email) (struct{}, error) { ... })
//	go w.Run(ctx)
//
//	res, err := client.Result(ctx, info.ID) // the remote counterpart of future.Future.Result
//
// Delivery is at least once: a fetched task is leased, the lease is renewed
// while its handler runs, and a task whose worker died is recovered when
// the lease expires, so handlers should be idempotent. Fencing tokens keep
// a worker that lost a lease from recording an outcome. Failed attempts are
// retried with exponential backoff and jitter; after the last retry, or on
// SkipRetry, the task is dead and kept with its error history. See
// docs/queue.md for the full design.
//
// A Scheduler enqueues periodic tasks, each tick once however many run;
// Unique rejects duplicates; WorkerConfig.Limits caps a kind's concurrency
// and rate across workers (docs/operations.md).
//
// # Policy, written down
//
//   - The front is small: Client, Worker, Scheduler, Inspector, Task and
//     its options. The machinery is in queue/internal (engine, acker, lease,
//     maint, heartbeat, check), the storage contract in queue/broker, and
//     the written-down form of a task (JSON, YAML, schedule files) in
//     queue/spec.
//   - The clock is the broker's (Broker.Clock): nothing here takes a clock
//     of its own.
//   - Start(ctx) passes ctx's values to handlers and broker calls, never its
//     cancellation; Shutdown (or Run, when its ctx ends) stops gracefully.
//   - A handler sees its task without lease internals; FencingToken is the
//     documented way to the lease's token.
//   - Errors name the task or queue and wrap a sentinel of errors.go (many
//     are the broker's, re-exported); a missing broker role is
//     ErrUnsupported.
//   - A worker's prefetch adapts unless WorkerConfig.Prefetch fixes it: it
//     grows from Concurrency towards MaxPrefetch while attempts are short
//     next to a fetch, and shrinks back when they are not. A worker killed
//     holds at most Concurrency+MaxPrefetch tasks until their leases end
//     (ShortConcurrency+MaxPrefetch with ShortConcurrency).
//   - WorkerConfig.ShortConcurrency (queue/procexec sets it for processes
//     that queue short calls) holds instead of Concurrency only while
//     attempts take under 2 ms on average, one ended within the last 2 ms
//     and none has run for 10 ms, so
//     long tasks are never leased beyond Concurrency plus the prefetch.
//     A task such a handler queued (a procpool call waiting for a free
//     process) that waited 250 ms or more is checked for a cancel request
//     before it starts, as a prefetched one is.
package queue
