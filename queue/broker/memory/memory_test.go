package memory_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	"github.com/conqhq/conq/queue/broker/memory"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestConformance(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, clock broker.Clock) broker.Broker {
		b := memory.New(memory.Config{Clock: clock})
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestConformanceThroughFaulty(t *testing.T) {
	// A Faulty with no faults set must be transparent.
	brokertest.Run(t, func(t *testing.T, clock broker.Clock) broker.Broker {
		b := brokertest.NewFaulty(memory.New(memory.Config{Clock: clock}))
		t.Cleanup(func() { b.Close() })
		return b
	})
}

func TestConformanceWithoutOptional(t *testing.T) {
	// A broker with the core roles only: every optional case checks that
	// its calls answer ErrUnsupported.
	brokertest.Run(t, func(t *testing.T, clock broker.Clock) broker.Broker {
		b := brokertest.WithoutOptional(memory.New(memory.Config{Clock: clock}))
		t.Cleanup(func() { b.Close() })
		return b
	})
}
