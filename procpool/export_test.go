package procpool

import "go.uber.org/goleak"

// WorkerPathForExamples gives the examples the test worker binary.
func WorkerPathForExamples() string { return testWorker }

// IgnoreSpawner tells goleak about the process-wide spawner goroutine.
var IgnoreSpawner = goleak.IgnoreAnyFunction("github.com/conqhq/conq/procpool.spawnLoop")
