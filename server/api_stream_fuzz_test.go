package server

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/conqhq/conq/queue"
)

// FuzzResultLine: the stream's hand-written line of a task is byte for
// byte what json.Encoder.Encode(viewResult(t)) writes, whenever it takes
// the task; and it takes a completed task without errors whose ID, queue
// and kind are plain ASCII and whose result is empty, not JSON, or JSON
// with nothing to escape.
func FuzzResultLine(f *testing.F) {
	for _, s := range []struct {
		id, q, kind string
		state       byte
		attempts    int
		result      string
		errors      byte
	}{
		{"abc", "default", "__main__:noop", 0, 1, "null", 0},
		{"abc", "default", "k", 0, 1, `{"a": [1, 2.5e3, "x y"]}`, 0},
		{"abc", "default", "k", 0, 1, "", 0},
		{"abc", "default", "k", 0, 1, "\x00\xff", 0},
		{"abc", "default", "k", 0, 2, `"<b>&amp;</b>"`, 0},
		{"abc", "default", "k", 0, 2, "\"\u2028\u2029\"", 0},
		{"a\"b", "q<", "k\u00e9", 0, -1, "1", 0},
		{"abc", "default", "k", 0, 3, "3", 2},
		{"abc", "default", "k", 1, 3, "3", 1},
		{"abc", "default", "k", 2, 0, "", 0},
		{"abc", "default", "k", 0, 1, " \t\n[ ] ", 0},
		{"abc", "default", "k", 0, 1, "[1,]", 0},
	} {
		f.Add(s.id, s.q, s.kind, s.state, s.attempts, []byte(s.result), s.errors)
	}
	states := append([]queue.State{queue.StateCompleted}, queue.States...)
	var lines resultLines
	f.Fuzz(func(t *testing.T, id, q, kind string, state byte, attempts int, result []byte, nerrs byte) {
		ti := &queue.TaskInfo{ID: id, Queue: q, Kind: kind, State: states[int(state)%len(states)], Attempts: attempts, Result: result}
		for i := range int(nerrs % 4) {
			ti.Errors = append(ti.Errors, queue.AttemptError{Attempt: i + 1, At: time.Unix(int64(i), 0).UTC(), Kind: "error", Message: kind})
		}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(viewResult(ti)); err != nil {
			t.Fatal(err)
		}
		got, ok := lines.append([]byte("prefix"), ti)
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("append lost dst: %q", got)
		}
		got = got[len("prefix"):]
		if !ok {
			if len(got) != 0 {
				t.Fatalf("declined but wrote %q", got)
			}
			plain := plainJSONString(id) && plainJSONString(q) && plainJSONString(kind)
			if ti.State == queue.StateCompleted && len(ti.Errors) == 0 && plain &&
				!bytes.ContainsAny(result, "<>&\u2028\u2029") {
				t.Fatalf("declined a plain completed task: %q", want.Bytes())
			}
			return
		}
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("line\n got %q\nwant %q", got, want.Bytes())
		}
	})
}
