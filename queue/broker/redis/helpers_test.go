package redis_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// testURL returns the private test Redis, skipping (or failing under CI /
// CONQ_REQUIRE_SERVERS) when there is none.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv("CONQ_TEST_REDIS_URL")
	if u == "" {
		if os.Getenv("CI") != "" || os.Getenv("CONQ_REQUIRE_SERVERS") != "" {
			t.Fatal("CONQ_TEST_REDIS_URL is not set; start a private server with `source scripts/redis.sh; redis_start` (or run make test)")
		}
		t.Skip("CONQ_TEST_REDIS_URL is not set; run `source scripts/redis.sh; redis_start` (or make test) to run the Redis tests")
	}
	return u
}

// testClient connects to the test Redis; the client is closed with t.
func testClient(t testing.TB) *goredis.Client {
	t.Helper()
	opts, err := redisbroker.ParseURL(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	c := goredis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("test redis at %s: %v", opts.Addr, err)
	}
	return c
}

// uniquePrefix returns a key prefix no other test uses, and deletes its
// keys when t ends.
func uniquePrefix(t testing.TB, c goredis.UniversalClient) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", "-", " ", "_", "{", "(", "}", ")").Replace(t.Name())
	p := "conqtest-" + name + "-" + hex.EncodeToString(b[:])
	t.Cleanup(func() { deleteKeys(c, p+":*") })
	return p
}

func deleteKeys(c goredis.UniversalClient, pattern string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, pattern, 1000).Result()
		if err != nil {
			return
		}
		if len(keys) > 0 {
			c.Unlink(ctx, keys...)
		}
		if cursor = next; cursor == 0 {
			return
		}
	}
}

// newTestBroker returns a broker on the test Redis with its own prefix.
func newTestBroker(t testing.TB, clock broker.Clock) (*redisbroker.Broker, *goredis.Client) {
	t.Helper()
	c := testClient(t)
	b, err := redisbroker.New(redisbroker.Config{Client: c, Prefix: uniquePrefix(t, c), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, c
}

func newTestBrokerBatch(t testing.TB, clock broker.Clock, batch int) (*redisbroker.Broker, *goredis.Client) {
	t.Helper()
	c := testClient(t)
	b, err := redisbroker.New(redisbroker.Config{Client: c, Prefix: uniquePrefix(t, c), Clock: clock, BatchSize: batch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, c
}
