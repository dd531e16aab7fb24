package redis_test

import (
	"context"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue/broker"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// testClient connects to the test Redis (skipping, or failing under CI /
// CONQ_REQUIRE_SERVERS, when there is none); the client is closed with t.
func testClient(t testing.TB) *goredis.Client {
	t.Helper()
	c := testenv.RedisClient(t)
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("test redis at %s: %v", c.Options().Addr, err)
	}
	return c
}

// newTestBroker returns a broker on the test Redis with its own prefix.
func newTestBroker(t testing.TB, clock broker.Clock) (*redisbroker.Broker, *goredis.Client) {
	t.Helper()
	return newTestBrokerWith(t, redisbroker.Config{Clock: clock})
}

func newTestBrokerBatch(t testing.TB, clock broker.Clock, batch int) (*redisbroker.Broker, *goredis.Client) {
	t.Helper()
	return newTestBrokerWith(t, redisbroker.Config{Clock: clock, BatchSize: batch})
}

// newTestBrokerWith returns a broker with cfg on the test Redis and its
// own prefix (cfg.Client and cfg.Prefix are set here), closed with t.
func newTestBrokerWith(t testing.TB, cfg redisbroker.Config) (*redisbroker.Broker, *goredis.Client) {
	t.Helper()
	c := testClient(t)
	cfg.Client, cfg.Prefix = c, testenv.UniquePrefix(t, c)
	b, err := redisbroker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, c
}

// newClusterBroker returns a broker on the cluster client c with its own
// prefix (cfg.Client and cfg.Prefix are set here).
func newClusterBroker(t testing.TB, c *goredis.ClusterClient, cfg redisbroker.Config) *redisbroker.Broker {
	t.Helper()
	cfg.Client = c
	cfg.Prefix = testenv.UniquePrefix(t, c)
	b, err := redisbroker.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// runCallers runs call(c, k) for each k < each in each of callers
// goroutines c, fails the test if they have not all returned in a minute,
// and reports every error they returned.
func runCallers(t *testing.T, callers, each int, call func(c, k int) error) {
	t.Helper()
	errs := make(chan error, callers*each)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for k := range each {
				if err := call(c, k); err != nil {
					errs <- err
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		t.Fatalf("%d concurrent callers did not all return in 1m", callers)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
