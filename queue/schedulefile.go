package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"gopkg.in/yaml.v3"
)

// ScheduleFile is a file of periodic entries, in YAML or JSON (a JSON
// document is valid YAML):
//
//	timezone: Europe/Berlin   # of specs without CRON_TZ=; default UTC
//	missed: skip              # or run_once
//	entries:
//	  - name: nightly-report  # default: derived from kind and spec
//	    spec: "0 30 2 * * *"  # 02:30:00 every day
//	    kind: report.nightly
//	    queue: reports        # default "default"
//	    payload: '{"day": "yesterday"}'   # raw bytes, or:
//	    # json: {day: yesterday}          # any value, encoded as JSON
//	    max_retries: 3
//	    timeout: 10m
//	    retention: 1h
//
// Unknown fields are errors, so a typo does not silently drop a setting.
type ScheduleFile struct {
	Timezone string              `yaml:"timezone" json:"timezone,omitempty"`
	Missed   string              `yaml:"missed" json:"missed,omitempty"`
	Entries  []ScheduleFileEntry `yaml:"entries" json:"entries"`
}

// ScheduleFileEntry is one entry of a ScheduleFile.
type ScheduleFileEntry struct {
	Name       string `yaml:"name" json:"name,omitempty"`
	Spec       string `yaml:"spec" json:"spec"`
	Kind       string `yaml:"kind" json:"kind"`
	Queue      string `yaml:"queue" json:"queue,omitempty"`
	Payload    string `yaml:"payload" json:"payload,omitempty"`
	JSON       any    `yaml:"json" json:"json,omitempty"`
	MaxRetries *int   `yaml:"max_retries" json:"max_retries,omitempty"`
	Timeout    string `yaml:"timeout" json:"timeout,omitempty"`
	Retention  string `yaml:"retention" json:"retention,omitempty"`
}

// LoadScheduleFile reads and parses the file at path.
func LoadScheduleFile(path string) (*ScheduleFile, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("queue: schedule file: %w", err)
	}
	f, err := ParseScheduleFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return f, nil
}

// ParseScheduleFile parses a schedule file from r.
func ParseScheduleFile(r io.Reader) (*ScheduleFile, error) {
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	var f ScheduleFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("queue: schedule file is empty: %w", ErrInvalidOption)
		}
		return nil, fmt.Errorf("queue: schedule file: %v: %w", err, ErrInvalidOption)
	}
	if len(f.Entries) == 0 {
		return nil, fmt.Errorf("queue: schedule file has no entries: %w", ErrInvalidOption)
	}
	return &f, nil
}

// Config returns cfg with the file's timezone and missed-tick policy set.
func (f *ScheduleFile) Config(cfg SchedulerConfig) (SchedulerConfig, error) {
	if f.Timezone != "" {
		loc, err := time.LoadLocation(f.Timezone)
		if err != nil {
			return cfg, invalid("schedule file: timezone %q: %v", f.Timezone, err)
		}
		cfg.Location = loc
	}
	if f.Missed != "" {
		p, err := ParseMissedPolicy(f.Missed)
		if err != nil {
			return cfg, fmt.Errorf("schedule file: %w", err)
		}
		cfg.Missed = p
	}
	return cfg, nil
}

// Register registers every entry of the file with s. It stops at the first
// bad entry, naming it.
func (f *ScheduleFile) Register(s *Scheduler) error {
	for i, fe := range f.Entries {
		e, err := fe.entry()
		if err == nil {
			_, err = s.RegisterEntry(e)
		}
		if err != nil {
			name := fe.Name
			if name == "" {
				name = fmt.Sprintf("kind %q", fe.Kind)
			}
			return fmt.Errorf("schedule file: entry #%d (%s): %w", i+1, name, err)
		}
	}
	return nil
}

func (fe *ScheduleFileEntry) entry() (Entry, error) {
	if fe.Spec == "" {
		return Entry{}, invalid("no spec")
	}
	if fe.Kind == "" {
		return Entry{}, invalid("no kind")
	}
	payload, enc := []byte(fe.Payload), EncodingRaw
	if fe.JSON != nil {
		if fe.Payload != "" {
			return Entry{}, invalid("both payload and json are set")
		}
		b, err := json.Marshal(fe.JSON)
		if err != nil {
			return Entry{}, invalid("json: %v", err)
		}
		payload, enc = b, EncodingJSON
	}
	var opts []Option
	if fe.Queue != "" {
		opts = append(opts, Queue(fe.Queue))
	}
	if fe.MaxRetries != nil {
		opts = append(opts, MaxRetries(*fe.MaxRetries))
	}
	for _, d := range []struct {
		field, v string
		opt      func(time.Duration) Option
	}{{"timeout", fe.Timeout, Timeout}, {"retention", fe.Retention, Retention}} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			return Entry{}, invalid("%s %q: %v", d.field, d.v, err)
		}
		opts = append(opts, d.opt(v))
	}
	return Entry{Name: fe.Name, Spec: fe.Spec, Task: &Task{Kind: fe.Kind, Payload: payload, Encoding: enc}, Options: opts}, nil
}
