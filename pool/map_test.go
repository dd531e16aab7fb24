package pool_test

import (
	"context"
	"errors"
	"iter"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/conqhq/conq/pool"
)

func square(_ context.Context, v int) (int, error) { return v * v, nil }

// counting yields 0..n-1 and counts how many values were pulled.
func counting(n int, pulled *atomic.Int32) iter.Seq[int] {
	return func(yield func(int) bool) {
		for i := range n {
			pulled.Add(1)
			if !yield(i) {
				return
			}
		}
	}
}

func TestMapOrdered(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 4})
	ctx := waitCtx(t)
	for _, chunk := range []int{1, 3, 100} {
		var got []int
		// Later elements finish first; Map must still yield in input order.
		slow := func(ctx context.Context, v int) (int, error) {
			time.Sleep(time.Duration(20-v) * 100 * time.Microsecond)
			return v * v, nil
		}
		for v, err := range pool.Map(ctx, p, slices.Values(seq(20)), slow, pool.ChunkSize(chunk)) {
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		want := make([]int, 20)
		for i := range want {
			want[i] = i * i
		}
		if !slices.Equal(got, want) {
			t.Errorf("chunk %d: got %v", chunk, got)
		}
	}
}

func seq(n int) []int {
	s := make([]int, n)
	for i := range s {
		s[i] = i
	}
	return s
}

func TestMapEmpty(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 2})
	for range pool.Map(waitCtx(t), p, slices.Values([]int(nil)), square) {
		t.Fatal("yielded for an empty input")
	}
	for range pool.MapUnordered(waitCtx(t), p, slices.Values([]int(nil)), square) {
		t.Fatal("yielded for an empty input")
	}
}

func TestMapErrorsAndPanicsPerElement(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 2})
	ctx := waitCtx(t)
	odd := errors.New("odd")
	fn := func(_ context.Context, v int) (int, error) {
		switch {
		case v == 4:
			panic("four")
		case v%2 == 1:
			return 0, odd
		}
		return v, nil
	}
	for _, chunk := range []int{1, 4} {
		i := 0
		for v, err := range pool.Map(ctx, p, slices.Values(seq(8)), fn, pool.ChunkSize(chunk)) {
			var pe *pool.PanicError
			switch {
			case i == 4:
				if !errors.As(err, &pe) || pe.Value != "four" {
					t.Errorf("chunk %d, element 4: %v", chunk, err)
				}
			case i%2 == 1:
				if !errors.Is(err, odd) {
					t.Errorf("chunk %d, element %d: %v", chunk, i, err)
				}
			default:
				if err != nil || v != i {
					t.Errorf("chunk %d, element %d: %v, %v", chunk, i, v, err)
				}
			}
			i++
		}
		if i != 8 {
			t.Errorf("chunk %d: %d results, want 8", chunk, i)
		}
	}
}

func TestMapPullsLazily(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 2})
	ctx := waitCtx(t)
	var pulled atomic.Int32
	const window, chunk = 3, 2
	n := 0
	for _, err := range pool.Map(ctx, p, counting(1000, &pulled), square, pool.Window(window), pool.ChunkSize(chunk)) {
		if err != nil {
			t.Fatal(err)
		}
		n++
		// At most a window of chunks, plus the one being filled, ahead.
		if ahead := int(pulled.Load()) - n; ahead > (window+1)*chunk {
			t.Fatalf("after %d results, %d values pulled", n, pulled.Load())
		}
		if n == 10 {
			break
		}
	}
	if pulled.Load() > 10+(window+1)*chunk {
		t.Errorf("pulled %d values for 10 results", pulled.Load())
	}
}

func TestMapBreakCancelsAndWaits(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 2})
	ctx := waitCtx(t)
	var running, cancelled atomic.Int32
	fn := func(ctx context.Context, v int) (int, error) {
		if v == 0 {
			return 0, nil
		}
		running.Add(1)
		defer running.Add(-1)
		<-ctx.Done()
		cancelled.Add(1)
		return 0, ctx.Err()
	}
	for _, mapper := range []func(context.Context, *pool.Pool, iter.Seq[int], func(context.Context, int) (int, error), ...pool.MapOption) iter.Seq2[int, error]{
		pool.Map[int, int], pool.MapUnordered[int, int],
	} {
		cancelled.Store(0)
		for _, err := range mapper(ctx, p, slices.Values(seq(100)), fn, pool.Window(4)) {
			if err != nil {
				t.Fatal(err)
			}
			// The first result is element 0, the only one that returns on
			// its own. Break once others are running.
			eventually(t, "a blocked task running", func() bool { return running.Load() > 0 })
			break
		}
		if r := running.Load(); r != 0 {
			t.Errorf("%d tasks still running after the loop broke", r)
		}
		if cancelled.Load() == 0 {
			t.Error("no task saw its ctx cancelled")
		}
	}
	if st := p.Stats(); st.Running != 0 {
		t.Errorf("Stats = %+v", st)
	}
	// Cancelled tasks keep their queue slot until a worker drops them.
	eventually(t, "cancelled tasks dropped", func() bool { return p.Stats().Queued == 0 })
}

func TestMapCtxCancelled(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 2})
	for name, mapper := range map[string]func(context.Context, *pool.Pool, iter.Seq[int], func(context.Context, int) (int, error), ...pool.MapOption) iter.Seq2[int, error]{
		"Map": pool.Map[int, int], "MapUnordered": pool.MapUnordered[int, int],
	} {
		ctx, cancel := context.WithCancel(waitCtx(t))
		fn := func(ctx context.Context, v int) (int, error) {
			if v == 5 {
				cancel()
			}
			if v >= 5 {
				<-ctx.Done()
				return 0, ctx.Err()
			}
			return v, nil
		}
		var lastErr error
		n := 0
		for _, err := range mapper(ctx, p, slices.Values(seq(1000)), fn) {
			n++
			if err != nil {
				lastErr = err
			}
			if n > 1000 {
				t.Fatal("did not stop")
			}
		}
		if !errors.Is(lastErr, context.Canceled) {
			t.Errorf("%s: last error %v, want ctx's", name, lastErr)
		}
		if n > 20 {
			t.Errorf("%s: %d results after cancellation at element 5", name, n)
		}
		cancel()
	}
	if st := p.Stats(); st.Running != 0 {
		t.Errorf("Stats = %+v", st)
	}
}

func TestMapUnorderedCompletionOrder(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 4})
	ctx := waitCtx(t)
	release := make(chan struct{})
	fn := func(_ context.Context, v int) (int, error) {
		if v == 0 {
			<-release
		}
		return v, nil
	}
	var got []int
	for v, err := range pool.MapUnordered(ctx, p, slices.Values(seq(6)), fn) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
		if len(got) == 5 {
			close(release)
		}
	}
	if len(got) != 6 || got[5] != 0 {
		t.Errorf("got %v, want the blocked element 0 last", got)
	}
	slices.Sort(got)
	if !slices.Equal(got, seq(6)) {
		t.Errorf("got %v", got)
	}
}

func TestMapUnorderedChunks(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 3})
	ctx := waitCtx(t)
	var got []int
	for v, err := range pool.MapUnordered(ctx, p, slices.Values(seq(101)), square, pool.ChunkSize(7), pool.Window(2)) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, v)
	}
	slices.Sort(got)
	want := make([]int, 101)
	for i := range want {
		want[i] = i * i
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %v", got)
	}
}

func TestMapOnClosedPool(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	_ = p.Close()
	for _, err := range pool.Map(waitCtx(t), p, slices.Values(seq(3)), square) {
		if !errors.Is(err, pool.ErrClosed) {
			t.Errorf("err = %v, want ErrClosed", err)
		}
	}
	for _, err := range pool.MapUnordered(waitCtx(t), p, slices.Values(seq(3)), square) {
		if !errors.Is(err, pool.ErrClosed) {
			t.Errorf("err = %v, want ErrClosed", err)
		}
	}
}

func TestMapBadOptionsPanic(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	for _, opt := range []pool.MapOption{pool.ChunkSize(0), pool.Window(-1)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("bad option did not panic")
				}
			}()
			pool.Map(context.Background(), p, slices.Values(seq(3)), square, opt)
		}()
	}
}

func TestMapChunkStopsWhenCancelled(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	ctx, cancel := context.WithCancel(waitCtx(t))
	defer cancel()
	var calls atomic.Int32
	fn := func(ctx context.Context, v int) (int, error) {
		calls.Add(1)
		if v == 10 {
			cancel()
		}
		return v, nil
	}
	var lastErr error
	for _, err := range pool.Map(ctx, p, slices.Values(seq(100)), fn, pool.ChunkSize(100)) {
		lastErr = err
	}
	if !errors.Is(lastErr, context.Canceled) {
		t.Errorf("last error %v", lastErr)
	}
	if n := calls.Load(); n != 11 {
		t.Errorf("fn called %d times, want 11: the rest of the chunk is skipped", n)
	}
}

func TestMapPoolShutdownMidway(t *testing.T) {
	for _, chunk := range []int{1, 2} {
		p := newPool(t, pool.Config{Workers: 1})
		ctx := waitCtx(t)
		started := make(chan struct{}, 100)
		fn := func(ctx context.Context, v int) (int, error) {
			started <- struct{}{}
			<-ctx.Done()
			return 0, ctx.Err()
		}
		go func() {
			<-started
			short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
			defer cancel()
			_ = p.Shutdown(short)
		}()
		var errs []error
		for _, err := range pool.Map(ctx, p, slices.Values(seq(10)), fn, pool.ChunkSize(chunk)) {
			errs = append(errs, err)
		}
		last := errs[len(errs)-1]
		if !errors.Is(last, pool.ErrClosed) {
			t.Errorf("chunk %d: errors %v, want the last to match ErrClosed", chunk, errs)
		}
		if !errors.Is(errs[0], context.Canceled) {
			t.Errorf("chunk %d: first error %v, want the running call's ctx error", chunk, errs[0])
		}
	}
}

func TestMapStopOnError(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 2})
	ctx := waitCtx(t)
	bad := errors.New("bad")
	fn := func(ctx context.Context, v int) (int, error) {
		switch {
		case v == 5:
			return v, bad
		case v > 5:
			<-ctx.Done() // runs until the map cancels it
			return v, ctx.Err()
		}
		return v, nil
	}
	for _, chunk := range []int{1, 3} {
		for name, mapper := range map[string]func(context.Context, *pool.Pool, iter.Seq[int], func(context.Context, int) (int, error), ...pool.MapOption) iter.Seq2[int, error]{
			"Map": pool.Map[int, int], "MapUnordered": pool.MapUnordered[int, int],
		} {
			var got []int
			var last error
			for v, err := range mapper(ctx, p, slices.Values(seq(100)), fn, pool.ChunkSize(chunk), pool.StopOnError(true)) {
				got, last = append(got, v), err
			}
			if !errors.Is(last, bad) || got[len(got)-1] != 5 {
				t.Errorf("%s, chunk %d: got %v, last error %v; want element 5's error last", name, chunk, got, last)
			}
			if name == "Map" && !slices.Equal(got, seq(6)) {
				t.Errorf("Map, chunk %d: got %v", chunk, got)
			}
			if st := p.Stats(); st.Running != 0 {
				t.Errorf("%s, chunk %d: %d tasks running after the map returned", name, chunk, st.Running)
			}
		}
	}
	// StopOnError(false) is the default: every input gets its pair.
	n := 0
	for range pool.Map(ctx, p, slices.Values(seq(5)), func(context.Context, int) (int, error) { return 0, bad }, pool.StopOnError(false)) {
		n++
	}
	if n != 5 {
		t.Errorf("StopOnError(false): %d pairs, want 5", n)
	}
}

// TestMapClosedKeepsEarlierResults: results of the tasks submitted before
// the pool closed still come, in order, before the ErrClosed that ends the
// map.
func TestMapClosedKeepsEarlierResults(t *testing.T) {
	p := newPool(t, pool.Config{Workers: 1})
	ctx := waitCtx(t)
	in := func(yield func(int) bool) {
		for i := range 100 {
			if i == 3 {
				go p.Close() // graceful: the 3 queued tasks still run
				eventually(t, "shutdown to begin", func() bool {
					_, err := pool.TrySubmit(ctx, p, func(context.Context) (int, error) { return 0, nil })
					return errors.Is(err, pool.ErrClosed)
				})
			}
			if !yield(i) {
				return
			}
		}
	}
	var got []int
	var errs []error
	for v, err := range pool.Map(ctx, p, in, square, pool.Window(10)) {
		got, errs = append(got, v), append(errs, err)
	}
	if len(got) != 4 || !slices.Equal(got[:3], []int{0, 1, 4}) || errs[2] != nil || !errors.Is(errs[3], pool.ErrClosed) {
		t.Errorf("got %v, errors %v; want 0 1 4 then ErrClosed", got, errs)
	}
}
