// Package brokertest holds the one conformance suite every broker.Broker
// implementation must pass, plus helpers for tests of code that uses a
// broker: ManualClock, a clock moved by hand, Faulty, a wrapper that fails
// calls on demand, and WithoutOptional, a broker with the core roles only.
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
//
// # Policy, written down
//
//   - One suite for every broker; nothing is skipped. A case of an optional
//     role the broker does not list in Capabilities checks that the role's
//     calls fail with broker.ErrUnsupported.
//   - Faulty embeds the whole contract and overrides every call, so it can
//     fail any call production makes and hides nothing.
package brokertest
