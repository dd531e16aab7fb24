package redis_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

func task(queue, id string) *broker.Task {
	return &broker.Task{ID: id, Kind: "k", Queue: queue, Payload: []byte("p-" + id), MaxRetries: 2}
}

func TestOpen(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	b, err := redisbroker.Open(ctx, testenv.RedisURL(t), redisbroker.Config{Prefix: testenv.UniquePrefix(t, c)})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Enqueue(ctx, task("q", "a")); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Client().Ping(ctx).Err(); err == nil {
		t.Fatal("Open's client still usable after Close")
	}
	if _, err := redisbroker.Open(ctx, "redis://u:topsecret@127.0.0.1:1/0?dial_timeout=200ms", redisbroker.Config{}); err == nil ||
		strings.Contains(err.Error(), "topsecret") {
		t.Fatalf("Open of a closed port = %v; want an error without the password", err)
	}
	if _, err := redisbroker.Open(ctx, "redis://h/0", redisbroker.Config{Client: c}); err == nil {
		t.Fatal("Open with Config.Client succeeded")
	}
	if _, err := redisbroker.New(redisbroker.Config{Client: c, Prefix: "a{b}"}); err == nil {
		t.Fatal("prefix with a brace accepted")
	}
}

func TestBadQueueName(t *testing.T) {
	b, _ := newTestBroker(t, nil)
	err := b.Enqueue(context.Background(), task("a{b", "x"))
	var be *broker.BatchError
	if !errors.As(err, &be) || be.Errs[0] == nil {
		t.Fatalf("Enqueue to queue %q = %v, want an item error", "a{b", err)
	}
}

func TestPrefixIsolation(t *testing.T) {
	ctx := context.Background()
	c := testClient(t)
	mk := func() *redisbroker.Broker {
		b, err := redisbroker.New(redisbroker.Config{Client: c, Prefix: testenv.UniquePrefix(t, c)})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b1, b2 := mk(), mk()
	if err := b1.Enqueue(ctx, task("q", "same"), task("only1", "x")); err != nil {
		t.Fatal(err)
	}
	if err := b2.Enqueue(ctx, task("q", "same")); err != nil {
		t.Fatalf("same ID under another prefix: %v", err)
	}
	qs, err := b2.Queues(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(qs) != 1 || qs[0].Name != "q" || qs[0].Counts[broker.StatePending] != 1 {
		t.Fatalf("b2 sees queues %+v", qs)
	}
	if _, err := b2.GetTask(ctx, "", "x"); !errors.Is(err, broker.ErrTaskNotFound) {
		t.Fatalf("b2 found b1's task: %v", err)
	}
	got, err := b2.Fetch(ctx, broker.FetchParams{Queues: []string{"q", "only1"}, Max: 10, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(got) != 1 {
		t.Fatalf("b2 fetched %d tasks, %v; want 1", len(got), err)
	}
	if err := b2.Pause(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if got, _ := b1.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: 10, Lease: time.Minute, WorkerID: "w"}); len(got) != 1 {
		t.Fatalf("pause under one prefix affected the other: fetched %d", len(got))
	}
}

// TestHashTags checks every key a broker writes carries its queue's hash
// tag, except the global set of queues.
func TestHashTags(t *testing.T) {
	ctx := context.Background()
	b, c := newTestBroker(t, nil)
	p := b.Prefix()
	var tasks []*broker.Task
	for _, q := range []string{"default", "critical", "with:colon"} {
		for i := range 6 {
			tk := task(q, fmt.Sprint(i))
			tk.Retention = time.Hour
			if i == 5 {
				tk.ProcessAt = time.Now().Add(time.Hour)
			}
			tasks = append(tasks, tk)
		}
		if err := b.Pause(ctx, q); err != nil {
			t.Fatal(err)
		}
		if err := b.Resume(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Enqueue(ctx, tasks...); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"default", "critical", "with:colon"} {
		ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{q}, Max: 4, Lease: time.Minute, WorkerID: "w"})
		if err != nil || len(ts) != 4 {
			t.Fatalf("fetch %s: %d, %v", q, len(ts), err)
		}
		if err := b.Complete(ctx, broker.Ack{LeaseRef: lr(ts[0]), Result: []byte("r")}); err != nil {
			t.Fatal(err)
		}
		if err := b.Fail(ctx,
			broker.Failure{LeaseRef: lr(ts[1]), Error: broker.AttemptError{Message: "x"}, RetryAt: time.Now().Add(time.Hour)},
			broker.Failure{LeaseRef: lr(ts[2]), Error: broker.AttemptError{Message: "y"}, Dead: true},
		); err != nil {
			t.Fatal(err)
		}
	}
	// The optional capabilities' keys too.
	if err := b.EnqueueUnique(ctx, broker.UniqueParams{Task: task("default", "u"), Key: "uk", TTL: time.Hour}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ClaimTick(ctx, broker.ClaimParams{Key: "every-minute", Tick: time.Now(), TTL: time.Hour, Task: task("critical", "tick")}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.AcquireSlot(ctx, broker.SlotParams{Name: "kind.x", Holder: "h", Limit: 1, Lease: time.Minute}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.TakeToken(ctx, broker.TokenParams{Name: "kind.x", Rate: 10, Burst: 1}); err != nil {
		t.Fatal(err)
	}
	// Worker and scheduler records.
	if err := b.Heartbeat(ctx, broker.WorkerInfo{ID: "w1"}, time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := b.PublishEntries(ctx, "s1", []broker.ScheduleEntry{{Name: "e"}}, time.Minute); err != nil {
		t.Fatal(err)
	}
	tag := regexp.MustCompile(`^` + regexp.QuoteMeta(p) + `:\{([^{}]+)\}:[a-z]+(:\d+)?$`)
	keys, err := c.Keys(ctx, p+":*").Result()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, k := range keys {
		if k == p+":queues" {
			continue
		}
		m := tag.FindStringSubmatch(k)
		if m == nil {
			t.Fatalf("key %q has no {queue} hash tag", k)
		}
		seen[m[1]] = true
	}
	if len(seen) != 6 || !seen["limit:kind.x"] || !seen["workers"] || !seen["schedulers"] || len(keys) < 3*10 {
		t.Fatalf("keys %v", keys)
	}
}

func lr(t *broker.Task) broker.LeaseRef {
	return broker.LeaseRef{Queue: t.Queue, ID: t.ID, Token: t.Token}
}

// flushScripts empties what the broker's mode runs from: the function
// library (FUNCTION FLUSH) or, with eval, the script cache. Other
// packages' tests share this server: they load them again just as the
// broker under test must.
func flushScripts(t *testing.T, c *goredis.Client, eval bool) {
	t.Helper()
	var err error
	if eval {
		err = c.ScriptFlush(context.Background()).Err()
	} else {
		err = c.FunctionFlush(context.Background()).Err()
	}
	if err != nil {
		t.Fatal(err)
	}
}

// TestScriptFlush: the library is loaded again after FUNCTION FLUSH, and
// with Config.Eval scripts after SCRIPT FLUSH, both for single calls and
// inside pipelines.
func TestScriptFlush(t *testing.T) {
	for _, eval := range []bool{false, true} {
		t.Run(map[bool]string{false: "functions", true: "eval"}[eval], func(t *testing.T) {
			ctx := context.Background()
			b, c := newTestBrokerWith(t, redisbroker.Config{Eval: eval})
			what := map[bool]string{false: "FUNCTION FLUSH", true: "SCRIPT FLUSH"}[eval]
			flush := func() { flushScripts(t, c, eval) }
			flush()
			if err := b.Enqueue(ctx, task("a", "1"), task("b", "1"), task("a", "2")); err != nil {
				t.Fatalf("pipelined enqueue after %s: %v", what, err)
			}
			flush()
			ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"a", "b"}, Max: 10, Lease: time.Minute, WorkerID: "w"})
			if err != nil || len(ts) != 3 {
				t.Fatalf("fetch after %s: %d, %v", what, len(ts), err)
			}
			flush()
			acks := []broker.Ack{{LeaseRef: lr(ts[0])}, {LeaseRef: lr(ts[1])}, {LeaseRef: lr(ts[2])}}
			if err := b.Complete(ctx, acks...); err != nil {
				t.Fatalf("pipelined complete after %s: %v", what, err)
			}
			flush()
			if _, err := b.Forward(ctx); err != nil {
				t.Fatal(err)
			}
			qs, err := b.Queues(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range qs {
				for st, n := range q.Counts {
					if n != 0 {
						t.Fatalf("queue %s has %d %s", q.Name, n, st)
					}
				}
			}
			if got := redisbroker.UsesFunctions(b); got == eval {
				t.Fatalf("UsesFunctions = %v with Config.Eval %v", got, eval)
			}
		})
	}
}

// TestScriptsWithoutFunctions: a server that refuses FCALL and FUNCTION
// (here an ACL user without them, as Redis before 7.0 has neither) gets
// the scripts with EVALSHA, the broker switching by itself; and with
// functions the calls are FCALLs of the library.
func TestScriptsWithoutFunctions(t *testing.T) {
	ctx := context.Background()
	admin := testClient(t)
	user := "conq-nofn-" + testenv.UniquePrefix(t, admin)
	if err := admin.Do(ctx, "ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-fcall", "-fcall_ro", "-function").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", user) })
	// A user that may call functions but not load them: with the library
	// absent it must fall back too (another package's test may load it
	// meanwhile: then it calls it, which is as good).
	loadless := user + "-fcall"
	if err := admin.Do(ctx, "ACL", "SETUSER", loadless, "on", ">pw", "~*", "&*", "+@all", "-function").Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Do(context.Background(), "ACL", "DELUSER", loadless) })
	client := func(name string) *goredis.Client {
		opts := *admin.Options()
		opts.Username, opts.Password = name, "pw"
		c := goredis.NewClient(&opts)
		t.Cleanup(func() { c.Close() })
		return c
	}
	c, cl2 := client(user), client(loadless)
	flushScripts(t, admin, false)
	for _, cl := range []*goredis.Client{cl2, admin, c} {
		b, err := redisbroker.New(redisbroker.Config{Client: cl, Prefix: testenv.UniquePrefix(t, cl)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		if err := b.Enqueue(ctx, task("a", "1"), task("a", "2")); err != nil {
			t.Fatal(err)
		}
		ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"a"}, Max: 10, Lease: time.Minute, WorkerID: "w"})
		if err != nil || len(ts) != 2 {
			t.Fatalf("fetch: %d, %v", len(ts), err)
		}
		if err := b.Complete(ctx, broker.Ack{LeaseRef: lr(ts[0])}, broker.Ack{LeaseRef: lr(ts[1])}); err != nil {
			t.Fatal(err)
		}
		if got, want := redisbroker.UsesFunctions(b), cl == admin; got != want && cl != cl2 {
			t.Fatalf("user %s: UsesFunctions = %v, want %v", cl.Options().Username, got, want)
		}
	}
	libs, err := admin.FunctionList(ctx, goredis.FunctionListQuery{LibraryNamePattern: redisbroker.LibraryName()}).Result()
	if err != nil || len(libs) != 1 {
		t.Fatalf("FUNCTION LIST %s: %v, %v", redisbroker.LibraryName(), libs, err)
	}
}

// TestPayloadRaw checks payloads are stored as raw bytes: binary content
// round-trips and the stored value is not larger than payload + header.
func TestPayloadRaw(t *testing.T) {
	ctx := context.Background()
	b, c := newTestBroker(t, nil)
	payload := make([]byte, 4096)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	tk := task("q", "bin")
	tk.Payload = payload
	if err := b.Enqueue(ctx, tk); err != nil {
		t.Fatal(err)
	}
	got, err := b.GetTask(ctx, "q", "bin")
	if err != nil || string(got.Payload) != string(payload) {
		t.Fatalf("binary payload did not round-trip: %v", err)
	}
	n, err := c.HStrLen(ctx, b.Prefix()+":{q}:msg", "bin").Result()
	if err != nil || n > int64(len(payload)+64) {
		t.Fatalf("stored message is %d bytes for a %d-byte payload (%v)", n, len(payload), err)
	}
}

// TestWaitReadyWakes: a waiting worker is woken fast by an enqueue, and
// returns at once when ctx is cancelled while blocked.
func TestWaitReadyWakes(t *testing.T) {
	ctx := context.Background()
	b, _ := newTestBroker(t, nil)
	done := make(chan time.Time, 1)
	go func() {
		_ = b.WaitReady(ctx, broker.WaitParams{Queues: []string{"other", "q"}, Max: 5 * time.Second})
		done <- time.Now()
	}()
	time.Sleep(50 * time.Millisecond)
	start := time.Now()
	if err := b.Enqueue(ctx, task("q", "a")); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-done:
		if d := at.Sub(start); d > time.Second {
			t.Fatalf("woken after %v", d)
		}
	case <-time.After(4 * time.Second):
		t.Fatal("WaitReady not woken")
	}
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(30 * time.Millisecond); cancel() }()
	start = time.Now()
	if err := b.WaitReady(cctx, broker.WaitParams{Queues: []string{"empty"}, Max: 10 * time.Second}); !errors.Is(err, context.Canceled) {
		t.Fatalf("WaitReady after cancel = %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("WaitReady took %v to see the cancel", d)
	}
}

// TestLargeBatches runs batches bigger than BatchSize and Lua's unpack
// limit through every batch call.
func TestLargeBatches(t *testing.T) {
	ctx := context.Background()
	b, _ := newTestBroker(t, nil)
	const n = 9000
	tasks := make([]*broker.Task, n)
	for i := range tasks {
		tasks[i] = task(fmt.Sprintf("q%d", i%2), strconv.Itoa(i))
	}
	if err := b.Enqueue(ctx, tasks...); err != nil {
		t.Fatal(err)
	}
	got, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"q0", "q1"}, Max: n, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(got) != n {
		t.Fatalf("Fetch(%d) = %d, %v", n, len(got), err)
	}
	refs := make([]broker.LeaseRef, n)
	for i, tk := range got {
		refs[i] = lr(tk)
	}
	if lost, err := b.ExtendLeases(ctx, broker.ExtendParams{Leases: refs, Lease: time.Hour}); err != nil || len(lost.Lost) != 0 {
		t.Fatalf("ExtendLeases: %d lost, %v", len(lost.Lost), err)
	}
	fails := make([]broker.Failure, n/2)
	for i := range fails {
		fails[i] = broker.Failure{LeaseRef: refs[i], Error: broker.AttemptError{Message: "x"}}
	}
	if err := b.Fail(ctx, fails...); err != nil {
		t.Fatal(err)
	}
	acks := make([]broker.Ack, 0, n/2)
	for _, r := range refs[n/2:] {
		acks = append(acks, broker.Ack{LeaseRef: r})
	}
	if err := b.Complete(ctx, acks...); err != nil {
		t.Fatal(err)
	}
	qs, _ := b.Queues(ctx)
	var pending int64
	for _, q := range qs {
		pending += q.Counts[broker.StatePending]
		if q.Counts[broker.StateActive] != 0 {
			t.Fatalf("queue %s still has active tasks", q.Name)
		}
	}
	if pending != n/2 {
		t.Fatalf("%d pending after failing %d", pending, n/2)
	}
}

// ---- a private redis-server this test can kill and restart

type server struct {
	t    *testing.T
	port int
	dir  string
	cmd  *exec.Cmd
}

func startServer(t *testing.T) *server {
	t.Helper()
	testenv.RedisURL(t) // same skip rules as the other Redis tests
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Need(t, "redis-server not in PATH", "install it (apt-get install -y redis-server)")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &server{t: t, port: port, dir: t.TempDir()}
	s.start()
	t.Cleanup(s.kill)
	return s
}

func (s *server) url() string { return fmt.Sprintf("redis://127.0.0.1:%d/0", s.port) }

func (s *server) start() {
	s.t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", s.dir,
		"--logfile", filepath.Join(s.dir, "redis.log"))
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	c := goredis.NewClient(&goredis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", s.port), MaxRetries: -1})
	defer c.Close()
	for range 100 {
		if c.Ping(context.Background()).Err() == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	s.t.Fatalf("redis-server on port %d did not start:\n%s", s.port, log)
}

// kill stops the server with SIGKILL: no chance to flush anything more.
func (s *server) kill() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// TestReconnect kills Redis mid-test: calls fail promptly while it is down
// and work again when it is back, and with appendfsync always nothing the
// broker acknowledged is lost.
func TestReconnect(t *testing.T) {
	srv := startServer(t)
	ctx := context.Background()
	b, err := redisbroker.Open(ctx, srv.url()+"?dial_timeout=500ms", redisbroker.Config{Prefix: "conq"})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()

	var tasks []*broker.Task
	for i := range 100 {
		tasks = append(tasks, task("q", strconv.Itoa(i)))
	}
	if err := b.Enqueue(ctx, tasks...); err != nil {
		t.Fatal(err)
	}
	ts, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: 10, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(ts) != 10 {
		t.Fatalf("fetch: %d, %v", len(ts), err)
	}
	acks := make([]broker.Ack, 5)
	for i := range acks {
		acks[i] = broker.Ack{LeaseRef: lr(ts[i])}
	}
	if err := b.Complete(ctx, acks...); err != nil {
		t.Fatal(err)
	}

	srv.kill()
	for name, call := range map[string]func(ctx context.Context) error{
		"Enqueue": func(ctx context.Context) error { return b.Enqueue(ctx, task("q", "down")) },
		"Fetch": func(ctx context.Context) error {
			_, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: 1, Lease: time.Minute, WorkerID: "w"})
			return err
		},
		"Complete": func(ctx context.Context) error { return b.Complete(ctx, broker.Ack{LeaseRef: lr(ts[5])}) },
		"WaitReady": func(ctx context.Context) error {
			return b.WaitReady(ctx, broker.WaitParams{Queues: []string{"q"}, Max: time.Second})
		},
		"Queues": func(ctx context.Context) error {
			_, err := b.Queues(ctx)
			return err
		},
	} {
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		start := time.Now()
		err := call(cctx)
		cancel()
		if err == nil {
			t.Fatalf("%s succeeded with Redis down", name)
		}
		t.Logf("%s failed after %v: %v", name, time.Since(start), err)
		if d := time.Since(start); d > 3500*time.Millisecond {
			t.Fatalf("%s took %v to fail with Redis down", name, d)
		}
	}

	srv.start()
	deadline := time.Now().Add(10 * time.Second)
	for {
		qs, err := b.Queues(ctx)
		if err == nil {
			if len(qs) != 1 || qs[0].Counts[broker.StatePending] != 90 || qs[0].Counts[broker.StateActive] != 5 {
				t.Fatalf("after restart: %+v; want 90 pending, 5 active", qs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker still failing 10s after Redis came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, a := range acks {
		if _, err := b.GetTask(ctx, "q", a.ID); !errors.Is(err, broker.ErrTaskNotFound) {
			t.Fatalf("completed task %s came back: %v", a.ID, err)
		}
	}
	rest := make([]broker.Ack, 0, 5)
	for _, tk := range ts[5:] {
		rest = append(rest, broker.Ack{LeaseRef: lr(tk)})
	}
	if err := b.Complete(ctx, rest...); err != nil {
		t.Fatalf("complete after restart (leases survive): %v", err)
	}
	if err := b.Enqueue(ctx, task("q", "after")); err != nil {
		t.Fatal(err)
	}
	got, err := b.Fetch(ctx, broker.FetchParams{Queues: []string{"q"}, Max: 1000, Lease: time.Minute, WorkerID: "w"})
	if err != nil || len(got) != 91 {
		t.Fatalf("fetch after restart: %d, %v; want 91", len(got), err)
	}
	// Fencing tokens keep growing across the restart.
	if got[0].Token <= ts[9].Token {
		t.Fatalf("token %d after restart, %d before", got[0].Token, ts[9].Token)
	}
}

// TestLibrariesOfOtherBuilds: Cleanup records this build's library in the
// prefix's registry and deletes the libraries recorded there that no
// process has recorded for LibraryKeep; others stay.
func TestLibrariesOfOtherBuilds(t *testing.T) {
	ctx := context.Background()
	clock := brokertest.NewManualClock(time.Now())
	b, c := newTestBrokerWith(t, redisbroker.Config{Clock: clock})
	prefix := b.Prefix()
	// Two other builds' libraries, names unique to this run: one last seen
	// 8 days ago, one 1 day ago; and one not in the registry at all.
	base := fmt.Sprintf("%016x", time.Now().UnixNano())[:13]
	old, recent, unknown := "conq_"+base+"d00", "conq_"+base+"a01", "conq_"+base+"b02"
	for _, name := range []string{old, recent, unknown} {
		lib := "#!lua name=" + name + "\nredis.register_function('" + name + "_f', function() return 1 end)\n"
		if err := c.FunctionLoad(ctx, lib).Err(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.FunctionDelete(context.Background(), name) })
	}
	now := clock.Now()
	reg := prefix + ":libraries"
	if err := c.HSet(ctx, reg, old, now.Add(-8*24*time.Hour).UnixMilli(), recent, now.Add(-24*time.Hour).UnixMilli()).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	has := func(name string) bool {
		libs, err := c.FunctionList(ctx, goredis.FunctionListQuery{LibraryNamePattern: name}).Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(libs) == 1
	}
	if has(old) || !has(recent) || !has(unknown) {
		t.Fatalf("after Cleanup: %s %v (want gone), %s %v, %s %v (want kept)", old, has(old), recent, has(recent), unknown, has(unknown))
	}
	got, err := c.HGetAll(ctx, reg).Result()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got[old]; ok {
		t.Fatalf("registry still lists %s: %v", old, got)
	}
	if got[redisbroker.LibraryName()] != strconv.FormatInt(now.UnixMilli(), 10) {
		t.Fatalf("registry %v does not record this build's library %s at %d", got, redisbroker.LibraryName(), now.UnixMilli())
	}
	// This build's library is never deleted, however old its record.
	clock.Advance(30 * 24 * time.Hour)
	if _, err := b.Cleanup(ctx); err != nil {
		t.Fatal(err)
	}
	if !has(redisbroker.LibraryName()) || has(recent) {
		t.Fatalf("30 days on: this build's library kept %v (want true), %s kept %v (want false)", has(redisbroker.LibraryName()), recent, has(recent))
	}
}

// TestScriptFlushWaitReplicas: with WaitReplicas, the scripts and WAIT
// share one pipeline (replication.go); a call there that finds no
// function or script runs again after the load, once. This server has no
// replica, so WAIT confirms none: the call must have run all the same.
func TestScriptFlushWaitReplicas(t *testing.T) {
	for _, eval := range []bool{false, true} {
		t.Run(map[bool]string{false: "functions", true: "eval"}[eval], func(t *testing.T) {
			ctx := context.Background()
			b, c := newTestBrokerWith(t, redisbroker.Config{Eval: eval, WaitReplicas: 1, WaitTimeout: 20 * time.Millisecond})
			flushScripts(t, c, eval)
			if err := b.Enqueue(ctx, task("a", "1"), task("b", "1")); !errors.Is(err, broker.ErrNotReplicated) {
				t.Fatalf("enqueue after a flush, with no replica: %v, want ErrNotReplicated", err)
			}
			for _, q := range []string{"a", "b"} {
				if got, err := b.GetTask(ctx, q, "1"); err != nil || got.State != broker.StatePending {
					t.Fatalf("task %s/1 after the enqueue: %v, %v", q, got, err)
				}
			}
		})
	}
}
