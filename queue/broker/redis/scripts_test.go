package redis

import (
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestScriptsDeclareKeys checks, by reading the sources, that every Redis
// command in the scripts names its key through KEYS (a K_ local, or a
// local "key" taken from KEYS), never a name built in Lua; Redis Cluster
// requires it.
func TestScriptsDeclareKeys(t *testing.T) {
	call := regexp.MustCompile(`(redis\.call\('\w+'|chunked\('\w+'|hmget\(|zadd\()\s*,?\s*([^,)]+)`)
	okKey := regexp.MustCompile(`^(K_[A-Z]+|key|cmd)$`)
	names, err := fs.Glob(scriptFS, "scripts/*.lua")
	if err != nil || len(names) < 10 {
		t.Fatalf("scripts: %v %v", names, err)
	}
	checked := 0
	for _, name := range names {
		src, _ := scriptFS.ReadFile(name)
		for i, line := range strings.Split(string(src), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "--") || strings.Contains(line, "local function") {
				continue
			}
			for _, m := range call.FindAllStringSubmatch(line, -1) {
				checked++
				if !okKey.MatchString(strings.TrimSpace(m[2])) {
					t.Errorf("%s:%d: key %q is not from KEYS: %s", name, i+1, m[2], strings.TrimSpace(line))
				}
			}
		}
	}
	if checked < 50 {
		t.Errorf("only %d commands found: is the pattern stale?", checked)
	}
	if bad := call.FindStringSubmatch(`redis.call('HGET', 'conq:{q}:' .. id, 'f')`); bad == nil || okKey.MatchString(bad[2]) {
		t.Error("the check does not catch a key built in Lua")
	}
}

// TestScriptsListTheirKeys checks each per-queue script lists on its
// "--! keys:" line every key it uses, directly or through the helpers of
// common.lua (a key left out would be nil at run time).
func TestScriptsListTheirKeys(t *testing.T) {
	kref := regexp.MustCompile(`\bK_[A-Z]+\b`)
	fnDef := regexp.MustCompile(`(?m)^local function (\w+)\(`)
	// workflow.lua's helpers count for every script: a script using one
	// without "+workflow" is caught below.
	wfHelpers := workflowLua
	common := commonLua + "\n" + wfHelpers
	// Keys and helper calls of each helper.
	defs := fnDef.FindAllStringSubmatchIndex(common, -1)
	helperKeys := map[string][]string{}
	helperBody := map[string]string{}
	for i, d := range defs {
		end := len(common)
		if i+1 < len(defs) {
			end = defs[i+1][0]
		}
		name := common[d[2]:d[3]]
		helperBody[name] = common[d[1]:end]
	}
	var keysOf func(body string, seen map[string]bool) []string
	keysOf = func(body string, seen map[string]bool) []string {
		out := kref.FindAllString(body, -1)
		for name, hb := range helperBody {
			if !seen[name] && regexp.MustCompile(`\b`+name+`\(`).MatchString(body) {
				seen[name] = true
				out = append(out, keysOf(hb, seen)...)
			}
		}
		return out
	}
	for name := range helperBody {
		helperKeys[name] = keysOf(helperBody[name], map[string]bool{name: true})
	}
	for _, s := range allScripts {
		if s.slots == nil {
			continue
		}
		body := s.body
		for _, d := range fnDef.FindAllStringSubmatch(wfHelpers, -1) {
			if !s.workflow && regexp.MustCompile(`\b`+d[1]+`\(`).MatchString(body) {
				t.Errorf("%s.lua calls %s of workflow.lua but its keys line lacks \"+workflow\"", s.name, d[1])
			}
		}
		for _, k := range keysOf(body, map[string]bool{}) {
			if k == "K_STATS" {
				if !s.stats {
					t.Errorf("%s.lua uses K_STATS but does not list \"+stats\" on its keys line", s.name)
				}
				continue
			}
			if k == "K_WFINDEX" {
				if !s.index {
					t.Errorf("%s.lua uses K_WFINDEX but does not list \"+index\" on its keys line", s.name)
				}
				continue
			}
			slot := slices.Index(keySuffixes[:], strings.ToLower(strings.TrimPrefix(k, "K_")))
			if slot < 0 {
				t.Errorf("%s.lua uses unknown key %s", s.name, k)
				continue
			}
			if !slices.Contains(s.slots, slot) {
				t.Errorf("%s.lua uses %s but does not list %q on its keys line", s.name, k, keySuffixes[slot])
			}
		}
	}
	if len(helperKeys["store"]) == 0 {
		t.Error("helper parsing found no keys in store(): is the pattern stale?")
	}
}

// TestWorkflowResetCoversState: run as a function of the library, the
// top level of common.lua and workflow.lua runs once, so every top-level
// value a call may change must be set again by wfReset at each call's
// entry (functions.go); constants are listed here.
func TestWorkflowResetCoversState(t *testing.T) {
	constants := map[string]bool{
		"NOTIFY_CAP": true, "SENTINEL": true, // common.lua
		"WF_LINK_MAX": true, "WF_LINK_LONG": true, "WF_STEP_FIELDS": true, "WF_HEAD_FIELDS": true, "JSON_ESC": true, "WF_WORDS": true, "STEP_WORDS": true, "WF_FAILED": true,
	}
	_, reset, ok := strings.Cut(workflowLua, "local function wfReset()\n")
	if !ok {
		t.Fatal("workflow.lua has no wfReset")
	}
	reset, _, _ = strings.Cut(reset, "\nend\n")
	assigned := map[string]bool{}
	for _, line := range strings.Split(reset, "\n") {
		lhs, _, _ := strings.Cut(line, "=")
		for _, n := range strings.Split(lhs, ",") {
			assigned[strings.TrimSpace(n)] = true
		}
	}
	decl := regexp.MustCompile(`^local ([A-Za-z_][A-Za-z0-9_]*(?:, *[A-Za-z_][A-Za-z0-9_]*)*) *=(.*)$`)
	for file, src := range map[string]string{"common": commonLua, "workflow": workflowLua} {
		for i, line := range strings.Split(src, "\n") {
			m := decl.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			for _, n := range strings.Split(m[1], ",") {
				n = strings.TrimSpace(n)
				if constants[n] {
					continue
				}
				if n == "WF" {
					// A table of fields: each field is set again.
					for _, f := range regexp.MustCompile(`(\w+) *=`).FindAllStringSubmatch(m[2], -1) {
						if !assigned["WF."+f[1]] {
							t.Errorf("%s.lua:%d: wfReset does not set WF.%s", file, i+1, f[1])
						}
					}
					continue
				}
				if !assigned[n] {
					t.Errorf("%s.lua:%d: top-level %s is neither set again by wfReset nor listed as a constant here", file, i+1, n)
				}
			}
		}
	}
}
