// Package worker is the Go SDK for conq process-pool workers: register
// handlers by task name, then call Run from main. The pool starts the
// program and talks to it over two dedicated file descriptors (stdout and
// stderr stay free for logging), in protocol 2 (docs/protocol.md) when the
// pool speaks it, else 1.
//
//	func main() {
//		worker.HandleJSON("double", func(ctx context.Context, n int) (int, error) { return 2 * n, nil })
//		if err := worker.Run(); err != nil {
//			log.Fatal(err)
//		}
//	}
//
// Concurrency: a worker takes Slots calls at once (Run's option Slots, or
// the pool's Config.Slots through CONQ_SLOTS; default 1), each handler on a
// goroutine of its own. With one slot the goroutine that reads a call runs
// its handler, so nothing sits between a request and its answer.
//
// A handler's ctx is cancelled when the pool cancels the task (timeout,
// caller's ctx, Future.Cancel) or goes away; a handler that ignores it is
// killed after the pool's grace period, with the whole process. Run returns
// when the pool closes the request stream (a graceful recycle or shutdown)
// or disappears. CallInfo(ctx) tells a handler about its call (the queue
// task's id, attempt, deadline... when a task queue sent it).
//
// Large arguments arrive in shared memory (Linux, from the pool's
// Config.ShmThreshold, 1 MiB by default): args is then a mapping of the
// pool's segment, valid until the handler returns; it may be written in
// place. Returning args itself, or a part of it, answers without a copy;
// so does returning a slice of ResultBuffer. Other large results are
// copied once into a segment of the worker's.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/conqhq/conq/internal/wire"
)

// HandlerFunc runs one task: args are the raw bytes the caller submitted,
// the returned bytes reach the caller unchanged.
type HandlerFunc func(ctx context.Context, args []byte) ([]byte, error)

// Error lets a handler choose the type reported to the caller; other errors
// are reported with their Go type name (or ErrorType() if they have one).
// RetryAfter and SkipRetry reach a task queue (queue/procexec maps them to
// queue.RetryAfter and queue.SkipRetry); see also the functions RetryAfter
// and SkipRetry.
type Error struct {
	Type       string
	Message    string
	Traceback  string
	RetryAfter time.Duration // > 0: retry no sooner
	SkipRetry  bool          // do not retry
}

func (e *Error) Error() string { return e.Type + ": " + e.Message }

// promoteAfter is how long a handler runs before the other goroutine starts
// watching the request stream for cancel frames.
const promoteAfter = 2 * time.Millisecond

// ErrNotWorker is returned by Run when the process was not started by a conq
// pool (the descriptor environment variable is missing).
var ErrNotWorker = errors.New("worker: " + wire.EnvFDs + " is not set; start this program from a conq process pool")

// Server holds handlers and serves a pool. The package-level functions use
// DefaultServer.
type Server struct {
	// Slots is how many calls the server takes at once; 0 means what the
	// pool asks (CONQ_SLOTS), or 1. Protocol 1 pools get one call at a
	// time whatever it says.
	Slots int
	// Protocol caps the protocol version announced (1 or 2); 0 means the
	// newest both sides speak.
	Protocol int

	mu       sync.RWMutex
	handlers map[string]HandlerFunc
}

// Option configures Run.
type Option func(*Server)

// Slots sets how many calls the worker takes at once (Server.Slots).
func Slots(n int) Option { return func(s *Server) { s.Slots = n } }

// Protocol caps the protocol version the worker announces
// (Server.Protocol).
func Protocol(v int) Option { return func(s *Server) { s.Protocol = v } }

// DefaultServer is the server of Handle, HandleJSON and Run.
var DefaultServer = &Server{}

// Handle registers h under name on DefaultServer.
func Handle(name string, h HandlerFunc) { DefaultServer.Handle(name, h) }

// HandleJSON registers a handler whose argument and result travel as JSON.
func HandleJSON[In, Out any](name string, fn func(ctx context.Context, in In) (Out, error)) {
	HandleJSONOn(DefaultServer, name, fn)
}

// HandleJSONOn is HandleJSON for a given server.
func HandleJSONOn[In, Out any](s *Server, name string, fn func(ctx context.Context, in In) (Out, error)) {
	s.Handle(name, func(ctx context.Context, args []byte) ([]byte, error) {
		var in In
		if err := json.Unmarshal(args, &in); err != nil {
			return nil, &Error{Type: "BadArguments", Message: err.Error()}
		}
		out, err := fn(ctx, in)
		if err != nil {
			return nil, err
		}
		return json.Marshal(out)
	})
}

// Run serves the pool on DefaultServer, with the options applied to it.
func Run(opts ...Option) error {
	for _, o := range opts {
		o(DefaultServer)
	}
	return DefaultServer.Run()
}

// Handle registers h under name, replacing any previous handler.
func (s *Server) Handle(name string, h HandlerFunc) {
	if name == "" || len(name) > wire.MaxNameLen {
		panic(fmt.Sprintf("worker: invalid task name %q", name))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handlers == nil {
		s.handlers = make(map[string]HandlerFunc)
	}
	s.handlers[name] = h
}

// Run serves the pool on the descriptors named by the environment.
func (s *Server) Run() error {
	fds := os.Getenv(wire.EnvFDs)
	if fds == "" {
		return ErrNotWorker
	}
	in, out, ok := strings.Cut(fds, ",")
	inFD, err1 := strconv.Atoi(in)
	outFD, err2 := strconv.Atoi(out)
	if !ok || err1 != nil || err2 != nil {
		return fmt.Errorf("worker: bad %s=%q", wire.EnvFDs, fds)
	}
	max := 64<<20 + wire.HeaderSize + wire.MaxNameLen
	if v := os.Getenv(wire.EnvMaxFrame); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > wire.HeaderSize {
			max = n
		}
	}
	r := os.NewFile(uintptr(inFD), "conq-requests")
	w := os.NewFile(uintptr(outFD), "conq-responses")
	defer r.Close()
	defer w.Close()
	return s.Serve(context.Background(), r, w, max)
}

func (s *Server) call(ctx context.Context, name string, args []byte) (out []byte, err error) {
	s.mu.RLock()
	h := s.handlers[name]
	s.mu.RUnlock()
	if h == nil {
		return nil, &Error{Type: "UnknownTask", Message: fmt.Sprintf("no handler for task %q", name)}
	}
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, &Error{Type: "panic", Message: fmt.Sprint(r), Traceback: string(debug.Stack())}
		}
	}()
	out, err = h(ctx, args)
	if err != nil && ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		err = &Error{Type: "Cancelled", Message: err.Error()}
	}
	return out, err
}

func encodeError(err error, v2 bool) []byte {
	p := wire.ErrorPayload{Message: err.Error()}
	base := err
	var ra *retryAfterError
	if errors.As(err, &ra) {
		p.RetryAfter = ra.d.Seconds()
		if ra.err != nil && ra == err {
			base = ra.err
		}
	}
	p.SkipRetry = errors.Is(err, ErrSkipRetry)
	var we *Error
	var typed interface{ ErrorType() string }
	switch {
	case errors.As(err, &we):
		p.Type, p.Message, p.Traceback = we.Type, we.Message, we.Traceback
		if we.RetryAfter > 0 {
			p.RetryAfter = we.RetryAfter.Seconds()
		}
		p.SkipRetry = p.SkipRetry || we.SkipRetry
	case errors.As(err, &typed):
		p.Type = typed.ErrorType()
	case p.SkipRetry:
		p.Type = "SkipRetry"
	default:
		p.Type = strings.TrimPrefix(fmt.Sprintf("%T", base), "*")
	}
	if !v2 {
		// Protocol 1 has no fields for these; its queues know the type.
		if p.SkipRetry {
			p.Type = "SkipRetry"
		}
		p.RetryAfter, p.SkipRetry = 0, false
	}
	b, _ := json.Marshal(p)
	return b
}

// ErrSkipRetry, returned by a handler (wrapped or not), asks a task queue
// not to retry the task (queue.SkipRetry).
//
//	return nil, fmt.Errorf("no such user %d: %w", id, worker.ErrSkipRetry)
var ErrSkipRetry = errors.New("skip retry")

// RetryAfter wraps err to ask a task queue to retry the task no sooner than
// d from now (queue.RetryAfter).
func RetryAfter(d time.Duration, err error) error { return &retryAfterError{d: d, err: err} }

type retryAfterError struct {
	d   time.Duration
	err error
}

func (e *retryAfterError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("retry after %v", e.d)
	}
	return e.err.Error()
}

func (e *retryAfterError) Unwrap() error { return e.err }
