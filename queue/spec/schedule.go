package spec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/conqhq/conq/queue"
)

// Schedule is a file of periodic entries, in YAML or JSON (a JSON
// document is valid YAML):
//
//	timezone: Europe/Berlin   # of specs without CRON_TZ=; default UTC
//	missed: skip              # or run_once
//	entries:
//	  - name: nightly-report  # default: derived from kind and spec
//	    spec: "0 30 2 * * *"  # 02:30:00 every day
//	    kind: report.nightly  # the task: a Task's fields
//	    queue: reports
//	    payload: {day: yesterday}
//	    max_retries: 3
//	    timeout: 10m
//	    retention: 1h
//
// Besides name and spec, an entry has the fields of a Task, with the
// same names and duration grammar as `conq enqueue --file` and the HTTP
// API, except those that make no sense for a task enqueued at every tick
// (id, unique, unique_key, deadline, process_at). Files written before Task keep
// working: "json: VALUE" is the payload VALUE, and a payload that is a
// YAML string is raw text (payload_text), as it always was in schedule
// files.
//
// Unknown fields are errors, so a typo does not silently drop a setting.
type Schedule struct {
	Timezone string          `yaml:"timezone" json:"timezone,omitempty"`
	Missed   string          `yaml:"missed" json:"missed,omitempty"`
	Entries  []ScheduleEntry `yaml:"entries" json:"entries"`
}

// ScheduleEntry is one entry of a Schedule: the entry's name, its
// cron spec and the task it enqueues.
type ScheduleEntry struct {
	Name string
	Spec string
	Task Task
}

// scheduleOnly are the Task fields a periodic entry refuses, with why.
var scheduleOnly = map[string]string{
	"id":         "each tick's task ID is derived from the entry and the tick",
	"unique":     "each tick enqueues exactly once already",
	"unique_key": "each tick enqueues exactly once already",
	"deadline":   "a fixed deadline would pass after the first ticks",
	"process_at": "a fixed time would pass after the first tick; use process_in",
}

// UnmarshalYAML reads an entry: name and spec, the older spellings
// ("json", a string "payload"), then the rest as a Task.
func (e *ScheduleEntry) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: an entry is a mapping (name, spec, kind, ...)", n.Line)
	}
	task := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line, Column: n.Column}
	given := map[string]bool{} // as written
	payloads := 0              // payload, json: one at most
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		key := k.Value
		if given[key] {
			return fmt.Errorf("line %d: field %q given twice", k.Line, key)
		}
		given[key] = true
		if key == "payload" || key == "json" {
			if payloads++; payloads > 1 {
				return fmt.Errorf("line %d: both payload and json are set", k.Line)
			}
		}
		switch {
		case key == "name" || key == "spec":
			if v.Kind != yaml.ScalarNode {
				return fmt.Errorf("line %d: %s: want a string", v.Line, key)
			}
			if key == "name" {
				e.Name = v.Value
			} else {
				e.Spec = v.Value
			}
			continue
		case key == "json":
			key = "payload"
		case key == "payload" && v.Kind == yaml.ScalarNode && v.ShortTag() == "!!str":
			key = "payload_text"
		case scheduleOnly[key] != "":
			return fmt.Errorf("line %d: %s is not supported on periodic tasks: %s", k.Line, key, scheduleOnly[key])
		}
		if key != k.Value {
			k = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, Line: k.Line, Column: k.Column}
		}
		task.Content = append(task.Content, k, v)
	}
	return e.Task.UnmarshalYAML(task)
}

// LoadSchedule reads and parses the file at path.
func LoadSchedule(path string) (*Schedule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("queue: schedule file: %w", err)
	}
	f, err := ParseSchedule(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// ParseSchedule parses a schedule file from r.
func ParseSchedule(r io.Reader) (*Schedule, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var f Schedule
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("queue: schedule file is empty: %w", queue.ErrInvalidOption)
		}
		return nil, fmt.Errorf("queue: schedule file: %v: %w", err, queue.ErrInvalidOption)
	}
	if len(f.Entries) == 0 {
		return nil, fmt.Errorf("queue: schedule file has no entries: %w", queue.ErrInvalidOption)
	}
	return &f, nil
}

// Config returns cfg with the file's timezone and missed-tick policy set.
func (f *Schedule) Config(cfg queue.SchedulerConfig) (queue.SchedulerConfig, error) {
	if f.Timezone != "" {
		loc, err := time.LoadLocation(f.Timezone)
		if err != nil {
			return cfg, fmt.Errorf("spec: schedule file: timezone %q: %v: %w", f.Timezone, err, queue.ErrInvalidOption)
		}
		cfg.Location = loc
	}
	if f.Missed != "" {
		p, err := queue.ParseMissedPolicy(f.Missed)
		if err != nil {
			return cfg, fmt.Errorf("schedule file: %w", err)
		}
		cfg.Missed = p
	}
	return cfg, nil
}

// Register registers every entry of the file with s. It stops at the first
// bad entry, naming it.
func (f *Schedule) Register(s *queue.Scheduler) error {
	for i, fe := range f.Entries {
		e, err := fe.entry()
		if err == nil {
			_, err = s.RegisterEntry(e)
		}
		if err != nil {
			name := fe.Name
			if name == "" {
				name = fmt.Sprintf("kind %q", fe.Task.Kind)
			}
			return fmt.Errorf("schedule file: entry #%d (%s): %w", i+1, name, err)
		}
	}
	return nil
}

func (fe *ScheduleEntry) entry() (queue.Entry, error) {
	if fe.Spec == "" {
		return queue.Entry{}, fmt.Errorf("spec: no spec: %w", queue.ErrInvalidOption)
	}
	if fe.Task.Kind == "" {
		return queue.Entry{}, fmt.Errorf("spec: no kind: %w", queue.ErrInvalidOption)
	}
	t, err := fe.Task.Task()
	if err != nil {
		return queue.Entry{}, err
	}
	return queue.Entry{Name: fe.Name, Spec: fe.Spec, Task: &queue.Task{Kind: t.Kind, Payload: t.Payload, Encoding: t.Encoding}, Options: t.Options}, nil
}
