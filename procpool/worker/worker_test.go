package worker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/wire"
)

// serve runs s on in-memory pipes and returns the pool's ends.
func serve(t *testing.T, s *Server) (*wire.Writer, *wire.Reader, io.Closer, chan error) {
	t.Helper()
	reqR, reqW := io.Pipe()
	respR, respW := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), reqR, respW, 1<<20); respW.Close() }()
	r := wire.NewReader(respR, 1<<20)
	f, err := r.Read()
	if err != nil || f.Kind != wire.KindReady {
		t.Fatalf("ready: %+v, %v", f, err)
	}
	var ready wire.Ready
	if err := json.Unmarshal(f.Payload, &ready); err != nil || ready.Protocol != wire.Version {
		t.Fatalf("ready payload %s: %v", f.Payload, err)
	}
	return wire.NewWriter(reqW), r, reqW, done
}

func TestServe(t *testing.T) {
	s := &Server{}
	s.Handle("upper", func(_ context.Context, b []byte) ([]byte, error) {
		out := make([]byte, len(b))
		for i, c := range b {
			out[i] = c &^ 0x20
		}
		return out, nil
	})
	started := make(chan struct{})
	s.Handle("block", func(ctx context.Context, _ []byte) ([]byte, error) {
		close(started)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	HandleJSONOn(s, "len", func(_ context.Context, in []string) (int, error) { return len(in), nil })
	s.Handle("typed", func(context.Context, []byte) ([]byte, error) { return nil, typedErr{} })

	w, r, in, done := serve(t, s)
	roundTrip := func(id uint64, task, args string) wire.Frame {
		t.Helper()
		if err := w.Write(wire.KindCall, id, task, []byte(args)); err != nil {
			t.Fatal(err)
		}
		f, err := r.Read()
		if err != nil || f.ID != id {
			t.Fatalf("answer to %d: %+v, %v", id, f, err)
		}
		return f
	}
	if f := roundTrip(1, "upper", "abc"); f.Kind != wire.KindResult || string(f.Payload) != "ABC" {
		t.Fatalf("upper: %+v", f)
	}
	if f := roundTrip(2, "len", `["a","b"]`); string(f.Payload) != "2" {
		t.Fatalf("len: %s", f.Payload)
	}
	errOf := func(f wire.Frame) wire.ErrorPayload {
		t.Helper()
		var ep wire.ErrorPayload
		if f.Kind != wire.KindError || json.Unmarshal(f.Payload, &ep) != nil {
			t.Fatalf("want an error frame, got %+v", f)
		}
		return ep
	}
	if ep := errOf(roundTrip(3, "len", `nope`)); ep.Type != "BadArguments" {
		t.Fatalf("bad json: %+v", ep)
	}
	if ep := errOf(roundTrip(4, "missing", "")); ep.Type != "UnknownTask" {
		t.Fatalf("missing: %+v", ep)
	}
	if ep := errOf(roundTrip(5, "typed", "")); ep.Type != "MyType" {
		t.Fatalf("typed: %+v", ep)
	}

	// A cancel frame cancels the running handler's ctx.
	if err := w.Write(wire.KindCall, 6, "block", nil); err != nil {
		t.Fatal(err)
	}
	<-started
	w.Write(wire.KindCancel, 999, "", nil) // someone else's id: ignored
	w.Write(wire.KindCancel, 6, "", nil)
	f, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if ep := errOf(f); ep.Type != "Cancelled" {
		t.Fatalf("cancelled: %+v", ep)
	}

	// End of the request stream ends Serve cleanly.
	in.Close()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve = %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return at end of input")
	}
}

func TestServeEOFCancelsRunningHandler(t *testing.T) {
	s := &Server{}
	stopped := make(chan struct{})
	s.Handle("block", func(ctx context.Context, _ []byte) ([]byte, error) {
		<-ctx.Done()
		close(stopped)
		return nil, ctx.Err()
	})
	w, r, in, done := serve(t, s)
	go func() {
		for {
			if _, err := r.Read(); err != nil {
				return
			}
		}
	}()
	w.Write(wire.KindCall, 1, "block", nil)
	in.Close()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("handler not cancelled when the pool went away")
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve = %v", err)
	}
}

func TestRunOutsidePool(t *testing.T) {
	t.Setenv(wire.EnvFDs, "")
	if err := (&Server{}).Run(); !errors.Is(err, ErrNotWorker) {
		t.Fatalf("Run = %v", err)
	}
}

type typedErr struct{}

func (typedErr) Error() string     { return "typed" }
func (typedErr) ErrorType() string { return "MyType" }
