package redis

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/conqhq/conq/queue/broker"
)

// TestResultForms: the forms Complete sends are those broker.InputValue
// derives from a result (raw value, and compacted as json.Marshal writes
// a json.RawMessage).
func TestResultForms(t *testing.T) {
	for _, r := range []string{"", "1", `"x"`, " 1 ", `{"a": [1, 2]}`, `"<&>"`, "\"\u2028\"", "not json", "\xff", `{"a":"b"}`, "[1,\n2]"} {
		f := resultForms([]byte(r))
		raw, compact := r, r
		switch {
		case r == "":
			raw, compact = "null", "null"
		case f == "":
		case f[0] == 'c':
			compact = f[1:]
		case f[0] == 'q':
			raw, compact = f[1:], f[1:]
		}
		res := func(int) broker.StepResult { return broker.StepResult{OK: true, Result: []byte(r)} }
		if got := broker.InputValue(broker.Input{Step: 0}, false, res); string(got) != raw {
			t.Errorf("%q: raw form %q, InputValue %q", r, raw, got)
		}
		list := broker.InputValue(broker.Input{Step: -1, List: []broker.Input{{Step: 0}}}, false, res)
		if string(list) != "["+compact+"]" {
			t.Errorf("%q: compact form %q, InputValue of a list %q", r, compact, list)
		}
	}
}

func TestInputSpecRoundTrip(t *testing.T) {
	for _, in := range []broker.Input{
		{Step: 0}, {Step: 12345}, {Step: -1},
		{Step: -1, List: []broker.Input{{Step: 1}, {Step: -1, List: []broker.Input{{Step: 2}, {Step: -1}}}, {Step: 3}}},
	} {
		s := inputSpec(in)
		out, err := parseInputSpec(s)
		if err != nil || inputSpec(out) != s {
			t.Fatalf("%s: parsed %+v, %v", s, out, err)
		}
	}
	for _, bad := range []string{"", "[", "[1", "[1,", "x", "1]", "[1;2]", "-1", "1234567890"} {
		if _, err := parseInputSpec(bad); err == nil {
			t.Errorf("parseInputSpec(%q) accepted", bad)
		}
	}
}

func TestMsgWorkflowRoundTrip(t *testing.T) {
	in := &broker.Task{Kind: "k", Payload: []byte("[1]"), Encoding: "json", Workflow: "wf,1", Step: 70000}
	var out broker.Task
	if err := decodeMsg(string(encodeMsg(in)), &out); err != nil {
		t.Fatal(err)
	}
	if out.Workflow != in.Workflow || out.Step != in.Step || !bytes.Equal(out.Payload, in.Payload) || out.Kind != "k" {
		t.Fatalf("decoded %+v", out)
	}
	plain := encodeMsg(&broker.Task{Kind: "k"})
	if bytes.Contains(plain, []byte{msgVersionWf}) {
		t.Fatal("a plain task was written as a workflow step record")
	}
}

// FuzzWorkflowRecords: workflow records come from Redis; reading them
// must fail cleanly, never panic, and a spec that parses writes back the
// same.
func FuzzWorkflowRecords(f *testing.F) {
	f.Add("[0,[1,2],[]]", "2:ab0:3:1,2")
	f.Add("7", "")
	f.Add("[[[[", "9:x")
	f.Fuzz(func(t *testing.T, spec, rec string) {
		if in, err := parseInputSpec(spec); err == nil {
			if got := inputSpec(in); got != spec {
				// Leading zeros read as numbers: only the value must agree.
				again, err := parseInputSpec(got)
				if err != nil || inputSpec(again) != got {
					t.Fatalf("%q parsed, wrote %q, which reads back differently", spec, got)
				}
			}
		}
		_, _ = splitFields(rec)
		_, _, _ = decodeWorkflow("w", []any{"n", "1", "st", "R", "out", spec, "c0", rec, "s0", "e", "o0", rec}, []any{"0", rec, int64(1), false})
		// A step waiting to retry: its meta, then its error history.
		_, _, _ = decodeWorkflow("w", []any{"n", "1", "st", "R", "c0", "2:ab0:", "s0", "e"}, []any{"0", "r," + rec, int64(1), rec})
		_, _ = lastError(rec)
	})
}

func TestResultFormsJSON(t *testing.T) {
	// The forms are themselves valid JSON.
	for _, r := range []string{" [1] ", "x\xff"} {
		f := resultForms([]byte(r))
		if !json.Valid([]byte(f[1:])) {
			t.Fatalf("%q: form %q is not JSON", r, f)
		}
	}
}
