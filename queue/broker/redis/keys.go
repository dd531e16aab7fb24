package redis

import (
	"fmt"
	"strconv"
	"strings"
)

// Per-queue key slots. A script lists the ones it uses on its first line
// ("--! keys: ..."), receives exactly those as KEYS, and touches no others;
// they share the queue's hash tag, so on Redis Cluster they live in one
// slot.
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
	numKeys
)

var keySuffixes = [numKeys]string{
	kPending: "pending", kScheduled: "scheduled", kRetry: "retry", kActive: "active",
	kDead: "dead", kCompleted: "completed", kMsg: "msg", kMeta: "meta", kErrors: "errors",
	kResults: "results", kPaused: "paused", kSeq: "seq", kNotify: "notify",
	kLocks: "locks", kTaskLocks: "tasklocks", kTicks: "ticks", kCancels: "cancels",
}

// statsKey is the hash of queue's throughput counters for the minute of
// now: fields "p<unixSecond>" (processed) and "f<unixSecond>" (failed),
// expiring after broker.StatsWindow. Scripts that count take it as K_STATS,
// after their declared keys ("+stats" on the keys line).
func statsKey(prefix, queue string, minute int64) string {
	return prefix + ":{" + queue + "}:stats:" + strconv.FormatInt(minute, 10)
}

// queueKeys returns the keys of queue: "<prefix>:{<queue>}:<suffix>".
func queueKeys(prefix, queue string) []string {
	keys := make([]string, numKeys)
	base := prefix + ":{" + queue + "}:"
	for i, s := range keySuffixes {
		keys[i] = base + s
	}
	return keys
}

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
