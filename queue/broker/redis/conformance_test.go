package redis_test

import (
	"testing"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
)

func TestConformance(t *testing.T) {
	testenv.RedisURL(t)
	brokertest.Run(t, func(t *testing.T, clock broker.Clock) broker.Broker {
		b, _ := newTestBroker(t, clock)
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
