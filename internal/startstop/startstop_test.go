package startstop

import (
	"context"
	"errors"
	"testing"
)

type key struct{}

func TestBase(t *testing.T) {
	var b Base
	if err := b.Stop(context.Background()); err != nil {
		t.Fatalf("Stop before Start = %v", err)
	}
	got := make(chan any, 1)
	cause := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.WithValue(context.Background(), key{}, "v"))
	if err := b.Start(ctx, func(ctx context.Context) {
		got <- ctx.Value(key{})
		<-ctx.Done()
		cause <- context.Cause(ctx)
	}); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(ctx, func(context.Context) {}); !errors.Is(err, ErrStarted) {
		t.Fatalf("second Start = %v", err)
	}
	if v := <-got; v != "v" {
		t.Fatalf("loop ctx value %v", v)
	}
	cancel() // the caller's cancellation does not stop the loop
	select {
	case <-cause:
		t.Fatal("loop stopped by the Start ctx")
	default:
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if c := <-cause; !errors.Is(c, ErrStop) {
		t.Fatalf("cause %v", c)
	}
	if err := b.Stop(context.Background()); err != nil {
		t.Fatalf("second Stop = %v", err)
	}
}

func TestOnce(t *testing.T) {
	var o Once
	if err := o.Stop(); !errors.Is(err, ErrNotRunning) {
		t.Fatal(err)
	}
	if o.Start() != nil || !errors.Is(o.Start(), ErrStarted) {
		t.Fatal("Start twice")
	}
	if o.Stop() != nil || !errors.Is(o.Stop(), ErrNotRunning) {
		t.Fatal("Stop twice")
	}
}
