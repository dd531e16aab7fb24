package cli

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the spinner goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestSpinnerNotOnPipes(t *testing.T) {
	var buf bytes.Buffer
	s := newSpinner(&buf, "x", 3)
	if s != nil {
		t.Fatal("spinner on a non-terminal")
	}
	// A nil spinner is a no-op.
	s.Add(1)
	s.SetLabel("y", 2)
	printed := false
	s.Print(func() { printed = true })
	s.Stop()
	if !printed || buf.Len() != 0 {
		t.Errorf("printed %v, wrote %q", printed, buf.String())
	}
}

func TestSpinnerDraws(t *testing.T) {
	var buf syncBuffer
	s := startSpinner(&buf, "checking", 3)
	s.Add(2)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(buf.String(), "checking 2/3") {
		if time.Now().After(deadline) {
			t.Fatalf("spinner wrote %q", buf.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	var out syncBuffer
	s.Print(func() { out.Write([]byte("result\n")) })
	s.Stop()
	got := buf.String()
	if !strings.HasSuffix(got, "\r\033[K") {
		t.Errorf("spinner did not erase its line: %q", got)
	}
	if out.String() != "result\n" {
		t.Errorf("Print wrote %q", out.String())
	}
}
