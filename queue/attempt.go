package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/conqhq/conq/future"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/internal/engine"
)

// What a handler may know about its attempt, and how a failed attempt is
// recorded (the failure rules).

type taskKey struct{}

// handlerCtx is a handler's context: the worker's, with the task and its
// lease, in one allocation per attempt (a context.WithValue and its value
// would take two).
type handlerCtx struct {
	context.Context
	h handlerTask
}

type handlerTask struct {
	t       *TaskInfo // without lease fields
	attempt engine.Attempt
	clock   broker.Clock
}

func (c *handlerCtx) Value(key any) any {
	if key == (taskKey{}) {
		return &c.h
	}
	return c.Context.Value(key)
}

func fromContext(ctx context.Context) (*handlerTask, bool) {
	h, ok := ctx.Value(taskKey{}).(*handlerTask)
	return h, ok
}

// TaskFromContext returns the task a handler's ctx belongs to (its attempt
// number is Attempts+1). Its lease fields are empty: see FencingToken.
func TaskFromContext(ctx context.Context) (*TaskInfo, bool) {
	h, ok := fromContext(ctx)
	if !ok {
		return nil, false
	}
	return h.t, true
}

// FencingToken returns the fencing token of the attempt a handler's ctx
// belongs to. Every lease of a task gets a token larger than the task's
// earlier ones, and the broker accepts an outcome only with the current
// one. Use it the same way for idempotent side effects: store the token
// with what an attempt writes, and refuse a write whose token is smaller
// than the stored one, so a worker that lost its lease (paused,
// partitioned) cannot overwrite the work of the attempt that replaced it.
func FencingToken(ctx context.Context) (uint64, bool) {
	h, ok := fromContext(ctx)
	if !ok {
		return 0, false
	}
	return h.attempt.Token, true
}

// Now returns the time by the broker's clock in a handler's ctx (the clock
// that leases, retries and deadlines follow), and the wall clock
// elsewhere. Middleware such as metrics use it to agree with the broker.
func Now(ctx context.Context) time.Time {
	if h, ok := fromContext(ctx); ok {
		return h.clock.Now()
	}
	return time.Now()
}

// failureRule is how a failed attempt is recorded: its error kind, whether
// the task is dead, and when it is retried.
//
//   - SkipRetry in the chain, or no retries left: dead.
//   - RetryAfter sets the delay; otherwise retryDelay does.
//   - A retry that would start at or after the task's deadline: dead.
//   - Kinds: "panic" (with its stack), a HandlerError's own kind, "unknown_kind",
//     "timeout" when the attempt's own deadline passed, else "error".
func failureRule(retryDelay RetryDelayFunc) func(ctx context.Context, t *TaskInfo, err error, now time.Time) (AttemptError, bool, time.Time) {
	return func(ctx context.Context, t *TaskInfo, err error, now time.Time) (AttemptError, bool, time.Time) {
		ae := AttemptError{Kind: "error", Message: err.Error()}
		var pe *future.PanicError
		var uk *UnknownKindError
		var he *HandlerError
		switch {
		case errors.As(err, &pe):
			ae.Kind, ae.Stack = "panic", string(pe.Stack)
		case errors.As(err, &he):
			ae.Kind, ae.Stack = cmp.Or(he.Kind, "error"), he.Stack
		case errors.As(err, &uk):
			ae.Kind = "unknown_kind"
		case errors.Is(err, context.DeadlineExceeded) && errors.Is(ctx.Err(), context.DeadlineExceeded):
			ae.Kind = "timeout"
		}
		attempt := t.Attempts + 1
		dead := errors.Is(err, SkipRetry) || attempt > t.MaxRetries
		var retryAt time.Time
		if !dead {
			var ra *retryAfterError
			var delay time.Duration
			if errors.As(err, &ra) {
				delay = ra.d
			} else {
				delay = retryDelay(attempt, err, t)
			}
			retryAt = now.Add(max(delay, 0))
			if !t.Deadline.IsZero() && !retryAt.Before(t.Deadline) {
				dead = true
				ae.Message += fmt.Sprintf(" (no retry: next attempt would start after the deadline %s)", t.Deadline.Format(time.RFC3339))
			}
		}
		return ae, dead, retryAt
	}
}
