package redis

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"slices"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

//go:embed scripts/*.lua
var scriptFS embed.FS

// A per-queue script is generated from its file: K_<NAME> locals for the
// queue's keys (those named on the file's "--! keys:" line are KEYS[1..n],
// in that order; the others nil), then scripts/common.lua, then (for
// files whose keys line has "+workflow") scripts/workflow.lua, then the
// file. "+stats" and "+index" add K_STATS and K_WFINDEX, in that order
// after the listed keys.
// Sending only the keys a script uses keeps small calls cheap. A script
// whose file starts with "--! standalone" runs as written.
var (
	scriptEnqueue  = mustScript("enqueue")
	scriptFetch    = mustScript("fetch")
	scriptExtend   = mustScript("extend")
	scriptComplete = mustScript("complete")
	scriptFail     = mustScript("fail")
	scriptRequeue  = mustScript("requeue")
	scriptForward  = mustScript("forward")
	scriptRecover  = mustScript("recover")
	scriptCleanup  = mustScript("cleanup")
	scriptGet      = mustScript("get")
	scriptList     = mustScript("list")
	scriptDelete   = mustScript("delete")
	scriptRetry    = mustScript("retry")
	scriptResume   = mustScript("resume")
	scriptCancel   = mustScript("cancel")

	scriptEnqueueUnique = mustScript("enqueue_unique")
	scriptClaimTick     = mustScript("claim_tick")
	scriptSlotAcquire   = mustScript("slot_acquire")
	scriptSlotExtend    = mustScript("slot_extend")
	scriptTokenTake     = mustScript("token_take")
	scriptRegistryList  = mustScript("registry_list")
	scriptShardsSet     = mustScript("shards_set")

	scriptWfCreate  = mustScript("wf_create")
	scriptWfGet     = mustScript("wf_get")
	scriptWfCancel  = mustScript("wf_cancel")
	scriptWfOutcome = mustScript("wf_outcome")
	scriptWfCleanup = mustScript("wf_cleanup")
	scriptWfList    = mustScript("wf_list")
	scriptWfXApply  = mustScript("wf_xapply")
	scriptWfXDone   = mustScript("wf_xdone")
	scriptWfXEvents = mustScript("wf_xevents")
)

// script is a Lua script and the queue keys it takes, in KEYS order.
type script struct {
	*goredis.Script
	name  string
	src   string
	id    int   // index in allScripts
	slots []int // indexes into queueKeys; nil for standalone scripts
	stats bool  // takes the queue's stats key (statsKey) after its slots
	// workflow: scripts/workflow.lua is included ("+workflow")
	workflow bool
	// index: K_WFINDEX is the global workflow index (workflowIndexKey),
	// after the slots and the stats key ("+index"), when the caller passes
	// it (off Redis Cluster only: it is in another slot); nil otherwise.
	index bool
	// standalone: the file runs as written ("--! standalone")
	standalone bool
	// body is the file; src is what EVALSHA runs (the key locals,
	// common.lua, workflow.lua, the file), and the function library
	// (functions.go) wraps body instead.
	body string
}

// The helpers the per-queue scripts include (mustScript, buildLibrary).
var commonLua, workflowLua = mustRead("common"), mustRead("workflow")

func mustRead(name string) string {
	b, err := scriptFS.ReadFile("scripts/" + name + ".lua")
	if err != nil {
		panic(err)
	}
	return string(b)
}

// allScripts holds every script, for loadScripts and the per-queue cache
// of key lists.
var allScripts []*script

func mustScript(name string) *script {
	body := mustRead(name)
	s := &script{name: name, id: len(allScripts), body: body}
	first, _, _ := strings.Cut(body, "\n")
	var src strings.Builder
	switch {
	case first == "--! standalone":
		s.standalone = true
		src.WriteString(body)
	case strings.HasPrefix(first, "--! keys: "):
		for _, name := range strings.Fields(strings.TrimPrefix(first, "--! keys: ")) {
			if name == "+stats" {
				s.stats = true
				continue
			}
			if name == "+workflow" {
				s.workflow = true
				continue
			}
			if name == "+index" {
				s.index = true
				continue
			}
			slot := slices.Index(keySuffixes[:], name)
			if slot < 0 {
				panic(fmt.Sprintf("scripts/%s.lua: unknown key %q", s.name, name))
			}
			s.slots = append(s.slots, slot)
		}
		s.writeKeys(&src, "local %s = KEYS[%d]\n", "local %s\n")
		src.WriteString(commonLua)
		src.WriteString("\n")
		if s.workflow {
			src.WriteString(workflowLua)
			src.WriteString("\n")
		}
		src.WriteString(body)
	default:
		panic(fmt.Sprintf("scripts/%s.lua: first line must be \"--! keys: ...\" or \"--! standalone\"", name))
	}
	s.Script = goredis.NewScript(src.String())
	s.src = src.String()
	allScripts = append(allScripts, s)
	return s
}

// keyLocals names the Lua locals of every key a per-queue script may
// take: K_<SUFFIX> for each per-shard key, then K_STATS and K_WFINDEX.
var keyLocals = func() []string {
	out := make([]string, 0, numKeys+2)
	for _, suffix := range keySuffixes {
		out = append(out, "K_"+strings.ToUpper(suffix))
	}
	return append(out, "K_STATS", "K_WFINDEX")
}()

// writeKeys writes a line per key local (keyLocals) to w: taken (with the
// local's name and KEYS index) for the keys s takes, absent (with the name)
// for the others. s takes its slots in order, then the stats key
// ("+stats"), then the index ("+index").
func (s *script) writeKeys(w *strings.Builder, taken, absent string) {
	pos := map[string]int{}
	for i, slot := range s.slots {
		pos[keyLocals[slot]] = i + 1
	}
	extra := len(s.slots)
	if s.stats {
		extra++
		pos["K_STATS"] = extra
	}
	if s.index {
		pos["K_WFINDEX"] = extra + 1
	}
	for _, k := range keyLocals {
		if p, ok := pos[k]; ok {
			fmt.Fprintf(w, taken, k, p)
		} else {
			fmt.Fprintf(w, absent, k)
		}
	}
}

// scriptCall is one script run against one shard, for runScripts.
type scriptCall struct {
	script *script
	keys   []string
	args   []any
	cmd    *goredis.Cmd
	// notReplicated is set by runScriptsAcked when the call ran but fewer
	// replicas than Config.WaitReplicas confirmed it.
	notReplicated error
}

func isNoScript(err error) bool {
	return err != nil && (errors.Is(err, goredis.ErrNoScript) || goredis.HasErrorPrefix(err, "NOSCRIPT"))
}

// runScripts runs calls in one pipeline (FCALL, or EVALSHA: functions.go),
// together with any extra commands queued by pre. Calls that meet a server
// without their function or script (restart, FUNCTION FLUSH, SCRIPT
// FLUSH) are run again alone with run, which loads it; only those, since
// the others have taken effect. Each call's outcome,
// connection errors included, is left in its cmd; the returned error is
// only ctx's, when it ended during the pipeline.
func (b *Broker) runScripts(ctx context.Context, calls []*scriptCall, pre func(goredis.Pipeliner)) error {
	if len(calls) == 1 && pre == nil {
		c := calls[0]
		c.cmd = b.run(ctx, c.script, c.keys, c.args...)
		return nil
	}
	_, err := b.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		if pre != nil {
			pre(p)
		}
		for _, c := range calls {
			c.cmd = b.queueScript(ctx, p, c.script, c.keys, c.args, false)
		}
		return nil
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	for _, c := range calls {
		if notRun(c.cmd.Err()) {
			c.cmd = b.run(ctx, c.script, c.keys, c.args...)
		}
	}
	return nil
}

// allFailed returns the first call's error if every call failed, which
// means the request as a whole did (e.g. Redis is down).
func allFailed(calls []*scriptCall) error {
	for _, c := range calls {
		if c.cmd.Err() == nil {
			return nil
		}
	}
	if len(calls) == 0 {
		return nil
	}
	return calls[0].cmd.Err()
}
