// Package precheck carries, in a context, a check to run before work that
// waited starts: the queue engine puts one in each attempt's context (look
// for a cancel request now), and procpool runs it for a call that waited
// long in its queue, so a task cancelled while it waited for a worker
// process does not start.
package precheck

import "context"

type key struct{}

// With returns ctx carrying check.
func With(ctx context.Context, check func(context.Context)) context.Context {
	return context.WithValue(ctx, key{}, check)
}

// Run runs the check ctx carries, if any: it may end ctx.
func Run(ctx context.Context) {
	if f, ok := ctx.Value(key{}).(func(context.Context)); ok {
		f(ctx)
	}
}
