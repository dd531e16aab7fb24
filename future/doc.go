// Package future holds the Future type that every conq layer returns: the
// in-process pool, the process pool and, as its remote counterpart, the task
// queue's Result.
//
// A Future is the read side of a computation; a Promise is its write side,
// owned by the executor that runs the work. The zero Promise is ready to use,
// and executors embed it in their per-task structs so that a submitted task
// costs one allocation.
//
// Policy, written down:
//   - Cancel succeeds only while the work has not started. Cancelling a
//     running future asks the executor to stop it (its ctx is cancelled) and
//     returns false; the future then ends with whatever the work returns.
//   - Callbacks added with OnDone run in the order they were added, on the
//     goroutine that completes the future, or at once on the caller's
//     goroutine if it is already done. A panicking callback is recovered and
//     logged with its stack (log/slog); it never kills the executor and the
//     remaining callbacks still run.
//   - A task that panics is reported as a *PanicError carrying the value and
//     the stack of the panicking goroutine.
//   - One vocabulary for executors: ErrClosed once an executor no longer
//     takes work, ErrQueueFull when a non-blocking submission finds no
//     room. pool, procpool and queue export these very values under their
//     own names, so errors.Is gives the same answer whichever layer
//     returned the error.
package future
