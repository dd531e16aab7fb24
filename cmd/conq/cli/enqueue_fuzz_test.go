package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/spec"
)

// FuzzTaskFile: any --file content is read into valid tasks or refused
// with an error naming the line; nothing panics, nothing is half-read.
func FuzzTaskFile(f *testing.F) {
	f.Add([]byte(`{"kind":"a","payload":{"n":1}}
{"kind":"b","payload":[1,2],"queue":"low","retries":1,"id":"fixed-id"}

{"kind":"c","in":"1h","timeout":"5s","retention":"1m"}
`))
	f.Add([]byte(`{"kind":"add","args":[2,3],"kwargs":{"b":3},"max_retries":1000000,"process_in":90}` + "\n"))
	f.Add([]byte(`{"kind":"a","id":"x"}` + "\n" + `{"kind":"a","id":"x"}`))
	f.Add([]byte(`{"kind":"a","max_retries":9223372036854775807}`))
	f.Add([]byte("\n\n  \n"))
	f.Add([]byte(`{"kind":"a"}{"kind":"b"}`))
	three := 3
	defaults := spec.Task{Queue: "q", MaxRetries: &three}
	f.Fuzz(func(t *testing.T, b []byte) {
		tasks, lines, err := readTaskFile("-", bytes.NewReader(b), defaults)
		if err != nil {
			if len(tasks) != 0 || !(strings.HasPrefix(err.Error(), "line ") || strings.Contains(err.Error(), "no tasks") || strings.HasPrefix(err.Error(), "reading")) {
				t.Fatalf("error %q with %d tasks", err, len(tasks))
			}
			return
		}
		if len(tasks) != len(lines) || len(tasks) == 0 {
			t.Fatalf("%d tasks, %d line numbers", len(tasks), len(lines))
		}
		for i, task := range tasks {
			if task.Kind == "" || task.Encoding == "" || len(task.Payload) > queue.DefaultMaxPayloadSize {
				t.Fatalf("line %d: task %+v", lines[i], task)
			}
			if i > 0 && lines[i] <= lines[i-1] {
				t.Fatalf("line numbers out of order: %v", lines)
			}
		}
	})
}
