package procpool

import (
	"context"

	"github.com/conqhq/conq/future"
)

// The names procpool shares with the other layers of conq (pool, queue):
// one ErrClosed, the constructors New and MustNew.

// ErrClosed is returned by Submit once Shutdown or Close has begun, and is
// the error of the tasks the pool will not run or has stopped because of
// it. It is future.ErrClosed: pool.ErrClosed and queue.ErrClosed match it
// too.
var ErrClosed = future.ErrClosed

// ErrQueueFull is returned by TrySubmit when the queue has no room; it is
// future.ErrQueueFull, as pool.ErrQueueFull is.
var ErrQueueFull = future.ErrQueueFull

// MustNew is New for programs whose workers are part of the program (a
// test, an example, a main that cannot do without them): it panics if New
// fails.
func MustNew(ctx context.Context, cfg Config) *Pool {
	p, err := New(ctx, cfg)
	if err != nil {
		panic(err)
	}
	return p
}
