package queue

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/conqhq/conq/queue/internal/check"
)

// Handler processes one attempt of a task. The returned bytes are stored as
// the task's result. Return an error to fail the attempt (wrap SkipRetry to
// give up at once); a panic fails it with the panic's stack.
//
// ctx ends when the attempt's timeout or the task's deadline passes, when
// the worker loses the task's lease (another worker may then run it), or
// when a shutdown's grace period is over.
type Handler interface {
	ProcessTask(ctx context.Context, t *TaskInfo) ([]byte, error)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(ctx context.Context, t *TaskInfo) ([]byte, error)

// ProcessTask calls f.
func (f HandlerFunc) ProcessTask(ctx context.Context, t *TaskInfo) ([]byte, error) { return f(ctx, t) }

// Middleware wraps a handler, e.g. for logging, metrics or tracing.
type Middleware func(Handler) Handler

// mux routes tasks to handlers by kind, through its middleware (the
// Worker's Handle, HandleDefault and Use). Tasks of a kind with no handler
// go to the default handler, or fail with *UnknownKindError if there is
// none; the middleware sees them either way. It is safe for concurrent
// use.
type mux struct {
	mu       sync.RWMutex
	handlers map[string]Handler
	mws      []Middleware
	chain    map[string]Handler // handlers wrapped in mws; nil when stale
	unknown  Handler            // fallback (or the unknown-kind error) wrapped in mws
	fallback Handler
}

func newMux() *mux { return &mux{handlers: make(map[string]Handler)} }

// Handle registers h for kind. It panics on an empty kind, a nil handler or
// a second handler for one kind, like http.ServeMux: these are bugs.
func (m *mux) Handle(kind string, h Handler) {
	if err := validToken("kind", kind, check.MaxKind); err != nil {
		panic(err.Error())
	}
	if h == nil {
		panic(fmt.Sprintf("queue: nil handler for task kind %q", kind))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.handlers == nil {
		m.handlers = make(map[string]Handler)
	}
	if _, dup := m.handlers[kind]; dup {
		panic(fmt.Sprintf("queue: a handler for task kind %q is already registered", kind))
	}
	m.handlers[kind] = h
	m.chain = nil
}

// HandleDefault registers h for tasks of every kind that has no handler of
// its own (e.g. a handler that runs each kind as a command). It panics on
// a nil handler or a second default handler.
func (m *mux) HandleDefault(h Handler) {
	if h == nil {
		panic("queue: nil default handler")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fallback != nil {
		panic("queue: a default handler is already registered")
	}
	m.fallback = h
	m.chain = nil
}

// HandleFunc registers fn for kind.
func (m *mux) HandleFunc(kind string, fn func(ctx context.Context, t *TaskInfo) ([]byte, error)) {
	m.Handle(kind, HandlerFunc(fn))
}

// Use appends middleware; the first added is the outermost. It applies to
// every handler, registered before or after.
func (m *mux) Use(mws ...Middleware) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mws = append(m.mws, mws...)
	m.chain = nil
}

// KindLister is implemented by a default handler (HandleDefault) that can
// say which kinds it serves, such as procexec's, which asks its worker
// processes. The worker publishes them in its heartbeat record
// (WorkerInfo.Kinds); nil means it cannot tell.
type KindLister interface {
	Kinds() []string
}

// kinds returns the kinds the mux serves, sorted: the registered ones and
// those the default handler lists, or nil if a default handler cannot
// list its own (then any kind may be served).
func (m *mux) kinds() []string {
	m.mu.RLock()
	fallback := m.fallback
	out := make([]string, 0, len(m.handlers))
	for k := range m.handlers {
		out = append(out, k)
	}
	m.mu.RUnlock()
	if fallback != nil {
		kl, ok := fallback.(KindLister)
		if !ok {
			return nil
		}
		more := kl.Kinds()
		if more == nil {
			return nil
		}
		out = append(out, more...)
	}
	if len(out) == 0 {
		return nil
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// empty reports whether no handler, default included, is registered.
func (m *mux) empty() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return len(m.handlers) == 0 && m.fallback == nil
}

func (m *mux) wrap(h Handler) Handler {
	for i := len(m.mws) - 1; i >= 0; i-- {
		h = m.mws[i](h)
	}
	return h
}

func (m *mux) lookup(kind string) Handler {
	m.mu.RLock()
	if m.chain != nil {
		h, ok := m.chain[kind]
		if !ok {
			h = m.unknown
		}
		m.mu.RUnlock()
		return h
	}
	m.mu.RUnlock()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.chain == nil {
		m.chain = make(map[string]Handler, len(m.handlers))
		for k, h := range m.handlers {
			m.chain[k] = m.wrap(h)
		}
		if m.fallback != nil {
			m.unknown = m.wrap(m.fallback)
		} else {
			m.unknown = m.wrap(HandlerFunc(func(_ context.Context, t *TaskInfo) ([]byte, error) {
				return nil, &UnknownKindError{Kind: t.Kind}
			}))
		}
	}
	if h, ok := m.chain[kind]; ok {
		return h
	}
	return m.unknown
}

// ProcessTask dispatches t to the handler of its kind.
func (m *mux) ProcessTask(ctx context.Context, t *TaskInfo) ([]byte, error) {
	return m.lookup(t.Kind).ProcessTask(ctx, t)
}

// HandleJSON registers fn on r (a *Worker) for kind with JSON on both sides: the payload is
// decoded into an In and fn's Out is encoded as the result. A call
// (EncodingArgs, e.g. Python's task.delay(x)) binds when it has exactly one
// positional argument and no keyword arguments: that argument is decoded
// into In. A payload that does not decode into In fails the task with
// SkipRetry, since no retry can fix it. Use struct{} for Out when there is
// no result.
func HandleJSON[In, Out any](r interface{ Handle(kind string, h Handler) }, kind string, fn func(ctx context.Context, args In) (Out, error)) {
	r.Handle(kind, HandlerFunc(func(ctx context.Context, t *TaskInfo) ([]byte, error) {
		var args In
		payload := t.Payload
		if t.Encoding == EncodingArgs {
			ca, err := decodeCall(kind, payload)
			if err != nil {
				return nil, err
			}
			if len(ca.Args) != 1 || len(ca.Kwargs) != 0 {
				return nil, fmt.Errorf("task kind %q takes one argument (%T); the call has %d positional and %d keyword arguments: %w",
					kind, args, len(ca.Args), len(ca.Kwargs), SkipRetry)
			}
			payload = ca.Args[0]
		}
		if err := json.Unmarshal(payload, &args); err != nil {
			return nil, fmt.Errorf("malformed JSON payload for task kind %q (want %T): %v: %w", kind, args, err, SkipRetry)
		}
		res, err := fn(ctx, args)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(res)
		if err != nil {
			return nil, fmt.Errorf("encode result of task kind %q: %v: %w", kind, err, SkipRetry)
		}
		return b, nil
	}))
}
