package queue_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/conqhq/conq/queue"
)

func TestScanArgs(t *testing.T) {
	call := func(args []any, kwargs map[string]any) *queue.TaskInfo {
		tk, err := queue.NewCallTask("add", args, kwargs)
		if err != nil {
			t.Fatal(err)
		}
		return &queue.TaskInfo{Kind: tk.Kind, Payload: tk.Payload, Encoding: tk.Encoding}
	}
	var a int
	var s string
	if err := queue.ScanArgs(call([]any{2, "x"}, nil), &a, &s); err != nil || a != 2 || s != "x" {
		t.Fatalf("ScanArgs = %v, %d, %q", err, a, s)
	}
	if err := queue.ScanArgs(call(nil, nil)); err != nil {
		t.Fatalf("no arguments: %v", err)
	}
	for _, c := range []struct {
		name string
		t    *queue.TaskInfo
		dst  []any
		want string
	}{
		{"too few", call([]any{1}, nil), []any{&a, &a}, "takes 2 positional argument(s); the call has 1 positional and 0 keyword"},
		{"too many", call([]any{1, 2, 3}, nil), []any{&a, &a}, "the call has 3 positional"},
		{"keywords", call([]any{1}, map[string]any{"b": 2}), []any{&a, &a}, "1 positional and 1 keyword"},
		{"type", call([]any{1, 2}, nil), []any{&a, &s}, "argument 1 (want *string)"},
		{"json payload", &queue.TaskInfo{Kind: "add", Payload: []byte(`[1,2]`), Encoding: queue.EncodingJSON}, []any{&a}, `not a payload of encoding "json"`},
		{"raw payload", &queue.TaskInfo{Kind: "add", Payload: []byte(`[1,2]`)}, []any{&a}, `not a payload of encoding "raw"`},
		{"malformed", &queue.TaskInfo{Kind: "add", Payload: []byte(`{"args":[1,`), Encoding: queue.EncodingArgs}, []any{&a}, "malformed call arguments"},
		{"not a pointer", call([]any{1}, nil), []any{a}, "argument 0 (want int)"},
	} {
		err := queue.ScanArgs(c.t, c.dst...)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), `"add"`) || !errors.Is(err, queue.SkipRetry) {
			t.Errorf("%s: err = %v; want one naming %q, wrapping SkipRetry", c.name, err, c.want)
		}
	}
}

// Any payload gives arguments or an error wrapping SkipRetry; never a panic.
func FuzzScanArgs(f *testing.F) {
	for _, s := range []string{`{"args":[1,"x"],"kwargs":{}}`, `{"args":[]}`, `{"args":[1],"kwargs":{"b":2}}`, `{"args":null}`, `[1]`, `{"args":[{"a":[1]},null]}`} {
		f.Add([]byte(s), uint8(2))
	}
	f.Fuzz(func(t *testing.T, payload []byte, n uint8) {
		dst := make([]any, int(n)%4)
		for i := range dst {
			switch i % 3 {
			case 0:
				dst[i] = new(int)
			case 1:
				dst[i] = new(string)
			default:
				dst[i] = new(any)
			}
		}
		if err := queue.ScanArgs(&queue.TaskInfo{Kind: "k", Payload: payload, Encoding: queue.EncodingArgs}, dst...); err != nil && !errors.Is(err, queue.SkipRetry) {
			t.Fatalf("error not wrapping SkipRetry: %v", err)
		}
	})
}
