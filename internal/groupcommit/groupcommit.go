// Package groupcommit combines concurrent calls whose cost is mostly a
// round trip into shared batches (group commit): the Redis broker's
// enqueues and workflow creates, where one script call carrying many
// requests costs little more than one carrying one.
//
// # Policy, written down
//
//   - A call that finds no batch running and nobody waiting runs alone,
//     at once, in its caller's goroutine and with its caller's ctx: an
//     idle system pays no goroutine hop and no wait.
//   - Otherwise it waits in line. One goroutine, started when a line forms
//     and gone once it is empty, runs the line oldest first in batches of
//     at most MaxBatch requests and MaxWeight weight (a request heavier
//     than MaxWeight goes alone), each under a ctx of its own that ends
//     after Timeout, and answers every request of a batch when the batch
//     returns.
//   - A caller whose ctx ends while it waits gets ctx.Err() at once. A
//     request not yet taken into a batch is dropped unsent; one already
//     taken may or may not take effect, as with any call whose reply is
//     lost.
//   - A panic in Run is an error, with its stack, for every request of
//     that batch; the group goes on.
//   - After Close, Do returns ErrClosed; requests already in line are
//     still run and answered.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("groupcommit: closed")

// Defaults for a zero MaxBatch and Timeout.
const (
	DefaultMaxBatch = 128
	DefaultTimeout  = time.Minute
)

// Group combines concurrent Do calls into calls of Run. Set Run before
// the first Do; the other fields are optional. A Group must not be copied
// after first use.
type Group[Req, Res any] struct {
	// Run carries out one batch and returns one result per request, in
	// the order given. It may run in any goroutine.
	Run func(ctx context.Context, reqs []Req) []Res
	// MaxBatch bounds the requests of a batch (0: DefaultMaxBatch).
	MaxBatch int
	// Weight and MaxWeight bound a batch's total weight (MaxWeight 0: no
	// bound).
	Weight    func(Req) int
	MaxWeight int
	// Timeout ends the ctx of a batch the group's goroutine runs (0:
	// DefaultTimeout).
	Timeout time.Duration

	mu      sync.Mutex
	line    []*call[Req, Res] // waiting, oldest first
	running bool              // a batch runs, or the goroutine does
	closed  bool
}

type call[Req, Res any] struct {
	req   Req
	res   Res
	err   error
	done  chan struct{} // closed once answered
	taken bool          // in a batch (mu)
}

// Do submits req and returns its result: Run's, or ErrClosed, ctx.Err() or
// a panic of Run as an error.
func (g *Group[Req, Res]) Do(ctx context.Context, req Req) (Res, error) {
	var zero Res
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	g.mu.Lock()
	if g.closed {
		g.mu.Unlock()
		return zero, ErrClosed
	}
	if !g.running {
		// Alone: run it here, with the caller's ctx.
		g.running = true
		g.mu.Unlock()
		defer g.next()
		res, err := g.run(ctx, []Req{req})
		if err != nil {
			return zero, err
		}
		return res[0], nil
	}
	c := &call[Req, Res]{req: req, done: make(chan struct{})}
	g.line = append(g.line, c)
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.res, c.err
	case <-ctx.Done():
	}
	g.mu.Lock()
	if !c.taken {
		g.line = slices.DeleteFunc(g.line, func(x *call[Req, Res]) bool { return x == c })
	}
	g.mu.Unlock()
	return zero, ctx.Err()
}

// Close makes later calls of Do return ErrClosed. The line is still run.
func (g *Group[Req, Res]) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// next is called when a batch run by a caller ends: it starts the group's
// goroutine if a line formed meanwhile.
func (g *Group[Req, Res]) next() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.line) == 0 {
		g.running = false
		return
	}
	go g.loop()
}

// loop runs the line in batches until it is empty.
func (g *Group[Req, Res]) loop() {
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	for {
		g.mu.Lock()
		batch := g.take()
		if len(batch) == 0 {
			g.running = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
		reqs := make([]Req, len(batch))
		for i, c := range batch {
			reqs[i] = c.req
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		res, err := g.run(ctx, reqs)
		cancel()
		for i, c := range batch {
			if err != nil {
				c.err = err
			} else {
				c.res = res[i]
			}
			close(c.done)
		}
	}
}

// take removes the next batch from the line (g.mu held): its oldest
// request, then as many as MaxBatch and MaxWeight allow.
func (g *Group[Req, Res]) take() []*call[Req, Res] {
	max := g.MaxBatch
	if max <= 0 {
		max = DefaultMaxBatch
	}
	n, weight := 0, 0
	for n < len(g.line) && n < max {
		if g.MaxWeight > 0 && g.Weight != nil {
			w := g.Weight(g.line[n].req)
			if n > 0 && weight+w > g.MaxWeight {
				break
			}
			weight += w
		}
		g.line[n].taken = true
		n++
	}
	batch := slices.Clone(g.line[:n])
	g.line = slices.Delete(g.line, 0, n)
	return batch
}

// run calls Run, a panic or a reply of the wrong length made an error.
func (g *Group[Req, Res]) run(ctx context.Context, reqs []Req) (res []Res, err error) {
	defer func() {
		if r := recover(); r != nil {
			res, err = nil, fmt.Errorf("groupcommit: a batch of %d panicked: %v\n%s", len(reqs), r, debug.Stack())
		}
	}()
	res = g.Run(ctx, reqs)
	if len(res) != len(reqs) {
		return nil, fmt.Errorf("groupcommit: a batch of %d requests got %d results", len(reqs), len(res))
	}
	return res, nil
}
