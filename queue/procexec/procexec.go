// Package procexec serves queue tasks through a procpool.Pool: the task's
// kind is sent as the procpool task name and its payload as the arguments,
// so a worker program written with the Go or Python SDK handles queue tasks
// unchanged (each @task handler is a task kind).
//
//	pool, _ := procpool.New(ctx, procpool.Config{Command: []string{"python3", "tasks.py"}})
//	w.Handle("resize", procexec.Handler(pool))
//
// Each call carries the task's description to workers that take it
// (protocol 2 META, worker.CallInfo in the Go SDK): its id, kind, queue,
// attempt (1-based), max retries, the attempt's deadline (the earlier of
// the task's deadline and the attempt's ctx deadline) and its payload's
// encoding (raw, json or args).
//
// Errors map onto the queue's retry rules:
//
//   - an error raised by the task (an exception in Python) fails the attempt
//     with "Type: message" as its message and the traceback as its stack
//     (a *queue.HandlerError wrapping a *TaskError); the error type
//     "SkipRetry" (conq.TaskError("SkipRetry", msg) in Python) sends the
//     task to dead at once, like queue.SkipRetry, and so does an error
//     whose skip_retry field is set (protocol 2: worker.ErrSkipRetry,
//     conq.SkipRetry in Python); an error with retry_after (worker.RetryAfter,
//     conq.Retry(after=...)) is retried no sooner, like queue.RetryAfter;
//   - a task name the worker program does not know fails it with a
//     *queue.UnknownKindError (retried, then dead, like any failure);
//   - a worker crash fails the attempt with kind "worker_crashed", a
//     procpool timeout with kind "timeout" (KindWorkerCrashed, KindTimeout),
//     a protocol error with the error; the task is retried;
//   - an error the worker marked skip_retry is recorded with its type as
//     the attempt's kind (a Python binding error: "TypeError"); other task
//     errors with kind "error";
//   - an attempt whose ctx ended (timeout, lost lease, shutdown) returns
//     the ctx's error so the queue worker classifies it.
package procexec

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/conqhq/conq/procpool"
	"github.com/conqhq/conq/queue"
)

// Attempt error kinds (queue.AttemptError.Kind) of failures that are not
// the task's own: the worker process died under the attempt, or the pool's
// TaskTimeout ended it. Both are retried.
const (
	KindWorkerCrashed = "worker_crashed"
	KindTimeout       = "timeout"
)

// unknownTaskType is the error type both SDKs report for a task name that
// has no handler in the worker program.
const unknownTaskType = "UnknownTask"

// Handler returns a queue.Handler that runs each task in pool.
func Handler(pool *procpool.Pool) queue.Handler { return poolHandler{pool} }

// poolHandler is Handler's: a queue.KindLister, so the worker's heartbeat
// record lists the task names the worker processes announced.
type poolHandler struct{ pool *procpool.Pool }

func (h poolHandler) ProcessTask(ctx context.Context, t *queue.TaskInfo) ([]byte, error) {
	return Process(ctx, h.pool, t)
}

// Kinds implements queue.KindLister.
func (h poolHandler) Kinds() []string {
	if h.pool == nil {
		return nil
	}
	return h.pool.Tasks()
}

// Process runs one attempt of t in pool and maps its outcome.
func Process(ctx context.Context, pool *procpool.Pool, t *queue.TaskInfo) ([]byte, error) {
	if pool == nil {
		return nil, fmt.Errorf("procexec: nil pool for task kind %q: %w", t.Kind, queue.SkipRetry)
	}
	f, err := pool.SubmitMeta(ctx, t.Kind, t.Payload, meta(ctx, t))
	if err != nil {
		return nil, mapError(ctx, t, err)
	}
	// Not f.Result(ctx): when ctx ends the pool cancels the task (and kills
	// the worker after its CancelGrace), so waiting for the future is
	// bounded and the worker is free again when the attempt returns.
	res, err := f.Result(context.WithoutCancel(ctx))
	if err != nil {
		return nil, mapError(ctx, t, err)
	}
	return res, nil
}

// meta describes the attempt for the worker.
func meta(ctx context.Context, t *queue.TaskInfo) *procpool.Meta {
	enc := t.Encoding
	if enc == "" {
		enc = queue.EncodingRaw
	}
	deadline := t.Deadline
	if d, ok := ctx.Deadline(); ok && (deadline.IsZero() || d.Before(deadline)) {
		deadline = d
	}
	return &procpool.Meta{
		TaskID: t.ID, Kind: t.Kind, Queue: t.Queue, Attempt: t.Attempts + 1,
		MaxRetries: t.MaxRetries, Deadline: deadline, Encoding: enc,
	}
}

// mapError turns a procpool error into the attempt's error.
func mapError(ctx context.Context, t *queue.TaskInfo, err error) error {
	if ctx.Err() != nil {
		// The attempt was interrupted (timeout, lease lost, shutdown): keep
		// the context's error in the chain so the worker recognises it.
		return fmt.Errorf("task kind %q interrupted: %w", t.Kind, errors.Join(context.Cause(ctx), err))
	}
	var te *procpool.TaskError
	if errors.As(err, &te) {
		if te.Type == unknownTaskType {
			return &queue.UnknownKindError{Kind: t.Kind}
		}
		terr := &TaskError{Kind: t.Kind, Type: te.Type, Message: te.Message, Traceback: te.Traceback, SkipRetry: te.SkipRetry}
		kind := "error"
		if te.SkipRetry {
			// Not retried because of what it is (a binding error is a
			// TypeError): the attempt's kind names it.
			kind = te.Type
		}
		herr := &queue.HandlerError{Kind: kind, Message: te.Type + ": " + te.Message, Stack: strings.TrimSpace(te.Traceback), Err: terr}
		if te.RetryAfter > 0 && !terr.skip() {
			return queue.RetryAfter(te.RetryAfter, herr)
		}
		return herr
	}
	if errors.Is(err, procpool.ErrPayloadTooLarge) {
		// The same payload cannot fit next time either.
		return fmt.Errorf("task kind %q: %w: %w", t.Kind, err, queue.SkipRetry)
	}
	// Worker crashed, procpool timeout, protocol error, pool closed or not
	// starting: not the task's fault, so it is retried.
	switch {
	case errors.Is(err, procpool.ErrWorkerCrashed):
		return &queue.HandlerError{Kind: KindWorkerCrashed, Message: err.Error(), Err: err}
	case errors.Is(err, procpool.ErrTaskTimeout):
		return &queue.HandlerError{Kind: KindTimeout, Message: err.Error(), Err: err}
	}
	return fmt.Errorf("task kind %q: %w", t.Kind, err)
}

// TaskError is an error raised by the task inside the worker program. Its
// Error carries the type, message and traceback; the queue records the
// traceback apart, as the attempt's stack (see mapError).
type TaskError struct {
	Kind      string
	Type      string // e.g. "ValueError"
	Message   string
	Traceback string
	SkipRetry bool // the worker asked not to retry (protocol 2 skip_retry)
}

func (e *TaskError) Error() string {
	var b strings.Builder
	b.WriteString(e.Type)
	b.WriteString(": ")
	b.WriteString(e.Message)
	if tb := strings.TrimSpace(e.Traceback); tb != "" {
		b.WriteString("\n")
		b.WriteString(tb)
	}
	return b.String()
}

// SkipRetryType is the error type a worker program reports to give up on a
// task at once.
const SkipRetryType = "SkipRetry"

// Unwrap returns queue.SkipRetry for errors of type SkipRetryType or with
// SkipRetry set.
func (e *TaskError) Unwrap() error {
	if e.skip() {
		return queue.SkipRetry
	}
	return nil
}

func (e *TaskError) skip() bool { return e.SkipRetry || e.Type == SkipRetryType }
