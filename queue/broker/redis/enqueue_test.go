package redis_test

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue/broker"
)

// scriptCounter counts the enqueue script calls a client sends.
type scriptCounter struct{ n atomic.Int64 }

func (s *scriptCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }
func (s *scriptCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		s.count(cmd)
		return next(ctx, cmd)
	}
}
func (s *scriptCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		for _, c := range cmds {
			s.count(c)
		}
		return next(ctx, cmds)
	}
}
func (s *scriptCounter) count(cmd goredis.Cmder) {
	args := cmd.Args()
	if len(args) < 2 {
		return
	}
	name, _ := args[0].(string)
	fn, _ := args[1].(string)
	if strings.EqualFold(name, "fcall") && strings.HasSuffix(fn, "_enqueue") {
		s.n.Add(1)
	}
}

// TestEnqueueConcurrentCallsCombined: single enqueues from many goroutines
// share script calls, and each is still decided as if alone: of several
// callers enqueueing one ID, exactly one succeeds and the others get
// ErrTaskIDConflict (not "twice in one call"), and every task is stored.
func TestEnqueueConcurrentCallsCombined(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	b, c := newTestBroker(t, nil)
	var counter scriptCounter
	c.AddHook(&counter)
	const callers, each = 32, 100
	var wins sync.Map // ID -> successes
	runCallers(t, callers, each, func(g, k int) error {
		id := "e" + strconv.Itoa(g) + "_" + strconv.Itoa(k)
		if k%10 == 0 {
			id = "shared" + strconv.Itoa(k) // every caller enqueues these
		}
		err := b.Enqueue(ctx, task("ec", id))
		switch {
		case err == nil:
			n, _ := wins.LoadOrStore(id, new(atomic.Int32))
			n.(*atomic.Int32).Add(1)
		case errors.Is(err, broker.ErrTaskIDConflict) && strings.HasPrefix(id, "shared") && !strings.Contains(err.Error(), "twice"):
		default:
			return err
		}
		return nil
	})
	stored := 0
	wins.Range(func(k, v any) bool {
		if n := v.(*atomic.Int32).Load(); n != 1 {
			t.Errorf("%s enqueued %d times", k, n)
		}
		stored++
		return true
	})
	if want := callers*each*9/10 + each/10; stored != want {
		t.Errorf("%d distinct tasks enqueued, want %d", stored, want)
	}
	for _, id := range []string{"e0_1", "e31_99", "shared0", "shared90"} {
		if _, err := b.GetTask(ctx, "ec", id); err != nil {
			t.Errorf("GetTask %s: %v", id, err)
		}
	}
	if n := counter.n.Load(); n >= callers*each {
		t.Errorf("%d enqueue script calls for %d Enqueue calls: none combined", n, callers*each)
	} else {
		t.Logf("%d Enqueue calls in %d script calls", callers*each, n)
	}
}

// TestEnqueueCancelledCallers: callers whose ctx ends while their enqueue
// waits leave the group commit working, may read and change their tasks
// at once (run with -race), and each of their tasks is stored or not,
// never half.
func TestEnqueueCancelledCallers(t *testing.T) {
	testenv.RedisURL(t)
	ctx := context.Background()
	b, _ := newTestBroker(t, nil)
	runCallers(t, 32, 60, func(g, k int) error {
		tk := task("cc", "")
		cctx, cancel := ctx, context.CancelFunc(func() {})
		if (g+k)%3 == 0 {
			cctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(1500))*time.Microsecond)
		}
		err := b.Enqueue(cctx, tk)
		cancel()
		id := tk.ID
		tk.Payload = []byte("changed after the call") // the caller's again
		switch {
		case err == nil:
			if id == "" || tk.State != broker.StatePending {
				return errors.New("enqueued task without its ID or state")
			}
		case (g+k)%3 == 0 && cctx.Err() != nil:
			got, gerr := b.GetTask(ctx, "cc", id)
			if gerr == nil && string(got.Payload) != "p-" {
				return errors.New("a cancelled enqueue stored a changed task")
			}
			if gerr != nil && !errors.Is(gerr, broker.ErrTaskNotFound) {
				return gerr
			}
		default:
			return err
		}
		return nil
	})
	if err := b.Enqueue(ctx, task("cc", "after")); err != nil {
		t.Fatalf("Enqueue after the cancelled ones: %v", err)
	}
}
