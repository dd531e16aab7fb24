package redis

// SetAwaitShared switches AwaitTask between the shared poller and a
// poller per waiter (benchmarks compare them); it returns the old value.
func SetAwaitShared(on bool) bool {
	old := awaitShared
	awaitShared = on
	return old
}
