// Package spec is the written-down form of a task: one specification
// (Task), with one set of field names and one duration grammar, read by
// `conq enqueue --file` (one JSON object a line, ParseLine), the HTTP API
// (POST /api/v1/tasks, Parse) and schedule files (YAML or JSON,
// ParseSchedule). docs/task-spec.md is the reference for its fields.
//
//	ts, err := spec.Parse([]byte(`{"kind": "email.send", "payload": {"to": "a@b"}, "retention": "1h"}`))
//	task, err := ts.Task() // validated; a *queue.Task with its options
//	info, err := client.Enqueue(ctx, task)
//
// # Policy, written down
//
//   - Decoding is strict: an unknown field, a second JSON value or a
//     duplicate key is an error, so a typo never drops a setting.
//   - Every field is range-checked where it enters, with the same ranges as
//     the Go options (queue/internal/check holds both): an *Error names the
//     field, the value and the range, and wraps queue.ErrInvalidOption.
//   - Nothing is enqueued from a specification that does not validate; a
//     file with one bad entry registers nothing past it and names the entry.
//   - The canonical form (MarshalJSON) reads back as the same specification;
//     the older names ("retries", "in") are read, never written.
package spec
