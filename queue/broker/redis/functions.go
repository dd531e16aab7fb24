package redis

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Scripts as functions (Redis 7.0+). A script run with EVALSHA runs its
// whole source on every call: for the settle scripts that is common.lua
// and workflow.lua, some 1,100 lines that define about 80 functions, and
// creating those closures costs Redis 15 to 30 µs of CPU a call: a call
// that does almost nothing costs 56 µs with EVALSHA, 39 µs as a function
// (BenchmarkScriptCallOverhead, network included). A function
// library runs its top level once, at FUNCTION LOAD: the helpers are
// defined there, and a call (FCALL) runs only its script's body. So by
// default every script is a function of one library, named after a hash
// of every script's source so that two builds sharing a server never use
// each other's; Config.Eval, or a server without FCALL (before Redis 7.0,
// or an ACL refusing it), keeps EVALSHA.
//
// A library's top-level locals live as long as the library, across calls,
// so what a script reads per call is set at its function's entry: the key
// names (K_<NAME>, from its KEYS, nil for keys it does not take) and the
// workflow code's per-call tables (wfReset in workflow.lua).

// scriptLib is the library and each script's function name in it.
type scriptLib struct {
	name string
	src  string
	fns  []string // by script.id
}

var library = sync.OnceValue(buildLibrary)

func buildLibrary() *scriptLib {
	h := sha256.New()
	for _, s := range allScripts {
		fmt.Fprintf(h, "%s\x00%s\x00", s.name, s.src)
	}
	lib := &scriptLib{name: "conq_" + hex.EncodeToString(h.Sum(nil))[:16], fns: make([]string, len(allScripts))}
	var src strings.Builder
	fmt.Fprintf(&src, "#!lua name=%s\n", lib.name)
	fmt.Fprintf(&src, "local %s\n", strings.Join(keyLocals, ", "))
	src.WriteString(commonLua)
	src.WriteString("\n")
	src.WriteString(workflowLua)
	src.WriteString("\n")
	for _, s := range allScripts {
		fn := lib.name + "_" + s.name
		lib.fns[s.id] = fn
		// One block per script: its key setter is local to it, and its
		// body is the function's, so its locals are per call.
		src.WriteString("do\n")
		entry := ""
		if !s.standalone {
			src.WriteString("local function setKeys(KEYS)\n")
			s.writeKeys(&src, "  %s = KEYS[%d]\n", "  %s = nil\n")
			src.WriteString("end\n")
			entry = "setKeys(KEYS)\n"
			if s.workflow {
				entry += "wfReset()\n"
			}
		}
		fmt.Fprintf(&src, "redis.register_function('%s', function(KEYS, ARGV)\n%s", fn, entry)
		src.WriteString(s.body)
		src.WriteString("\nend)\nend\n")
	}
	lib.src = src.String()
	return lib
}

// Script modes of a Broker (Broker.mode).
const (
	modeFunctions int32 = iota // FCALL, the library loaded on demand
	modeEval                   // EVALSHA, EVAL when the script is not cached
)

func (b *Broker) functions() bool { return b.mode.Load() == modeFunctions }

// run runs s once, as runScripts does for a single call: FCALL, loading
// the library when the server lacks it, or EVALSHA/EVAL.
func (b *Broker) run(ctx context.Context, s *script, keys []string, args ...any) *goredis.Cmd {
	if b.functions() {
		fn := library().fns[s.id]
		cmd := b.rdb.FCall(ctx, fn, keys, args...)
		err := cmd.Err()
		// A server restarted without persistence, FUNCTION FLUSH, or a
		// cluster node added since the load: the call did not run. EVAL
		// can send a script with its call; a function must be loaded
		// first, and may be flushed again before the call, so a few
		// tries.
		for try := 0; try < 3 && isNoFunction(err); try++ {
			lerr := b.loadLibrary(ctx)
			if noFunctionSupport(lerr) {
				// FCALL allowed, FUNCTION LOAD refused (ACL): EVALSHA.
				err = lerr
				break
			}
			if lerr != nil {
				b.cfg.Logger.WarnContext(ctx, "redis broker: loading the script library failed", "err", lerr)
			}
			cmd = b.rdb.FCall(ctx, fn, keys, args...)
			err = cmd.Err()
		}
		if !noFunctionSupport(err) {
			return cmd
		}
		b.fallBack(ctx, err)
	}
	return s.Run(ctx, b.rdb, keys, args...)
}

// queueScript adds s to pipeline p: FCALL, or EVALSHA (EVAL with eval).
func (b *Broker) queueScript(ctx context.Context, p goredis.Pipeliner, s *script, keys []string, args []any, eval bool) *goredis.Cmd {
	switch {
	case b.functions():
		return p.FCall(ctx, library().fns[s.id], keys, args...)
	case eval:
		return s.Eval(ctx, p, keys, args...)
	default:
		return s.EvalSha(ctx, p, keys, args...)
	}
}

// onEveryMaster runs f on the server, or on every master of a cluster
// (FUNCTION commands have no key to route by; replicas get their effect
// by replication).
func (b *Broker) onEveryMaster(ctx context.Context, f func(context.Context, goredis.Cmdable) error) error {
	if b.cluster != nil {
		return b.cluster.ForEachMaster(ctx, func(ctx context.Context, c *goredis.Client) error { return f(ctx, c) })
	}
	return f(ctx, b.rdb)
}

// loadLibrary loads the library on the server, or on every master of a
// cluster; one already there is not an error.
func (b *Broker) loadLibrary(ctx context.Context) error { return b.onEveryMaster(ctx, loadLibraryOn) }

func loadLibraryOn(ctx context.Context, c goredis.Cmdable) error {
	err := c.FunctionLoad(ctx, library().src).Err()
	if err != nil && goredis.HasErrorPrefix(err, "Library '") && strings.Contains(err.Error(), "already exists") {
		return nil
	}
	return err
}

// fallBack switches the broker to EVALSHA for good: the server has no
// functions, or refuses them.
func (b *Broker) fallBack(ctx context.Context, err error) {
	if b.mode.CompareAndSwap(modeFunctions, modeEval) {
		b.cfg.Logger.InfoContext(ctx, "redis broker: the server runs no functions (Redis 7.0+ FCALL); scripts run with EVALSHA", "err", err)
	}
}

// isNoFunction: the call did not run because the server lacks the function.
func isNoFunction(err error) bool {
	return err != nil && goredis.HasErrorPrefix(err, "Function not found")
}

// noFunctionSupport: the server does not know FCALL or FUNCTION (Redis
// before 7.0, some Redis-compatible servers), or refuses them to this user.
func noFunctionSupport(err error) bool {
	if err == nil {
		return false
	}
	if goredis.HasErrorPrefix(err, "unknown command") {
		return true
	}
	msg := strings.ToLower(err.Error())
	return goredis.HasErrorPrefix(err, "NOPERM") && (strings.Contains(msg, "'fcall") || strings.Contains(msg, "'function"))
}

// notRun: a pipelined call that did not run for want of its script or
// function, to be sent again alone (run).
func notRun(err error) bool {
	return isNoScript(err) || isNoFunction(err) || noFunctionSupport(err)
}

// Libraries of other builds. Functions persist with the data (RDB, AOF),
// so every release that ran against a server leaves its library there,
// about 450 KB each. Cleanup (the janitor of every worker) records this
// build's library in the prefix's registry (librariesKey: library ->
// last seen, ms) and deletes the libraries recorded there that no
// process has recorded for LibraryKeep. Deleting a library some process
// still uses costs that process one reload (run), never a call: so the
// rule may be loose. Libraries of builds before the registry, and of
// other prefixes, are never deleted here.

// LibraryKeep is how long a library no process has recorded is kept.
const LibraryKeep = 7 * 24 * time.Hour

// librariesKey is the registry of libraries for the prefix: one key
// with no tag, read and written alone.
func librariesKey(prefix string) string { return prefix + ":libraries" }

// tendLibraries records this build's library and deletes the stale ones
// (the comment above); errors are the caller's to log.
func (b *Broker) tendLibraries(ctx context.Context) error {
	if !b.functions() {
		return nil
	}
	key, ours := librariesKey(b.cfg.Prefix), library().name
	nowMs := millis(b.cfg.Clock.Now())
	if err := b.rdb.HSet(ctx, key, ours, nowMs).Err(); err != nil {
		return err
	}
	seen, err := b.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return err
	}
	for name, v := range seen {
		ms, perr := strconv.ParseInt(v, 10, 64)
		if name == ours || !isLibraryName(name) || (perr == nil && nowMs-ms < LibraryKeep.Milliseconds()) {
			continue
		}
		err := b.onEveryMaster(ctx, func(ctx context.Context, c goredis.Cmdable) error {
			if err := c.FunctionDelete(ctx, name).Err(); err != nil && !goredis.HasErrorPrefix(err, "Library not found") {
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
		b.cfg.Logger.InfoContext(ctx, "redis broker: deleted the script library of another build, unused for long", "library", name)
		if err := b.rdb.HDel(ctx, key, name).Err(); err != nil {
			return err
		}
	}
	return nil
}

// isLibraryName: "conq_" and 16 lowercase hex digits, as buildLibrary names them.
func isLibraryName(s string) bool {
	h, ok := strings.CutPrefix(s, "conq_")
	if !ok || len(h) != 16 {
		return false
	}
	for _, c := range h {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
