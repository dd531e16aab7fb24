package redis

import (
	"fmt"
	"strconv"
	"strings"
)

// Per-shard key slots. A script lists the ones it uses on its first line
// ("--! keys: ..."), receives exactly those as KEYS, and touches no others;
// they share the shard's hash tag, so on Redis Cluster they live in one
// slot. A queue has one shard unless it was given more (shards.go): shard
// 0's tag is the queue's name, so an unsharded queue's keys are
// "<prefix>:{<queue>}:<suffix>".
const (
	kPending   = iota // LIST of IDs, FIFO (RPUSH, LPOP)
	kScheduled        // ZSET ID -> process-at (ms)
	kRetry            // ZSET ID -> retry-at (ms)
	kActive           // ZSET ID -> lease expiry (ms)
	kDead             // ZSET ID -> died-at (ms)
	kCompleted        // ZSET ID -> retention expiry (ms)
	kMsg              // HASH ID -> immutable message (binary)
	kMeta             // HASH ID -> mutable state (see encoding.go)
	kErrors           // HASH ID -> JSON array of attempt errors
	kResults          // HASH ID -> result bytes
	kPaused           // STRING, present while paused
	kSeq              // STRING, fencing token counter
	kNotify           // LIST, wake-up tokens for WaitReady
	kLocks            // HASH unique key -> "taskID,expiryMs"
	kTaskLocks        // HASH task ID -> unique key it took
	kTicks            // HASH periodic entry key -> "tickMs,expiryMs"
	kCancels          // HASH active task ID -> "1" while asked to cancel
	kWfSteps          // HASH task ID -> "<step>:<deps>,<handle>,<workflow ID>" (or without ":<deps>", workflow.lua wfLinkOf) for workflow steps (workflow.go)
	kWfDone           // ZSET workflow ID -> end of retention (ms), finished workflows
	kWf               // HASH "<handle>|<field>" -> workflow state (scripts/common.lua)
	kWfIDs            // HASH workflow ID -> handle; field "" is the handle counter
	kWfCreated        // ZSET workflow ID -> created (unix µs), every stored workflow: ListWorkflows' index
	kWfOutbox         // HASH task ID -> order for a step task in another slot (xslot.go), in the workflow's home shard
	kWfEvents         // HASH foreign step link -> its task's end, to apply in the workflow's home shard (xslot.go)
	kWfMoved          // ZSET foreign step link -> ms until which a repeated move of it is ignored (xslot.go)
	kAwaiting         // STRING with a TTL while some process awaits tasks of the shard; also the channel of their ends (await.go)
	numKeys
)

var keySuffixes = [numKeys]string{
	kPending: "pending", kScheduled: "scheduled", kRetry: "retry", kActive: "active",
	kDead: "dead", kCompleted: "completed", kMsg: "msg", kMeta: "meta", kErrors: "errors",
	kResults: "results", kPaused: "paused", kSeq: "seq", kNotify: "notify",
	kLocks: "locks", kTaskLocks: "tasklocks", kTicks: "ticks", kCancels: "cancels",
	kWfSteps: "wfsteps", kWfDone: "wfdone", kWf: "wf", kWfIDs: "wfids",
	kWfCreated: "wfcreated", kWfOutbox: "wfoutbox", kWfEvents: "wfevents", kWfMoved: "wfmoved",
	kAwaiting: "awaiting",
}

// workflowIndexKey is the hash of workflow ID -> hash tag of the shard
// holding it, global to the prefix (like queuesKey): GetWorkflow and
// CancelWorkflow find a workflow's slot by its ID alone.
func workflowIndexKey(prefix string) string { return prefix + ":workflows" }

// statsKey is the hash of a shard's throughput counters for the minute of
// now: fields "p<unixSecond>" (processed) and "f<unixSecond>" (failed),
// expiring after broker.StatsWindow. Scripts that count take it as K_STATS,
// after their declared keys ("+stats" on the keys line). tag is the
// shard's hash tag (shardTag).
func statsKey(prefix, tag string, minute int64) string {
	return prefix + ":{" + tag + "}:stats:" + strconv.FormatInt(minute, 10)
}

// queueKeys returns the keys of the shard with hash tag tag:
// "<prefix>:{<tag>}:<suffix>".
func queueKeys(prefix, tag string) []string {
	keys := make([]string, numKeys)
	base := prefix + ":{" + tag + "}:"
	for i, s := range keySuffixes {
		keys[i] = base + s
	}
	return keys
}

// shardTag is the hash tag of shard i of queue: the queue's name for shard
// 0, "<queue>{<i>.<salt>" for the others. A hash tag runs from the first
// '{' to the first '}' after it, and queue names hold neither, so a
// shard's keys ("conq:{default{1.7}:pending") can never be another
// queue's; salt is chosen (shards.go) so that the shard's slot is on the
// master meant for it.
func shardTag(queue string, i, salt int) string {
	if i == 0 {
		return queue
	}
	return queue + "{" + strconv.Itoa(i) + "." + strconv.Itoa(salt)
}

// shardsKey is the hash of sharded queues: field queue, value its shard
// record (shards.go). Global to the prefix (no hash tag) like queuesKey and
// written outside the per-queue scripts.
func shardsKey(prefix string) string { return prefix + ":queueshards" }

// queuesKey is the set of known queues. It is global to the prefix (no
// hash tag) and never touched by the per-queue scripts.
func queuesKey(prefix string) string { return prefix + ":queues" }

// validQueue rejects names that would break the hash tag.
func validQueue(q string) error {
	if q == "" {
		return fmt.Errorf("%w: empty queue name", errInvalidArg)
	}
	if strings.ContainsAny(q, "{}") {
		return fmt.Errorf("%w: queue name %q contains '{' or '}'", errInvalidArg, q)
	}
	return nil
}

// limitKey is the key of a Limiter name: its own hash tag, as limits are
// shared by all queues.
func limitKey(prefix, name, suffix string) string {
	return prefix + ":{limit:" + name + "}:" + suffix
}
