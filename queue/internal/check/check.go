// Package check holds the ranges and the syntax of task fields: queue
// names, kinds and IDs, retry counts, durations, times and payload
// encodings. Package queue checks its options with it and package
// queue/spec its specifications, so the two can never disagree.
//
// Each function returns what is wrong, as a phrase that reads after the
// field's name ("must be in 0..1000000"), or "" when the value is fine;
// callers wrap it in their own error type.
package check

import (
	"fmt"
	"time"
	"unicode"
)

// Ranges of the options: values outside them would be stored wrongly (Lua
// numbers are doubles, times are kept as Unix nanoseconds) or make no
// sense for a task.
const (
	// MaxRetries: at the default backoff's 10 minutes between late
	// attempts, a million retries is 19 years.
	MaxRetries = 1_000_000
	// MaxDuration bounds every duration option: 100 years.
	MaxDuration = 876000 * time.Hour
	// MaxListOffset bounds the offset of a task listing.
	MaxListOffset = 1_000_000_000

	MaxQueueName = 128
	MaxKind      = 256
	MaxID        = 256
)

// Payload encodings (the values of broker.Task.Encoding).
const (
	EncodingRaw  = "raw"
	EncodingJSON = "json"
	EncodingArgs = "args"
)

// Times must lie in [MinTime, MaxTime): brokers keep them as Unix
// nanoseconds, which end in 2262.
var (
	MinTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	MaxTime = time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
)

// Duration: 0 to 100 years.
func Duration(d time.Duration) string {
	switch {
	case d < 0:
		return "must not be negative (range 0 to 100 years)"
	case d > MaxDuration:
		return "is over the maximum of 100 years (876000h)"
	}
	return ""
}

// Time: 1970 to 2200.
func Time(t time.Time) string {
	if t.Before(MinTime) || !t.Before(MaxTime) {
		return "is outside 1970-01-01 to 2200-01-01"
	}
	return ""
}

// Retries: 0 to MaxRetries.
func Retries(n int) string {
	if n < 0 || n > MaxRetries {
		return fmt.Sprintf("must be in 0..%d", MaxRetries)
	}
	return ""
}

// QueueName: 1 to 128 ASCII letters, digits and "_-.:". The problem names
// the queue.
func QueueName(name string) string {
	if name == "" {
		return "empty queue name"
	}
	if len(name) > MaxQueueName {
		return fmt.Sprintf("queue name %q is %d bytes, over %d", name[:32]+"…", len(name), MaxQueueName)
	}
	for _, r := range name {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r) || r == '_' || r == '-' || r == '.' || r == ':')) {
			return fmt.Sprintf("queue name %q: only ASCII letters, digits and _-.: are allowed", name)
		}
	}
	return ""
}

// Token checks kinds, task IDs and unique keys (what names which):
// printable, no spaces, at most max bytes. The problem names the value.
func Token(what, s string, max int) string {
	if s == "" {
		return "empty task " + what
	}
	if len(s) > max {
		return fmt.Sprintf("task %s is %d bytes, over %d", what, len(s), max)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Sprintf("task %s %q: control or space characters are not allowed", what, s)
		}
	}
	return ""
}

// Encoding returns a payload encoding with "" read as raw, or a problem.
func Encoding(enc string) (string, string) {
	switch enc {
	case "", EncodingRaw:
		return EncodingRaw, ""
	case EncodingJSON, EncodingArgs:
		return enc, ""
	}
	return "", fmt.Sprintf("unknown payload encoding %q (want %q, %q or %q)", enc, EncodingRaw, EncodingJSON, EncodingArgs)
}
