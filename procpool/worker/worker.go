// Package worker is the Go SDK for conq process-pool workers: register
// handlers by task name, then call Run from main. The pool starts the
// program, talks to it over two dedicated file descriptors (stdout and
// stderr stay free for logging) and runs one task at a time in it.
//
//	func main() {
//		worker.HandleJSON("double", func(ctx context.Context, n int) (int, error) { return 2 * n, nil })
//		if err := worker.Run(); err != nil {
//			log.Fatal(err)
//		}
//	}
//
// A handler's ctx is cancelled when the pool cancels the task (timeout,
// caller's ctx, Future.Cancel) or goes away; a handler that ignores it is
// killed after the pool's grace period. Run returns when the pool closes the
// request stream (a graceful recycle or shutdown) or disappears.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"sort"
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
type Error struct {
	Type      string
	Message   string
	Traceback string
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
	mu       sync.RWMutex
	handlers map[string]HandlerFunc
}

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

// Run serves the pool on DefaultServer.
func Run() error { return DefaultServer.Run() }

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

// Serve speaks the protocol on r and w until r ends, which is a normal
// return (nil). maxFrame bounds the frames either way.
func (s *Server) Serve(ctx context.Context, r io.Reader, w io.Writer, maxFrame int) error {
	ww := wire.NewWriter(w)
	s.mu.RLock()
	tasks := make([]string, 0, len(s.handlers))
	for name := range s.handlers {
		tasks = append(tasks, name)
	}
	s.mu.RUnlock()
	sort.Strings(tasks)
	ready, _ := json.Marshal(wire.Ready{Protocol: wire.Version, SDK: "conq-go", PID: os.Getpid(), Tasks: tasks})
	if err := ww.Write(wire.KindReady, 0, "", ready); err != nil {
		return fmt.Errorf("worker: sending ready: %w", err)
	}

	// Two goroutines take turns reading. The one that reads a call runs the
	// handler itself, so no goroutine handoff sits between a request and its
	// answer. If the handler runs longer than promoteAfter, the turn passes
	// to the other goroutine, which then watches for cancel frames and the
	// end of the stream; short calls never wake it.
	var cur struct {
		sync.Mutex
		id     uint64
		cancel context.CancelFunc
	}
	rr := wire.NewReader(r, maxFrame)
	var wmu sync.Mutex
	turn := make(chan struct{}, 1)
	promote := time.AfterFunc(time.Hour, func() { turn <- struct{}{} })
	promote.Stop()
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	loop := func() error {
		haveTurn := false
		for {
			if !haveTurn {
				select {
				case <-turn:
				case <-ctx.Done():
					return nil
				}
			}
			f, err := rr.Read()
			for err == nil && f.Kind == wire.KindCancel {
				cur.Lock()
				if cur.cancel != nil && cur.id == f.ID {
					cur.cancel()
				}
				cur.Unlock()
				f, err = rr.Read()
			}
			if err == nil && f.Kind != wire.KindCall {
				err = fmt.Errorf("unexpected %s frame from the pool", f.Kind)
			}
			if err != nil {
				cur.Lock()
				if cur.cancel != nil {
					cur.cancel() // the pool is gone: stop the running handler
				}
				cur.Unlock()
				stop()
				if err == io.EOF {
					return nil
				}
				return fmt.Errorf("worker: reading requests: %w", err)
			}
			// The ctx exists before the turn can pass, so that a cancel
			// frame read right after finds it.
			tctx, cancel := context.WithCancel(ctx)
			cur.Lock()
			cur.id, cur.cancel = f.ID, cancel
			cur.Unlock()
			promote.Reset(promoteAfter)

			out, err := s.call(tctx, f.Name, f.Payload)
			haveTurn = promote.Stop() // false: the other goroutine reads now
			cur.Lock()
			cur.cancel = nil
			cur.Unlock()
			cancel()
			if err == nil && wire.HeaderSize+len(out) > maxFrame {
				err = &Error{Type: "PayloadTooLarge", Message: fmt.Sprintf("result of %d bytes exceeds the pool's frame limit of %d", len(out), maxFrame)}
			}
			// Once promoted, the other goroutine may read the next call and
			// answer it before Write returns here: serialize the writer.
			wmu.Lock()
			var werr error
			if err != nil {
				werr = ww.Write(wire.KindError, f.ID, "", encodeError(err))
			} else {
				werr = ww.Write(wire.KindResult, f.ID, "", out)
			}
			wmu.Unlock()
			if werr != nil {
				stop()
				return fmt.Errorf("worker: writing response: %w", werr)
			}
		}
	}
	turn <- struct{}{}
	errc := make(chan error, 1)
	go func() { errc <- loop() }()
	return errors.Join(loop(), <-errc)
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

func encodeError(err error) []byte {
	p := wire.ErrorPayload{Message: err.Error()}
	var we *Error
	var typed interface{ ErrorType() string }
	switch {
	case errors.As(err, &we):
		p.Type, p.Message, p.Traceback = we.Type, we.Message, we.Traceback
	case errors.As(err, &typed):
		p.Type = typed.ErrorType()
	default:
		p.Type = strings.TrimPrefix(fmt.Sprintf("%T", err), "*")
	}
	b, _ := json.Marshal(p)
	return b
}
