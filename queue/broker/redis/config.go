package redis

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
)

// Defaults of Config.
const (
	DefaultPrefix    = "conq"
	DefaultBatchSize = 1000
)

var errInvalidArg = errors.New("redis broker: invalid argument")

// Config configures a Broker. The zero value of every field but Client
// means its default.
type Config struct {
	// Client is the connection to Redis: a *redis.Client (or any
	// UniversalClient). Required with New; Open builds one from a URL.
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
}

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
	return out
}

func (c *Config) validate() error {
	if c.Client == nil {
		return fmt.Errorf("%w: Config.Client is nil", errInvalidArg)
	}
	if strings.ContainsAny(c.Prefix, "{}") {
		return fmt.Errorf("%w: prefix %q contains '{' or '}'", errInvalidArg, c.Prefix)
	}
	if c.BatchSize > 4000 {
		// Keeps script argument lists well inside Lua's limits.
		return fmt.Errorf("%w: BatchSize %d is above 4000", errInvalidArg, c.BatchSize)
	}
	return nil
}
