package spec_test

import (
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/spec"
)

// Schedule file entries are task specifications: the canonical names and
// grammar, the older spellings still read as before.
func TestScheduleFileTaskSpec(t *testing.T) {
	src := `
entries:
  - name: canonical
    spec: "@every 1h"
    kind: report
    payload: {day: yesterday}
    max_retries: 2
    timeout: 90          # seconds
    retention: 1h
    process_in: 30s
  - name: old-json
    spec: "@every 1h"
    kind: report
    json: {day: yesterday}
  - name: old-text
    spec: "@every 1h"
    kind: ping
    payload: '{"day": "yesterday"}'
  - name: call
    spec: "@every 1h"
    kind: add
    args: [2, 3]
  - name: bare
    spec: "@every 1h"
    kind: heartbeat
`
	f, err := spec.ParseSchedule(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ payload, enc string }{
		{`{"day":"yesterday"}`, queue.EncodingJSON},
		{`{"day":"yesterday"}`, queue.EncodingJSON},
		{`{"day": "yesterday"}`, queue.EncodingRaw},
		{`{"args":[2,3],"kwargs":{}}`, queue.EncodingArgs},
		{`null`, queue.EncodingJSON},
	}
	for i, e := range f.Entries {
		task, err := e.Task.Task()
		if err != nil {
			t.Fatalf("entry %s: %v", e.Name, err)
		}
		if string(task.Payload) != want[i].payload || task.Encoding != want[i].enc {
			t.Errorf("entry %s: payload %q (%s), want %q (%s)", e.Name, task.Payload, task.Encoding, want[i].payload, want[i].enc)
		}
	}
	c := f.Entries[0].Task
	if *c.MaxRetries != 2 || *c.Timeout != 90*time.Second || *c.Retention != time.Hour || *c.ProcessIn != 30*time.Second {
		t.Fatalf("canonical entry %+v", c)
	}
	e := newEnv(t)
	if err := f.Register(e.scheduler(queue.SchedulerConfig{})); err != nil {
		t.Fatal(err)
	}

	for _, bad := range []struct{ src, want string }{
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    max_retries: 9223372036854775807\n", "entry #1 (kind \"k\"): max_retries 9223372036854775807: must be in 0..1000000"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    timeout: -5s\n", "timeout -5s: must not be negative"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    retention: 1000000h\n", "is over the maximum of 100 years"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    id: x\n", "id is not supported on periodic tasks"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    unique: 1h\n", "unique is not supported on periodic tasks"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    unique_key: x\n", "unique_key is not supported on periodic tasks"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    deadline: 2100-01-01T00:00:00Z\n", "deadline is not supported"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    process_at: 2100-01-01T00:00:00Z\n", "process_at is not supported"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    json: 1\n    payload: 2\n", "both payload and json"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    payload: {1: 2}\n", "not a string"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    payload: .nan\n", "not a JSON number"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    kind: j\n", "given twice"},
		{"entries:\n  - spec: [1]\n    kind: k\n", "spec: want a string"},
		{"entries:\n  - 5\n", "an entry is a mapping"},
		{"entries:\n  - spec: '@every 1h'\n    kind: k\n    max_retry: 3\n", `unknown field "max_retry"`},
	} {
		f, err := spec.ParseSchedule(strings.NewReader(bad.src))
		if err == nil {
			err = f.Register(e.scheduler(queue.SchedulerConfig{}))
		}
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want it to mention %q", bad.src, err, bad.want)
		}
	}
}

func TestScheduleFile(t *testing.T) {
	src := `
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
`
	f, err := spec.ParseSchedule(strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := f.Config(queue.SchedulerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Location.String() != "Europe/Berlin" || cfg.Missed != queue.MissedRunOnce {
		t.Fatalf("config %+v", cfg)
	}
	e := newEnv(t)
	s := e.scheduler(cfg)
	if err := f.Register(s); err != nil {
		t.Fatal(err)
	}
	ents := s.Entries()
	if len(ents) != 2 || ents[0].Name != "nightly" || ents[0].Queue != "reports" || ents[1].Kind != "ping" {
		t.Fatalf("entries %+v", ents)
	}

	for _, bad := range []struct{ src, want string }{
		{"entries:\n  - name: x\n    spec: '* * *'\n    kind: k\n", `entry #1 (x)`},
		{"entries:\n  - spec: '* * * * *'\n", `no kind`},
		{"entries:\n  - spec: '* * * * *'\n    kind: k\n    timout: 1s\n", `timout`},
		{"entries:\n  - spec: '* * * * *'\n    kind: k\n    timeout: soon\n", `timeout "soon"`},
		{"timezone: Nowhere/Land\nentries:\n  - spec: '* * * * *'\n    kind: k\n", `Nowhere/Land`},
		{"", `empty`},
	} {
		f, err := spec.ParseSchedule(strings.NewReader(bad.src))
		if err == nil {
			_, err = f.Config(queue.SchedulerConfig{})
		}
		if err == nil {
			err = f.Register(e.scheduler(queue.SchedulerConfig{}))
		}
		if err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want it to mention %q", bad.src, err, bad.want)
		}
	}
}
