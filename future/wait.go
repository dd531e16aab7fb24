package future

import (
	"context"
	"fmt"
	"iter"
)

// WaitMode says when Wait returns.
type WaitMode int

const (
	// AllCompleted returns when every future is done or cancelled.
	AllCompleted WaitMode = iota
	// FirstCompleted returns when any future is done or cancelled.
	FirstCompleted
	// FirstError returns when any future finishes with an error (a
	// cancelled future counts), or when all are done.
	FirstError
)

func (m WaitMode) String() string {
	switch m {
	case AllCompleted:
		return "AllCompleted"
	case FirstCompleted:
		return "FirstCompleted"
	case FirstError:
		return "FirstError"
	}
	return fmt.Sprintf("WaitMode(%d)", int(m))
}

// Wait waits for the futures as mode says, or until ctx ends, and splits them
// into those finished and those not, each in input order. When ctx ends first
// it returns what has finished by then; check ctx.Err() to tell.
func Wait[T any](ctx context.Context, futures []*Future[T], mode WaitMode) (done, notDone []*Future[T]) {
	finished := make([]bool, len(futures))
	ch := make(chan int, len(futures)) // room for every signal: senders never block
	remaining := len(futures)
	stop := false
	for i, f := range futures {
		if f.finished() {
			finished[i] = true
			remaining--
			if mode == FirstCompleted || (mode == FirstError && f.err != nil) {
				stop = true
			}
			continue
		}
		f.OnDone(func(T, error) { ch <- i })
	}
	for !stop && remaining > 0 {
		select {
		case i := <-ch:
			if finished[i] {
				continue // counted in the first pass
			}
			finished[i] = true
			remaining--
			if mode == FirstCompleted || (mode == FirstError && futures[i].err != nil) {
				stop = true
			}
		case <-ctx.Done():
			stop = true
		}
	}
	// A future may finish while we split; report what is finished now.
	for i, f := range futures {
		if finished[i] || f.finished() {
			done = append(done, f)
		} else {
			notDone = append(notDone, f)
		}
	}
	return done, notDone
}

// AsCompleted yields the futures as they finish: those already finished
// first, in input order, then each as it completes. It stops early when ctx
// ends (check ctx.Err()) or when the loop breaks.
func AsCompleted[T any](ctx context.Context, futures []*Future[T]) iter.Seq[*Future[T]] {
	return func(yield func(*Future[T]) bool) {
		yielded := make([]bool, len(futures))
		ch := make(chan int, len(futures))
		pending := 0
		for i, f := range futures {
			if f.finished() {
				yielded[i] = true
				if !yield(f) {
					return
				}
				continue
			}
			pending++
			f.OnDone(func(T, error) { ch <- i })
		}
		for pending > 0 {
			select {
			case i := <-ch:
				if yielded[i] {
					continue
				}
				yielded[i] = true
				pending--
				if !yield(futures[i]) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}
}
