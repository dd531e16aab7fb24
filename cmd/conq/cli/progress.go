package cli

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// stderrIsTTY reports whether w is a terminal; decorations such as spinners
// are drawn only then, so pipes and logs stay clean.
func stderrIsTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// spinner redraws one status line on a terminal until stopped. A nil
// *spinner is a no-op, which is what newSpinner returns for non-terminals.
type spinner struct {
	w     io.Writer
	start time.Time

	mu    sync.Mutex // guards the fields below, and writes to w
	label string
	done  int
	total int
	frame int

	quit     chan struct{}
	finished chan struct{}
}

var spinnerFrames = []rune("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")

// newSpinner starts a spinner on w counting up to total, or returns nil if
// w is not a terminal.
func newSpinner(w io.Writer, label string, total int) *spinner {
	if !stderrIsTTY(w) {
		return nil
	}
	return startSpinner(w, label, total)
}

func startSpinner(w io.Writer, label string, total int) *spinner {
	s := &spinner{w: w, label: label, total: total, start: time.Now(), quit: make(chan struct{}), finished: make(chan struct{})}
	go s.loop()
	return s
}

func (s *spinner) loop() {
	defer close(s.finished)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		s.mu.Lock()
		s.frame++
		s.drawLocked()
		s.mu.Unlock()
		select {
		case <-t.C:
		case <-s.quit:
			s.mu.Lock()
			fmt.Fprint(s.w, "\r\033[K") // leave the terminal as we found it
			s.mu.Unlock()
			return
		}
	}
}

// Print runs print, which writes output that may share the terminal with
// the spinner, with the spinner line erased, then redraws it.
func (s *spinner) Print(print func()) {
	if s == nil {
		print()
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprint(s.w, "\r\033[K")
	print()
	s.drawLocked()
}

func (s *spinner) drawLocked() {
	fmt.Fprintf(s.w, "\r\033[K%c %s %d/%d  %.1fs", spinnerFrames[s.frame%len(spinnerFrames)], s.label, s.done, s.total, time.Since(s.start).Seconds())
}

// Add counts n more items done.
func (s *spinner) Add(n int) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.done += n
	s.mu.Unlock()
}

// SetLabel changes the text in front of the count, and resets the count.
func (s *spinner) SetLabel(label string, total int) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.label, s.total, s.done = label, total, 0
	s.mu.Unlock()
}

// Stop erases the line and waits for the redraw goroutine.
func (s *spinner) Stop() {
	if s == nil {
		return
	}
	close(s.quit)
	<-s.finished
}
