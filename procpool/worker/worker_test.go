package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/wire"
)

// serve runs s on in-memory pipes and returns the pool's ends.
func serve(t *testing.T, s *Server) (*wire.Writer, *wire.Reader, io.Closer, chan error) {
	t.Helper()
	w, r, in, done, ready := serveReady(t, s)
	if ready.Protocol != wire.Version {
		t.Fatalf("ready announces protocol %d", ready.Protocol)
	}
	return w, r, in, done
}

// serveReady is serve, returning the ready payload whatever it says.
func serveReady(t *testing.T, s *Server) (*wire.Writer, *wire.Reader, io.Closer, chan error, wire.Ready) {
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
	if err := json.Unmarshal(f.Payload, &ready); err != nil {
		t.Fatalf("ready payload %s: %v", f.Payload, err)
	}
	return wire.NewWriter(reqW), r, reqW, done, ready
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

func TestServeManySlots(t *testing.T) {
	s := &Server{Slots: 4}
	started := make(chan uint64, 4)
	s.Handle("block", func(ctx context.Context, _ []byte) ([]byte, error) {
		info, _ := CallInfo(ctx)
		started <- info.ID
		<-ctx.Done()
		return nil, ctx.Err()
	})
	s.Handle("info", func(ctx context.Context, _ []byte) ([]byte, error) {
		info, _ := CallInfo(ctx)
		return json.Marshal(info)
	})
	w, r, reqW, done, ready := serveReady(t, s)
	if ready.Protocol != 2 || ready.Slots != 4 || !slices.Contains(ready.Features, wire.FeatureMeta) {
		t.Fatalf("ready: %+v", ready)
	}
	for id := uint64(1); id <= 3; id++ {
		w.Write(wire.KindCall, id, "block", nil)
	}
	for range 3 {
		<-started // all three run at once
	}
	// A META call answers while the others block.
	meta := wire.AppendMeta(nil, []byte(`{"task_id":"t9","attempt":3,"max_retries":0,"deadline":"2030-01-02T03:04:05.000000006Z","encoding":"args"}`))
	w.WriteFrame(wire.KindCall, wire.FlagMeta, 4, "info", meta, nil)
	f, err := r.Read()
	var info Info
	if err != nil || f.ID != 4 || json.Unmarshal(f.Payload, &info) != nil {
		t.Fatalf("info: %+v %v", f, err)
	}
	if !info.Meta || info.TaskID != "t9" || info.Attempt != 3 || info.Encoding != "args" || info.Deadline.Nanosecond() != 6 || info.Task != "info" {
		t.Fatalf("info = %+v", info)
	}
	// Cancelling call 2 stops it alone.
	w.Write(wire.KindCancel, 2, "", nil)
	f, err = r.Read()
	if err != nil || f.ID != 2 || f.Kind != wire.KindError {
		t.Fatalf("cancel: %+v %v", f, err)
	}
	// The end of the stream stops the others.
	reqW.Close()
	seen := map[uint64]bool{}
	for range 2 {
		f, err := r.Read()
		if err != nil {
			t.Fatal(err)
		}
		seen[f.ID] = true
	}
	if !seen[1] || !seen[3] {
		t.Fatalf("answers after the end: %v", seen)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestServeProtocol1(t *testing.T) {
	t.Setenv(wire.EnvProtocol, "1")
	s := &Server{Slots: 8}
	s.Handle("skip", func(context.Context, []byte) ([]byte, error) { return nil, fmt.Errorf("x: %w", ErrSkipRetry) })
	w, r, reqW, done, ready := serveReady(t, s)
	if ready.Protocol != 1 || ready.Slots != 0 || ready.Features != nil {
		t.Fatalf("ready for a v1 pool: %+v", ready)
	}
	// A v1 pool never sends flags; a worker speaking v1 rejects them.
	w.Write(wire.KindCall, 1, "skip", nil)
	f, err := r.Read()
	var ep wire.ErrorPayload
	if err != nil || json.Unmarshal(f.Payload, &ep) != nil || ep.Type != "SkipRetry" || ep.SkipRetry {
		t.Fatalf("v1 skip: %s %v", f.Payload, err)
	}
	w.WriteFrame(wire.KindCall, wire.FlagMeta, 2, "skip", wire.AppendMeta(nil, []byte("{}")), nil)
	go func() {
		for {
			if _, err := r.Read(); err != nil {
				return
			}
		}
	}()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "protocol 1") {
		t.Fatalf("Serve = %v, want a protocol error", err)
	}
	reqW.Close()
}

func TestEncodeError(t *testing.T) {
	cases := []struct {
		err  error
		v2   bool
		want wire.ErrorPayload
	}{
		{RetryAfter(2*time.Second, &Error{Type: "Busy", Message: "m"}), true, wire.ErrorPayload{Type: "Busy", Message: "m", RetryAfter: 2}},
		{RetryAfter(time.Second, errors.New("plain")), true, wire.ErrorPayload{Type: "errors.errorString", Message: "plain", RetryAfter: 1}},
		{fmt.Errorf("gone: %w", ErrSkipRetry), true, wire.ErrorPayload{Type: "SkipRetry", Message: "gone: skip retry", SkipRetry: true}},
		{&Error{Type: "Bad", Message: "m", SkipRetry: true}, true, wire.ErrorPayload{Type: "Bad", Message: "m", SkipRetry: true}},
		{&Error{Type: "Bad", Message: "m", SkipRetry: true}, false, wire.ErrorPayload{Type: "SkipRetry", Message: "m"}},
		{RetryAfter(time.Second, errors.New("plain")), false, wire.ErrorPayload{Type: "errors.errorString", Message: "plain"}},
	}
	for i, c := range cases {
		var got wire.ErrorPayload
		if err := json.Unmarshal(encodeError(c.err, c.v2), &got); err != nil || got != c.want {
			t.Errorf("case %d: %+v, want %+v", i, got, c.want)
		}
	}
}
