package spec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
	"github.com/conqhq/conq/queue/spec"
)

// Fuzz targets of the task specification decoders (seed corpora in
// testdata/fuzz; `make fuzz` runs them longer, docs/reliability.md has the
// counts). Every input either decodes or fails with an error wrapping
// ErrInvalidOption; nothing panics.

var specSeeds = []string{
	`{"kind":"email.send","payload":{"to":"a@b.c"},"queue":"mail","max_retries":3,"timeout":"30s","deadline":"2199-01-01T00:00:00Z","process_in":90,"retention":"1h","id":"welcome-42","unique":"2h","unique_key":"user:42"}`,
	`{"kind":"k","payload_base64":"AAH/"}`,
	`{"kind":"k","payload_text":"hello"}`,
	`{"kind":"add","args":[2,3],"kwargs":{"b":3}}`,
	`{"kind":"k","max_retries":9223372036854775807}`,
	`{"kind":"k","timeout":1e300}`,
	`{"kind":"k","process_at":"2100-01-01T00:00:00.123456789+02:00"}`,
	`{"kind":"k","retries":2,"in":"30s"}`,
	`{"kind":"k","unique_key":"k"}`, `{"kind":"k","unique":3600}`,
	`{"kind":"k","payload":null,"queue":null}`,
	`[1]`, `{`, `null`, ``,
}

func FuzzTaskSpecJSON(f *testing.F) {
	for _, s := range specSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s spec.Task
		if err := json.Unmarshal(b, &s); err != nil {
			var se *spec.Error
			if !errors.Is(err, queue.ErrInvalidOption) && !errors.As(err, &se) && !isJSONError(err) {
				t.Fatalf("unclassified error %T %v", err, err)
			}
			return
		}
		checkSpec(t, s)
	})
}

// isJSONError: encoding/json's own errors for input that is not one JSON
// value (it checks that before calling UnmarshalJSON).
func isJSONError(err error) bool {
	var se *json.SyntaxError
	return errors.As(err, &se) || strings.Contains(err.Error(), "unexpected end of JSON input")
}

// checkSpec: a decoded spec validates or not without panicking, and its
// canonical form decodes to the same canonical form.
func checkSpec(t *testing.T, s spec.Task) {
	t.Helper()
	valid := s.Validate() == nil
	task, err := s.Task()
	if (err == nil) != valid {
		t.Fatalf("Validate %v but Task error %v", valid, err)
	}
	if err == nil && task.Encoding == "" {
		t.Fatal("task without an encoding")
	}
	c, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("canonical form: %v", err)
	}
	var s2 spec.Task
	if err := json.Unmarshal(c, &s2); err != nil {
		t.Fatalf("canonical form %s does not decode: %v", c, err)
	}
	c2, _ := json.Marshal(s2)
	if !bytes.Equal(c, c2) {
		t.Fatalf("canonical form changes:\n%s\n%s", c, c2)
	}
}

func FuzzTaskLine(f *testing.F) {
	for _, s := range specSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := spec.ParseLine(b)
		if err != nil {
			if !errors.Is(err, queue.ErrInvalidOption) {
				t.Fatalf("unclassified error %T %v", err, err)
			}
			return
		}
		checkSpec(t, s)
	})
}

func FuzzTaskSpecYAML(f *testing.F) {
	f.Add([]byte("kind: email.send\npayload: {to: a@b.c}\nqueue: mail\nmax_retries: 3\ntimeout: 30s\ndeadline: 2199-01-01T00:00:00Z\nprocess_in: 90\nretention: 1h\nid: welcome-42\nunique: 2h\nunique_key: \"user:42\"\n"))
	f.Add([]byte("kind: k\nargs: [1, {a: [b]}]\nkwargs: {x: .inf}\n"))
	f.Add([]byte("kind: k\npayload: {1: 2}\n"))
	f.Add([]byte("kind: k\npayload: !!binary AAH/\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("- 1\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		var s spec.Task
		if err := yaml.Unmarshal(b, &s); err != nil {
			return // yaml.v3's own errors, or ours
		}
		if s.Kind == "" && s.Payload == nil && s.Queue == "" && s.MaxRetries == nil {
			return // an empty document leaves s untouched
		}
		checkSpec(t, s)
	})
}

func FuzzScheduleFile(f *testing.F) {
	f.Add([]byte(`
timezone: Europe/Berlin
missed: run_once
entries:
  - name: nightly
    spec: "0 30 2 * * *"
    kind: report.nightly
    queue: reports
    json: {day: yesterday}
    max_retries: 2
    timeout: 10m
  - spec: "@every 30s"
    kind: ping
    payload: hello
  - spec: "CRON_TZ=Asia/Tokyo 0 9 * * 1-5"
    kind: market.open
    args: [1]
`))
	f.Add([]byte(`{"entries":[{"spec":"@hourly","kind":"k","payload":{"a":1},"process_in":30}]}`))
	f.Add([]byte("entries:\n  - spec: '@every 1h'\n    kind: k\n    id: x\n"))
	f.Add([]byte("entries:\n  - spec: '* * 31 2 *'\n    kind: k\n"))
	mem := memory.New(memory.Config{}) // registering touches no broker state
	defer mem.Close()
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := spec.ParseSchedule(bytes.NewReader(b))
		if err != nil {
			return
		}
		cfg, err := file.Config(queue.SchedulerConfig{})
		if err != nil {
			return
		}
		s, err := queue.NewScheduler(mem, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := file.Register(s); err != nil {
			if !errors.Is(err, queue.ErrInvalidOption) {
				t.Fatalf("unclassified error %T %v", err, err)
			}
			return
		}
		for _, e := range s.Entries() {
			if e.Next.IsZero() {
				t.Fatalf("entry %s registered with no next tick", e.Name)
			}
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"90s", "1m30s", "250ms", "2h45m", "90", "0.5", "-5s", "1e3", "NaN", "9223372036854775807", "0.0000000001", "+.5", " 1h "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := spec.ParseDuration(s)
		if err != nil {
			return
		}
		// Its Go form reads back the same.
		if d2, err := spec.ParseDuration(d.String()); err != nil || d2 != d {
			t.Fatalf("%q = %v; %q reads back as %v, %v", s, d, d.String(), d2, err)
		}
		_ = time.Duration(d)
	})
}

// FuzzParseList: ParseList decodes a list exactly as UnmarshalJSON decodes
// each element (the same tasks, or the same error at the same index).
func FuzzParseList(f *testing.F) {
	f.Add([]byte(`[` + strings.Join(specSeeds[:len(specSeeds)-4], ",") + `]`))
	for _, s := range []string{`[]`, `null`, `{}`, `[null]`, `[1]`, `[{"kind":"k"},{"kind":"k","nope":1}]`,
		`[{"kind":"k","retries":1}]`, `[{"kind":"k","args":{"a":1}}]`, `[{"kind":"k","kwargs":[1]}]`,
		`[{"kind":"k","args":[1, {"b": 2}],"kwargs":{"z": 1, "a": [ 2 ]}}]`, `[{"kind":"k"}] [1]`, `[{"KIND":"k"}]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, bad, err := spec.ParseList(b)
		var items []json.RawMessage
		if json.Unmarshal(b, &items) != nil || items == nil {
			if err == nil || bad != -1 {
				t.Fatalf("not a list, yet ParseList: %v at %d", err, bad)
			}
			return
		}
		for i, it := range items {
			var want spec.Task
			werr := json.Unmarshal(it, &want)
			switch {
			case err != nil && i < bad:
				if werr != nil {
					t.Fatalf("element %d: %v alone, ParseList's first error is at %d", i, werr, bad)
				}
				continue
			case err != nil:
				if werr == nil || werr.Error() != err.Error() {
					t.Fatalf("element %d: %v alone, ParseList: %v", i, werr, err)
				}
				return
			case werr != nil:
				t.Fatalf("element %d: %v alone, ParseList took it", i, werr)
			}
			w, _ := json.Marshal(want)
			g, _ := json.Marshal(got[i])
			if !bytes.Equal(w, g) {
				t.Fatalf("element %d: %s alone, %s in the list", i, w, g)
			}
		}
		if err != nil || len(got) != len(items) {
			t.Fatalf("%d elements, ParseList %d, %v", len(items), len(got), err)
		}
	})
}
