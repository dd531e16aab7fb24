package spec_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/spec"
)

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90s": 90 * time.Second, "1m30s": 90 * time.Second, "250ms": 250 * time.Millisecond, "2h45m": 165 * time.Minute,
		"90": 90 * time.Second, "0.5": 500 * time.Millisecond, " 1h ": time.Hour, "0": 0, "-5s": -5 * time.Second,
	} {
		got, err := spec.ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "soon", "1e3", "NaN", "Inf", "1d", "99999999999999999999", "1.2.3", "+", "."} {
		if d, err := spec.ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) = %v, want an error", bad, d)
		}
	}
}

// The same task written in the three grammars' inputs decodes to the
// same specification: JSON (API body, --file line) and YAML.
func TestTaskSpecJSONAndYAML(t *testing.T) {
	js := `{"kind": "email.send", "payload": {"to": "a@b.c"}, "queue": "mail", "max_retries": 3,
		"timeout": "30s", "deadline": "2199-01-01T00:00:00Z", "process_in": 90, "retention": "1h",
		"id": "welcome-42", "unique": "2h", "unique_key": "user:42"}`
	ym := `
kind: email.send
payload: {to: a@b.c}
queue: mail
max_retries: 3
timeout: 30s
deadline: 2199-01-01T00:00:00Z
process_in: 90
retention: 1h
id: welcome-42
unique: 2h
unique_key: "user:42"
`
	var a, b spec.Task
	if err := json.Unmarshal([]byte(js), &a); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(ym), &b); err != nil {
		t.Fatal(err)
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("JSON and YAML differ:\n%s\n%s", ja, jb)
	}
	want := `{"kind":"email.send","payload":{"to":"a@b.c"},"queue":"mail","max_retries":3,"timeout":"30s",` +
		`"deadline":"2199-01-01T00:00:00Z","process_in":"1m30s","retention":"1h0m0s","id":"welcome-42","unique":"2h0m0s","unique_key":"user:42"}`
	if string(ja) != want {
		t.Fatalf("canonical form\n%s\nwant\n%s", ja, want)
	}
	// The canonical form reads back the same.
	var c spec.Task
	if err := json.Unmarshal(ja, &c); err != nil {
		t.Fatal(err)
	}
	if jc, _ := json.Marshal(c); string(jc) != want {
		t.Fatalf("round trip: %s", jc)
	}
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}

	// Every option reaches the stored task.
	e := newEnv(t)
	task, err := a.Task()
	if err != nil {
		t.Fatal(err)
	}
	info := e.enqueue(task)
	if info.Kind != "email.send" || string(info.Payload) != `{"to":"a@b.c"}` || info.Encoding != queue.EncodingJSON ||
		info.Queue != "mail" || info.MaxRetries != 3 || info.Timeout != 30*time.Second || info.Retention != time.Hour ||
		info.ID != "welcome-42" || !info.Deadline.Equal(time.Date(2199, 1, 1, 0, 0, 0, 0, time.UTC)) ||
		!info.ProcessAt.Equal(info.EnqueuedAt.Add(90*time.Second)) {
		t.Fatalf("stored task %+v", info)
	}
	// ... unique under its key.
	_, err = e.client.Enqueue(e.ctx, &queue.Task{Kind: "other", Payload: []byte("1"), Encoding: queue.EncodingJSON,
		Options: []queue.Option{queue.Queue("mail"), queue.UniqueKey("user:42")}})
	if !errors.Is(err, queue.ErrDuplicateTask) {
		t.Fatalf("second task under the unique key: %v", err)
	}
}

func TestTaskSpecPayloads(t *testing.T) {
	for _, c := range []struct{ in, payload, enc string }{
		{`{"kind":"k"}`, `null`, queue.EncodingJSON},
		{`{"kind":"k","payload":null}`, `null`, queue.EncodingJSON},
		{`{"kind":"k","payload":[1, 2]}`, `[1,2]`, queue.EncodingJSON},
		{`{"kind":"k","payload":"text"}`, `"text"`, queue.EncodingJSON},
		{`{"kind":"k","payload_base64":"AAH/"}`, "\x00\x01\xff", queue.EncodingRaw},
		{`{"kind":"k","payload_text":"hello"}`, `hello`, queue.EncodingRaw},
		{`{"kind":"k","args":[2, 3]}`, `{"args":[2,3],"kwargs":{}}`, queue.EncodingArgs},
		{`{"kind":"k","kwargs":{"b": 3}}`, `{"args":[],"kwargs":{"b":3}}`, queue.EncodingArgs},
		{`{"kind":"k","args":[2],"kwargs":{"b":3}}`, `{"args":[2],"kwargs":{"b":3}}`, queue.EncodingArgs},
	} {
		s, err := spec.Parse([]byte(c.in))
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		task, err := s.Task()
		if err != nil {
			t.Fatalf("%s: %v", c.in, err)
		}
		if string(task.Payload) != c.payload || task.Encoding != c.enc {
			t.Errorf("%s: payload %q encoding %q, want %q %q", c.in, task.Payload, task.Encoding, c.payload, c.enc)
		}
		// The canonical form keeps payload and encoding.
		b, _ := json.Marshal(s)
		s2, err := spec.Parse(b)
		if err != nil {
			t.Fatalf("%s: re-read %s: %v", c.in, b, err)
		}
		if t2, _ := s2.Task(); string(t2.Payload) != c.payload || t2.Encoding != c.enc {
			t.Errorf("%s: canonical %s reads back as %q %q", c.in, b, t2.Payload, t2.Encoding)
		}
	}
}

// Bad input is refused with an error naming the field (and its range).
func TestTaskSpecErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{``, "empty"},
		{`[1]`, "not a task object: got a JSON array"},
		{`{"kind":`, "not a task object: invalid JSON"},
		{`{"kind":"k"} {"kind":"k"}`, "more than one JSON value"},
		{`{"payload":1}`, "kind: missing"},
		{`{"kind":5}`, "kind: got a JSON number, want a string"},
		{`{"kind":"a b"}`, "control or space characters"},
		{`{"kind":"k","colour":"red"}`, `unknown field "colour"`},
		{`{"kind":"k","retries":3}`, `unknown field "retries"`}, // only tasks files have the old names
		{`{"kind":"k","in":"1s"}`, `unknown field "in"`},
		{`{"kind":"k","max_retries":9223372036854775807}`, "max_retries 9223372036854775807: must be in 0..1000000"},
		{`{"kind":"k","max_retries":99999999999999999999}`, "max_retries 99999999999999999999: not an integer"},
		{`{"kind":"k","max_retries":-1}`, "max_retries -1: must be in 0..1000000"},
		{`{"kind":"k","max_retries":1.5}`, "max_retries 1.5: not an integer"},
		{`{"kind":"k","max_retries":"3"}`, "max_retries \"3\": want a number"},
		{`{"kind":"k","timeout":"soon"}`, `timeout "soon": want a Go duration`},
		{`{"kind":"k","timeout":-1}`, "timeout -1s: must not be negative"},
		{`{"kind":"k","timeout":"900000h"}`, "timeout 900000h0m0s: is over the maximum of 100 years"},
		{`{"kind":"k","retention":1e300}`, "retention 1e300: is too large"},
		{`{"kind":"k","process_in":true}`, "process_in true: want a Go duration"},
		{`{"kind":"k","deadline":"tomorrow"}`, `deadline "tomorrow": want an RFC 3339 time`},
		{`{"kind":"k","deadline":"2000-01-01T00:00:00Z"}`, "deadline 2000-01-01T00:00:00Z: has already passed"},
		{`{"kind":"k","deadline":"9999-01-01T00:00:00Z"}`, "deadline 9999-01-01T00:00:00Z: is outside 1970-01-01 to 2200-01-01"},
		{`{"kind":"k","process_at":"1600-01-01T00:00:00Z"}`, "process_at 1600-01-01T00:00:00Z: is outside"},
		{`{"kind":"k","process_at":"2100-01-01T00:00:00Z","process_in":"1s"}`, "process_at or process_in"},
		{`{"kind":"k","process_at":"2199-01-01T00:00:00Z","deadline":"2198-01-01T00:00:00Z"}`, "deadline 2198-01-01T00:00:00Z: is not after"},
		{`{"kind":"k","payload":1,"payload_base64":"AA=="}`, "give one of payload"},
		{`{"kind":"k","payload":1,"args":[]}`, "give one of payload"},
		{`{"kind":"k","payload_base64":"!!"}`, "payload_base64: not standard base64"},
		{`{"kind":"k","args":{"a":1}}`, "args: want a JSON array"},
		{`{"kind":"k","kwargs":[1]}`, "kwargs: want a JSON object"},
		{`{"kind":"k","queue":"a/b"}`, `queue: queue name "a/b"`},
		{`{"kind":"k","queue":""}`, "queue \"\": empty queue name"},
		{`{"kind":"k","id":"a b"}`, "id: task ID"},
		{`{"kind":"k","unique":true}`, "unique true: want a Go duration"},
		{`{"kind":"k","unique":{"ttl":"1h"}}`, "unique {"},
		{`{"kind":"k","unique":"0s"}`, `unique "0s": must be positive`},
		{`{"kind":"k","unique":"1000000h"}`, `unique 1000000h0m0s: is over the maximum`},
		{`{"kind":"k","unique_key":""}`, `unique_key "": empty key`},
		{`{"kind":"k","unique_key":"a b"}`, `unique_key: task unique key`},
	} {
		_, err := spec.Parse([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to mention %q", c.in, err, c.want)
			continue
		}
		if !errors.Is(err, queue.ErrInvalidOption) {
			t.Errorf("%s: %v does not wrap ErrInvalidOption", c.in, err)
		}
	}
}

func TestParseTaskLineOldNames(t *testing.T) {
	s, err := spec.ParseLine([]byte(`{"kind":"k","retries":2,"in":"30s"}`))
	if err != nil {
		t.Fatal(err)
	}
	if *s.MaxRetries != 2 || *s.ProcessIn != 30*time.Second {
		t.Fatalf("spec %+v", s)
	}
	for _, bad := range []string{`{"kind":"k","retries":2,"max_retries":3}`, `{"kind":"k","in":"1s","process_in":"2s"}`} {
		if _, err := spec.ParseLine([]byte(bad)); err == nil || !strings.Contains(err.Error(), "not both") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

func TestTaskSpecWithDefaults(t *testing.T) {
	three, zero := 3, 0
	hour := time.Hour
	d := spec.Task{Queue: "low", MaxRetries: &three, Retention: &hour, ProcessIn: &hour}
	s := spec.Task{Kind: "k", MaxRetries: &zero, ProcessAt: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}.WithDefaults(d)
	if s.Queue != "low" || *s.MaxRetries != 0 || *s.Retention != time.Hour || s.ProcessIn != nil || s.ProcessAt.IsZero() {
		t.Fatalf("merged %+v", s)
	}
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
}
