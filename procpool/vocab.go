package procpool

import "github.com/conqhq/conq/future"

// ErrClosed is returned by Submit once Shutdown or Close has begun, and is
// the error of the tasks the pool will not run or has stopped because of
// it. It is future.ErrClosed: pool.ErrClosed and queue.ErrClosed match it
// too.
var ErrClosed = future.ErrClosed
