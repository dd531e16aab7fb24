// Package pool runs functions on a fixed set of worker goroutines and
// returns their results as futures.
//
//	p := pool.MustNew(pool.Config{Workers: 4})
//	defer p.Close()
//	f, err := pool.Submit(ctx, p, func(ctx context.Context) (int, error) { return 42, nil })
//	v, err := f.Result(ctx)
//
// Methods cannot have type parameters, so Submit, TrySubmit, Map and
// MapUnordered are package functions taking the pool.
//
// Policy, written down:
//
//   - Back-pressure. The queue holds Config.QueueSize tasks. Submit blocks
//     until there is room or its ctx ends (it then returns ctx's error);
//     TrySubmit returns ErrQueueFull instead of blocking. Once shutdown has
//     begun both return ErrClosed. Both errors are the future package's,
//     shared by every layer: errors.Is(err, pool.ErrClosed) also holds for
//     procpool's and queue's.
//   - Task ctx. The ctx a task receives carries the values, deadline and
//     cancellation of the ctx given to Submit. It is also cancelled when the
//     task's future is cancelled while running, when Shutdown's ctx ends,
//     and once the task has returned. A task whose Submit ctx has ended
//     before a worker picks it up does not run: its future ends Cancelled
//     with an error matching both future.ErrCancelled and ctx's error.
//     The task ctx costs nothing until the task waits on it (Done, or a
//     derived ctx), and derived contexts follow it without a goroutine.
//   - Cancel. Future.Cancel on a queued task cancels it (it never runs; the
//     queue slot is freed when a worker reaches it). On a running task it
//     cancels the task's ctx and returns false; the future ends with
//     whatever the function returns.
//   - Panics. A task that panics fails its future with a *PanicError
//     holding the value and the stack; the worker carries on.
//   - Shutdown(ctx) stops accepting work and waits for queued and running
//     tasks. If ctx ends first it cancels queued tasks (their futures end
//     Cancelled, matching ErrClosed), cancels the ctx of running tasks, and
//     returns ctx's error without waiting for those tasks to return. Close
//     is Shutdown without a deadline; calling either again waits anew, so
//     Close after a failed Shutdown waits for the stragglers.
//   - Nesting. A task that submits to its own pool and waits for the result
//     holds a worker while it waits; if every worker does so, nothing runs.
//     Submit such work to another pool, or don't wait for it.
//   - Stats are counters read without a lock: each is exact, a snapshot
//     of several may be a moment apart. A task cancelled while queued
//     counts as Queued until a worker drops it, then as Cancelled.
//   - Map and MapUnordered. This policy and its options (Window, ChunkSize,
//     StopOnError) are also procpool.Map's and procpool.MapJSON's: the
//     four share one engine.
//     One (value, error) pair is yielded per input: in input order by Map,
//     as they finish by MapUnordered. The input is read lazily: at most
//     Window chunks are in flight (default 8 per worker of the executor),
//     so it may be unbounded.
//     A chunk (ChunkSize, default 1) is one task calling fn on its inputs
//     in turn; if the task's ctx is cancelled midway, the rest of the
//     chunk is not called and gets ctx's error. A process pool has no
//     batched call: there a chunk's calls are submitted together, take one
//     place in the window, and are yielded once all of them have finished.
//     An error of fn, or an input the executor rejects (a procpool argument
//     over MaxPayload), is that input's pair, and the map goes on; with
//     StopOnError(true) the first such error is the last pair.
//     Whatever the options, the map ends when ctx ends (the last pair is
//     ctx's error), when the executor is closed (the inputs before are
//     still yielded, then one error matching ErrClosed) or when the loop
//     breaks. On the way out it cancels the tasks it has in flight and
//     waits for them, so no task of a map outlives its loop.
//
// Cost: a submitted task is one allocation (the future, the function and
// the task ctx share one struct); waiting on an unfinished future adds its
// done channel.
package pool
