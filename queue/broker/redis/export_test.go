package redis

import "time"

// SetAwaitShared switches AwaitTask between the shared poller and a
// poller per waiter (benchmarks compare them); it returns the old value.
func SetAwaitShared(on bool) bool {
	old := awaitShared
	awaitShared = on
	return old
}

// SetWorkflowListScan sets the entries one wf_list call looks at per
// shard; it returns the old value.
func SetWorkflowListScan(n int) int {
	old := wfListScan
	wfListScan = n
	return old
}

// SetAwaitPoll sets the shared poller's schedule (first delay, cap); it
// returns the old values.
func SetAwaitPoll(lo, hi time.Duration) (time.Duration, time.Duration) {
	oldLo, oldHi := awaitMin, awaitMax
	awaitMin, awaitMax = lo, hi
	return oldLo, oldHi
}

// AwaitWaiters is how many waiters b's shared poller holds.
func AwaitWaiters(b *Broker) int {
	b.awaits.mu.Lock()
	defer b.awaits.mu.Unlock()
	return len(b.awaits.ws)
}

// SetWorkflowTag makes b remember tag as workflow id's shard (a stale
// entry, for tests of the cache).
func SetWorkflowTag(b *Broker, id, tag string) { b.wfTags.put(id, tag) }

// UsesFunctions reports whether b runs its scripts as functions (FCALL)
// rather than with EVALSHA.
func UsesFunctions(b *Broker) bool { return b.functions() }

// LibraryName is the function library's name.
func LibraryName() string { return library().name }
