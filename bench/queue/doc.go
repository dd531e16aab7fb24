// Package queue compares conq's Redis-backed task queue with asynq on the
// same private Redis: enqueue rate, processing rate, Redis memory per
// pending task, and enqueue-to-start latency at a fixed rate. See
// docs/benchmarks.md for the commands and results.
package queue
