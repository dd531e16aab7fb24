package spec_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/conqhq/conq/queue/spec"
)

func TestParseFlowRejects(t *testing.T) {
	for in, want := range map[string]string{
		`{"flow":{"group":[]}}`: "flow.group: empty",
		`{"flow":{"chain":[{"task":{"kind":"a"}}, {"group":[]}]}}`: "flow.chain[1].group: empty",
		`{"flow":{"task":{"kind":"a"},"group":[]}}`:                "exactly one",
		`{"nope":1}`: "unknown field",
		`{"flow":{"chord":{"header":[{"task":{"kind":"a"}}]}}}`:       "no body",
		`{"flow":{"group":[{"task":{"kind":"a"}}],"immutable":true}}`: "only a task node",
	} {
		if _, err := spec.ParseFlow([]byte(in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseFlow(%s) = %v, want error containing %q", in, err, want)
		}
	}
	f, err := spec.ParseFlow([]byte(`{"flow":{"chord":{"header":[{"chain":[{"task":{"kind":"a","args":[1]}},{"task":{"kind":"b","args":[]}}]}],"body":{"task":{"kind":"s"}},"tolerate_failures":true}},"retention":"1h"}`))
	if err != nil || f.Steps != 3 {
		t.Fatalf("ParseFlow = %+v, %v", f, err)
	}
}

func FuzzParseFlow(f *testing.F) {
	for _, s := range []string{
		`{"flow":{"task":{"kind":"a"}}}`,
		`{"flow":{"chain":[{"task":{"kind":"a","args":[1]}},{"task":{"kind":"b","payload":{"x":1}},"immutable":true}]}}`,
		`{"flow":{"chord":{"header":[{"task":{"kind":"a"}}],"body":{"task":{"kind":"s","args":[5]},"immutable":true},"tolerate_failures":true}}}`,
		`{"flow":{"chain":[{"task":{"kind":"a"}}],"immutable":false}}`,
		`{"flow":{"chain":[{"task":{"kind":"a","args":[2,2]}},{"task":{"kind":"m","args":[4]}}]}}`,
		`{"flow":{"chord":{"header":[{"group":[{"task":{"kind":"a"}}]}],"body":{"task":{"kind":"s"}}}},"queue":"q","retention":"24h"}`,
		`{"flow":{"group":[]}}`,
		`{"flow":{"task":{"kind":"a","id":"x"}}}`,
		`{"flow":{"task":{"kind":"a","unique":"1h"}}}`,
		`{"flow":{"group":[{"task":{"kind":"a","queue":"own"}},{"task":{"kind":"b"}}]},"queue":"file","retention":"2h"}`,
		`{"flow":{"task":{"kind":"a"}}}{"flow":{"task":{"kind":"b"}}}`,
		`{"flow":{"chord":{"header":[{"task":{"kind":"a"}}],"body":null}}}`,
		`{"flow":null}`,
		`{"flow":{"task":{"kind":"a"}},"retention":90}`,
		`{"flow":{"task":{"kind":"a"}},"retention":"soon"}`,
		`{"flow":{"task":{"kind":"a"}},"queue":"bad queue"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fl, err := spec.ParseFlow(data) // must not panic
		if err != nil {
			return
		}
		if fl.Steps != len(fl.Tasks) || fl.Steps == 0 {
			t.Fatalf("Steps %d, Tasks %d", fl.Steps, len(fl.Tasks))
		}
		// A small limit refuses what is over it and nothing else.
		_, err = spec.ParseFlowWith(data, spec.FlowOptions{MaxSteps: 2})
		if (fl.Steps > 2) != errors.Is(err, spec.ErrFlowTooLarge) {
			t.Fatalf("%d steps, limit 2: %v", fl.Steps, err)
		}
		for _, st := range fl.Tasks {
			if st.Kind == "" || st.Queue == "" || st.Path == "" {
				t.Fatalf("step %+v", st)
			}
		}
	})
}
