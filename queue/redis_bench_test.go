package queue_test

import (
	"context"
	"crypto/rand"
	"os"
	"testing"

	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// BenchmarkQueueRedis is BenchmarkQueueMemory against the Redis broker at
// CONQ_TEST_REDIS_URL (make test starts a private one); skipped without it.
func BenchmarkQueueRedis(b *testing.B) {
	url := os.Getenv("CONQ_TEST_REDIS_URL")
	if url == "" {
		b.Skip("CONQ_TEST_REDIS_URL is not set")
	}
	ctx := context.Background()
	br, err := redisbroker.Open(ctx, url, redisbroker.Config{Prefix: "conqbench-" + rand.Text()[:8]})
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	b.Run("enqueue+process", func(b *testing.B) { benchBroker(b, br, 100, 1000, false) })
	b.Run("process", func(b *testing.B) { benchBroker(b, br, 1000, 1000, true) })
}
