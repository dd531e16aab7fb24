package queue

import (
	"context"
	"errors"
	"testing"
)

func TestPayloadEncodings(t *testing.T) {
	jt, err := NewJSONTask("k", map[string]int{"i": 1})
	if err != nil || jt.Encoding != EncodingJSON || string(jt.Payload) != `{"i":1}` {
		t.Fatalf("NewJSONTask = %+v, %v", jt, err)
	}
	if rt := NewTask("k", []byte{0xff}); rt.Encoding != EncodingRaw {
		t.Fatalf("NewTask encoding %q", rt.Encoding)
	}
	ct, err := NewCallTask("add", []any{2, 3}, nil)
	if err != nil || ct.Encoding != EncodingArgs || string(ct.Payload) != `{"args":[2,3],"kwargs":{}}` {
		t.Fatalf("NewCallTask = %s (%q), %v", ct.Payload, ct.Encoding, err)
	}
	kt, _ := NewCallTask("add", nil, map[string]any{"a": 2})
	if string(kt.Payload) != `{"args":[],"kwargs":{"a":2}}` {
		t.Fatalf("kwargs call payload %s", kt.Payload)
	}
	if _, err := validEncoding("yaml"); !errors.Is(err, ErrInvalidOption) {
		t.Fatalf("unknown encoding accepted: %v", err)
	}
	if enc, _ := validEncoding(""); enc != EncodingRaw {
		t.Fatalf(`"" reads as %q`, enc)
	}
}

func TestHandleJSONBindsCalls(t *testing.T) {
	m := newMux()
	HandleJSON(m, "double", func(_ context.Context, n int) (int, error) { return 2 * n, nil })
	run := func(payload, enc string) (string, error) {
		out, err := m.ProcessTask(context.Background(), &TaskInfo{Kind: "double", Payload: []byte(payload), Encoding: enc})
		return string(out), err
	}
	for _, tc := range []struct{ payload, enc string }{{"21", EncodingJSON}, {"21", EncodingRaw}, {"21", ""}, {`{"args":[21],"kwargs":{}}`, EncodingArgs}} {
		if got, err := run(tc.payload, tc.enc); err != nil || got != "42" {
			t.Errorf("payload %s (%q) = %q, %v; want 42", tc.payload, tc.enc, got, err)
		}
	}
	for _, bad := range []string{`{"args":[1,2],"kwargs":{}}`, `{"args":[],"kwargs":{"n":1}}`, `[1]`} {
		if _, err := run(bad, EncodingArgs); !errors.Is(err, SkipRetry) {
			t.Errorf("call %s: err %v, want SkipRetry", bad, err)
		}
	}
}
