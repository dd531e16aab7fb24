package redis_test

import (
	"testing"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

func TestConformance(t *testing.T) {
	testenv.RedisURL(t)
	brokertest.Run(t, func(t *testing.T, clock broker.Clock) broker.Broker {
		b, _ := newTestBroker(t, clock)
		return b
	})
}

// The suite with the scripts run by EVALSHA (Config.Eval), as on a
// server without functions (functions.go); the others use FCALL.
func TestConformanceEval(t *testing.T) {
	testenv.RedisURL(t)
	brokertest.Run(t, func(t *testing.T, clock broker.Clock) broker.Broker {
		b, _ := newTestBrokerWith(t, redisbroker.Config{Clock: clock, Eval: true})
		return b
	})
}

func TestConformanceSmallBatches(t *testing.T) {
	// Batch size 1 splits every batch into many pipelined script calls.
	testenv.RedisURL(t)
	brokertest.Run(t, func(t *testing.T, clock broker.Clock) broker.Broker {
		b, _ := newTestBrokerBatch(t, clock, 1)
		return b
	})
}

// The suite on a real Redis Cluster (3 masters in make test): a cluster
// refuses any command whose keys are in different slots (CROSSSLOT), so
// passing proves every script and multi-key command stays in one slot.
func TestConformanceCluster(t *testing.T) {
	c := testenv.RedisClusterClient(t)
	brokertest.Run(t, func(t *testing.T, clock broker.Clock) broker.Broker {
		return newClusterBroker(t, c, redisbroker.Config{Clock: clock})
	})
}

// Every queue of the suite in 3 shards on the cluster (one per master):
// each call routes by shard, and no command crosses slots.
func TestConformanceClusterSharded(t *testing.T) {
	c := testenv.RedisClusterClient(t)
	brokertest.RunWith(t, brokertest.Options{Sharded: true}, func(t *testing.T, clock broker.Clock) broker.Broker {
		return newClusterBroker(t, c, redisbroker.Config{Clock: clock, DefaultShards: 3})
	})
}

// Sharded on one Redis too: shards are key bases, whatever the server.
func TestConformanceSharded(t *testing.T) {
	testenv.RedisURL(t)
	brokertest.RunWith(t, brokertest.Options{Sharded: true}, func(t *testing.T, clock broker.Clock) broker.Broker {
		b, _ := newTestBrokerWith(t, redisbroker.Config{Clock: clock, DefaultShards: 3})
		return b
	})
}
