// Package testenv holds the rules shared by tests that need an outside
// server or program (a private Redis, python3, chromium): when it is
// missing they skip with a message saying how to get it, but fail when CI or
// CONQ_REQUIRE_SERVERS is set, so a CI run cannot pass by skipping them.
//
// It is a normal package, not a _test.go file, so that the tests of every
// package (and of the bench module) can import it; only tests should.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// RedisURLEnv names the variable holding the private test Redis URL, set by
// `source scripts/redis.sh; redis_start` and by make test.
const RedisURLEnv = "CONQ_TEST_REDIS_URL"

// RedisClusterURLEnv names the variable holding the private test Redis
// Cluster's URL in go-redis ParseClusterURL form
// ("redis://host:port?addr=host:port&addr=..."), set by
// `source scripts/redis-cluster.sh; redis_cluster_start` and by make test.
const RedisClusterURLEnv = "CONQ_TEST_REDIS_CLUSTER_URL"

// Required reports whether tests whose servers are missing must fail
// instead of skipping: CI or CONQ_REQUIRE_SERVERS is set.
func Required() bool {
	return os.Getenv("CI") != "" || os.Getenv("CONQ_REQUIRE_SERVERS") != ""
}

// Need ends the test because what is missing: it skips with "what; how",
// or fails under [Required]. how says how to get it.
func Need(tb testing.TB, what, how string) {
	tb.Helper()
	msg := what
	if how != "" {
		msg += "; " + how
	}
	if Required() {
		tb.Fatalf("%s (CI or CONQ_REQUIRE_SERVERS is set, so this fails instead of skipping)", msg)
	}
	tb.Skip(msg)
}

// Broken ends a test whose tools are present but do not work on this
// machine (say, network namespaces in a container without the privilege):
// it skips with "what; how", but fails when CI is set, where the machine is
// expected to allow it. Use [Need] when a tool is missing altogether and CI
// should install it, and a plain Skip when the test cannot run here by
// design (not root).
func Broken(tb testing.TB, what, how string) {
	tb.Helper()
	msg := what
	if how != "" {
		msg += "; " + how
	}
	if os.Getenv("CI") != "" {
		tb.Fatalf("%s (CI is set, so this fails instead of skipping)", msg)
	}
	tb.Skip(msg)
}

// RedisURL returns $CONQ_TEST_REDIS_URL, or ends the test with [Need] when
// it is unset.
func RedisURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(RedisURLEnv)
	if u == "" {
		Need(tb, RedisURLEnv+" is not set",
			"start a private redis-server with `source scripts/redis.sh; redis_start` (or run make test) to run the Redis tests")
	}
	return u
}

// RedisClient returns a client of the test Redis ([RedisURL]), closed when
// tb ends. It does not dial: the first command does.
func RedisClient(tb testing.TB) *goredis.Client {
	tb.Helper()
	opts, err := redisbroker.ParseURL(RedisURL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	c := goredis.NewClient(opts)
	tb.Cleanup(func() { c.Close() })
	return c
}

// RedisClusterURL returns $CONQ_TEST_REDIS_CLUSTER_URL, or ends the test
// with [Need] when it is unset.
func RedisClusterURL(tb testing.TB) string {
	tb.Helper()
	u := os.Getenv(RedisClusterURLEnv)
	if u == "" {
		Need(tb, RedisClusterURLEnv+" is not set",
			"start a private Redis Cluster with `source scripts/redis-cluster.sh; redis_cluster_start` (or run make test) to run the Redis Cluster tests")
	}
	return u
}

// RedisClusterClient returns a cluster client of the test Redis Cluster
// ([RedisClusterURL]), closed when tb ends. It does not dial: the first
// command does.
func RedisClusterClient(tb testing.TB) *goredis.ClusterClient {
	tb.Helper()
	opts, err := goredis.ParseClusterURL(RedisClusterURL(tb))
	if err != nil {
		tb.Fatalf("%s: %v", RedisClusterURLEnv, err)
	}
	c := goredis.NewClusterClient(opts)
	tb.Cleanup(func() { c.Close() })
	return c
}

// UniquePrefix returns a key prefix no other test uses,
// "conqtest-<test name>-<random hex>", and deletes the keys under it
// (prefix:*) with c when tb ends; c may be a *goredis.ClusterClient (see
// [DeleteKeys]). Register it after c's own cleanup (as [RedisClient] and
// [RedisClusterClient] do) so that c is still open then.
func UniquePrefix(tb testing.TB, c goredis.UniversalClient) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	p := "conqtest-" + keySafe(tb.Name()) + "-" + hex.EncodeToString(b[:])
	tb.Cleanup(func() { DeleteKeys(c, p+":*") })
	return p
}

// keySafe maps the characters of a test name that would be awkward in a key
// (a hash tag's braces, SCAN glob characters, separators) to safe ones.
func keySafe(name string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
			return r
		case r == '/':
			return '-'
		}
		return '_'
	}, name)
}

// DeleteKeys unlinks every key matching the SCAN pattern, giving up
// quietly on an error or after ten seconds. On a *goredis.ClusterClient it
// scans every master (SCAN only sees the node it is sent to) and unlinks
// the keys one command each, pipelined to that node: a multi-key UNLINK
// would be CROSSSLOT.
func DeleteKeys(c goredis.UniversalClient, pattern string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cc, ok := c.(*goredis.ClusterClient); ok {
		_ = cc.ForEachMaster(ctx, func(ctx context.Context, node *goredis.Client) error {
			scanDelete(ctx, node, pattern, true)
			return nil
		})
		return
	}
	scanDelete(ctx, c, pattern, false)
}

// scanDelete is DeleteKeys on one node; oneByOne sends one UNLINK per key.
func scanDelete(ctx context.Context, c goredis.UniversalClient, pattern string, oneByOne bool) {
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return
		}
		if len(keys) > 0 {
			if oneByOne {
				_, _ = c.Pipelined(ctx, func(p goredis.Pipeliner) error {
					for _, k := range keys {
						p.Unlink(ctx, k)
					}
					return nil
				})
			} else {
				c.Unlink(ctx, keys...)
			}
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}
