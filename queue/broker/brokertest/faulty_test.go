package brokertest_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/brokertest"
	"github.com/conqhq/conq/queue/broker/memory"
)

// TestFaultyOverridesEveryCall checks that a fault can be injected on every
// call of the contract: a method Faulty only inherits from the embedded
// broker would pass through while the broker is "down".
func TestFaultyOverridesEveryCall(t *testing.T) {
	mem := memory.New(memory.Config{})
	defer mem.Close()
	f := brokertest.NewFaulty(mem)
	f.SetDown(nil)
	exempt := map[string]bool{"Close": true, "Clock": true, "Capabilities": true}
	it := reflect.TypeFor[broker.Broker]()
	v := reflect.ValueOf(broker.Broker(f))
	for i := range it.NumMethod() {
		m := it.Method(i)
		if exempt[m.Name] {
			continue
		}
		mt := m.Type
		args := make([]reflect.Value, mt.NumIn())
		for j := range args {
			args[j] = reflect.Zero(mt.In(j))
		}
		args[0] = reflect.ValueOf(context.Background())
		var out []reflect.Value
		if mt.IsVariadic() {
			out = v.MethodByName(m.Name).CallSlice(args)
		} else {
			out = v.MethodByName(m.Name).Call(args)
		}
		err, _ := out[len(out)-1].Interface().(error)
		if !errors.Is(err, brokertest.ErrInjected) {
			t.Errorf("Faulty.%s while down = %v, want ErrInjected: Faulty does not override it", m.Name, err)
		}
		if f.Failures(m.Name) != 1 {
			t.Errorf("Faulty.%s: %d failures counted under its name, want 1", m.Name, f.Failures(m.Name))
		}
	}
	if f.Clock() != mem.Clock() || f.Capabilities() != mem.Capabilities() {
		t.Error("Faulty does not pass Clock and Capabilities through")
	}
}
