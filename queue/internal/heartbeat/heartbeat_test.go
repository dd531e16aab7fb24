package heartbeat

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBeatsThenRemoves(t *testing.T) {
	var beats, removes atomic.Int64
	failOnce := atomic.Bool{}
	failOnce.Store(true)
	h := New("test", 10*time.Millisecond, func(context.Context) error {
		if failOnce.Swap(false) {
			return errors.New("broker away") // retried, the loop goes on
		}
		beats.Add(1)
		return nil
	}, func(context.Context) error {
		removes.Add(1)
		return nil
	}, slog.New(slog.DiscardHandler))
	h.Start(context.Background())
	deadline := time.Now().Add(5 * time.Second)
	for beats.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d beats", beats.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := beats.Load()
	time.Sleep(30 * time.Millisecond)
	if beats.Load() != n || removes.Load() != 1 {
		t.Fatalf("after Shutdown: beats %d -> %d, removes %d", n, beats.Load(), removes.Load())
	}
}
