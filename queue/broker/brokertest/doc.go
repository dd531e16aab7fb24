// Package brokertest holds the one conformance suite every broker.Broker
// implementation must pass, plus helpers for tests of code that uses a
// broker: ManualClock, a clock moved by hand, and Faulty, a wrapper that
// fails calls on demand.
//
//	func TestConformance(t *testing.T) {
//		brokertest.Run(t, func(t *testing.T, clock broker.Clock) broker.Broker {
//			b := memory.New(memory.Config{Clock: clock})
//			t.Cleanup(func() { b.Close() })
//			return b
//		})
//	}
//
// The suite moves the clock only by whole milliseconds from a whole second,
// and compares times to the millisecond, so brokers may store milliseconds.
package brokertest
