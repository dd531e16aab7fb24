package redis

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
)

// Defaults of Config.
const (
	DefaultPrefix      = "conq"
	DefaultBatchSize   = 1000
	DefaultWaitTimeout = time.Second
)

var errInvalidArg = errors.New("redis broker: invalid argument")

// Config configures a Broker. The zero value of every field but Client
// means its default.
type Config struct {
	// Client is the connection to Redis: a *redis.Client (a failover
	// client for Sentinel is one) or a *redis.ClusterClient for a Redis
	// Cluster. Required with New; Open builds one from a URL.
	Client goredis.UniversalClient

	// Prefix starts every key, so several applications can share one
	// Redis. Default "conq". It may not contain '{' or '}'.
	Prefix string

	// BatchSize caps the tasks sent in one script call; larger batches
	// are split and pipelined. Default 1000.
	BatchSize int

	// Clock tells the time; tests inject one. Default the wall clock.
	Clock broker.Clock

	// Logger receives rare operational messages. Default slog.Default().
	Logger *slog.Logger

	// DefaultShards, when above 1, spreads every queue that has no shard
	// record yet over that many shards the first time this broker touches
	// it (stores, fetches or waits for its tasks, pauses it; see
	// broker.Sharder; SetShards sets one queue's count). The record, once
	// written, is what every process follows, whatever its own setting;
	// give every process of a deployment the same value. Default 1:
	// queues are unsharded until SetShards. At most MaxShards.
	DefaultShards int

	// WaitReplicas, when above 0, makes Enqueue, EnqueueUnique and
	// ClaimTick return only after that many replicas of the master that
	// stored the task acknowledged the write (Redis WAIT), so a task
	// acknowledged to its producer survives a failover. If fewer replicas
	// answer within WaitTimeout the call fails with ErrNotReplicated: the
	// task is stored on the master and may or may not survive a failover;
	// enqueueing it again with the same ID is safe (ErrTaskIDConflict
	// then means it is stored). Default 0: no waiting (asynchronous
	// replication, as Redis does by default).
	WaitReplicas int

	// WaitTimeout bounds the wait for WaitReplicas. Default 1 s; keep it
	// below the client's read timeout (go-redis default 3 s).
	WaitTimeout time.Duration

	// MaxWorkflowSteps caps the steps of one workflow: CreateWorkflow
	// refuses a larger one with broker.ErrWorkflowTooLarge before storing
	// anything. A workflow is one hash and one script call, so this
	// bounds the time a create (or a cancel, which visits every step)
	// holds Redis. Default broker.DefaultMaxWorkflowSteps (100,000).
	MaxWorkflowSteps int

	// CrossSlotPoll is how often the broker's mover and forwarder look
	// for work left by any process (xslot.go): workflow steps to carry to
	// a queue in another slot, and ends of such steps to apply to their
	// workflow. They also run at once, in the call, after a settle that
	// left such work, so the poll only matters after a crash between the
	// two. Default DefaultCrossSlotPoll; negative turns both off in this
	// process (for tests of that window: another process must run them).
	CrossSlotPoll time.Duration

	// Eval runs the scripts with EVALSHA. By default they are functions
	// of one library (FUNCTION LOAD, FCALL; Redis 7.0+), which saves
	// Redis 15 to 30 µs of CPU on every call (functions.go); the broker
	// falls back to EVALSHA by itself when the server has no functions
	// or refuses them. Both run the same Lua.
	Eval bool
}

// DefaultCrossSlotPoll is Config.CrossSlotPoll's default.
const DefaultCrossSlotPoll = time.Second

func (c *Config) withDefaults() Config {
	out := *c
	if out.Prefix == "" {
		out.Prefix = DefaultPrefix
	}
	if out.BatchSize <= 0 {
		out.BatchSize = DefaultBatchSize
	}
	if out.Clock == nil {
		out.Clock = broker.SystemClock{}
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	if out.DefaultShards <= 0 {
		out.DefaultShards = 1
	}
	if out.MaxWorkflowSteps <= 0 {
		out.MaxWorkflowSteps = broker.DefaultMaxWorkflowSteps
	}
	if out.CrossSlotPoll == 0 {
		out.CrossSlotPoll = DefaultCrossSlotPoll
	}
	if out.WaitTimeout <= 0 {
		out.WaitTimeout = DefaultWaitTimeout
	}
	return out
}

func (c *Config) validate() error {
	if c.Client == nil {
		return fmt.Errorf("%w: Config.Client is nil", errInvalidArg)
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		return fmt.Errorf("%w: prefix %q contains '{' or '}'", errInvalidArg, c.Prefix)
	}
	if c.DefaultShards > MaxShards {
		return fmt.Errorf("%w: DefaultShards %d is above %d", errInvalidArg, c.DefaultShards, MaxShards)
	}
	if c.WaitReplicas < 0 {
		return fmt.Errorf("%w: WaitReplicas %d is negative", errInvalidArg, c.WaitReplicas)
	}
	if c.BatchSize > 4000 {
		// Keeps script argument lists well inside Lua's limits.
		return fmt.Errorf("%w: BatchSize %d is above 4000", errInvalidArg, c.BatchSize)
	}
	return nil
}
