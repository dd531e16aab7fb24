package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/conqhq/conq/queue"
)

// streamFlushEvery bounds how long a streamed result line may wait in
// the buffer for others to share its write.
const streamFlushEvery = time.Millisecond

// streamEnd is the last line of POST /api/v1/results:stream: the ids not
// done when the wait ran out (the client asks again for those), or the
// error that ended the stream early.
type streamEnd struct {
	End     bool      `json:"end"`
	Pending []string  `json:"pending"`
	Error   *apiError `json:"error,omitempty"`
}

// streamMissing is the line of an id the broker does not know.
type streamMissing struct {
	ID       string `json:"id"`
	NotFound bool   `json:"not_found"`
}

// apiStreamResults: POST /api/v1/results:stream {"ids": [...], "wait":
// "30s", "queue": Q}. Answers 200 with newline-delimited JSON: one line
// per task as it finishes (the result object of GET /tasks/{id}/result,
// or {"id": ..., "not_found": true}), in the order they finish, then
// {"end": true, "pending": [...]} once every task is done or the wait
// (capped at MaxWait; default MaxWait) runs out.
//
// Why a stream: results:wait answers with what is done and the client
// asks again for the rest, so a client waiting for N results re-reads up
// to N tasks per answer. A stream reads each task once, whatever N, and
// the client sees each result as soon as it exists. A line is flushed
// at once when nothing was flushed within the last streamFlushEvery (a
// quiet stream answers at once), else within streamFlushEvery of the
// last flush, with whatever else finished meanwhile.
func (s *Server) apiStreamResults(w http.ResponseWriter, r *http.Request) {
	req, err := s.parseBatchIDs(w, r, true)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Min != nil {
		s.fail(w, r, badRequest("body: min is a field of results:wait, not of results:stream"))
		return
	}
	wait, err := s.batchWait(req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if len(req.Wait) == 0 || string(req.Wait) == "null" {
		wait = s.cfg.MaxWait
	}
	rc := http.NewResponseController(w)
	ctx, cancel := context.WithTimeout(r.Context(), wait)

	type res struct {
		i   int
		t   *queue.TaskInfo
		err error
	}
	// One wait for every ID (the broker registers them all; no goroutine
	// per ID): its answers go to ch, which holds them all. When the wait
	// runs out, the IDs it did not answer are reported with ctx's error.
	ch := make(chan res, len(req.IDs))
	waited := make(chan struct{})
	go func() {
		defer close(waited)
		answered := make([]bool, len(req.IDs))
		err := s.insp.AwaitEach(ctx, req.Queue, req.IDs, func(i int, t *queue.TaskInfo, err error) {
			answered[i] = true
			ch <- res{i, t, err}
		})
		if err == nil {
			return
		}
		for i, ok := range answered {
			if !ok {
				ch <- res{i, nil, err}
			}
		}
	}()
	defer func() { cancel(); <-waited }()

	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	var lines resultLines
	answered := make([]bool, len(req.IDs))
	var endErr error
	// Flushing: a line waits for at most streamFlushEvery after the last
	// flush. A quiet stream (nothing flushed within the interval) sends a
	// result the moment it exists; a busy one sends one write per interval
	// instead of one per result, which is what the server's and the
	// client's CPU per result is mostly made of at thousands of results a
	// second (a TCP send, a wake-up and a chunk header each).
	var (
		lastFlush time.Time
		unflushed bool
		timer     *time.Timer
	)
	flush := func() bool {
		unflushed = false
		lastFlush = time.Now()
		if bw.Flush() != nil {
			return false
		}
		_ = rc.Flush()
		return true
	}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for range req.IDs {
		var x res
		select {
		case x = <-ch:
		default:
			if !unflushed {
				x = <-ch
				break
			}
			wait := streamFlushEvery - time.Since(lastFlush)
			if wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case x = <-ch:
					timer.Stop() // no stale tick after Stop since Go 1.23
					goto got
				case <-timer.C:
				}
			}
			// Nothing ready: send what is buffered before blocking.
			if !flush() {
				return // the client left; the deferred cancel ends the waiters
			}
			x = <-ch
		}
	got:
		unflushed = true
		switch {
		case x.err == nil:
			answered[x.i] = true
			if line, ok := lines.append(bw.AvailableBuffer(), x.t); ok {
				_, _ = bw.Write(line)
			} else {
				_ = enc.Encode(viewResult(x.t))
			}
		case errors.Is(x.err, queue.ErrTaskNotFound):
			answered[x.i] = true
			_ = enc.Encode(streamMissing{ID: req.IDs[x.i], NotFound: true})
		case ctx.Err() != nil:
			// The wait ran out (or the client left): the task stays pending.
		case endErr == nil:
			endErr = x.err
			cancel()
		}
	}
	end := streamEnd{End: true, Pending: []string{}}
	for i, id := range req.IDs {
		if !answered[i] {
			end.Pending = append(end.Pending, id)
		}
	}
	if endErr != nil && r.Context().Err() == nil {
		end.Error = errorBody(endErr)
	}
	_ = enc.Encode(end)
	_ = bw.Flush()
}

// resultLines writes the stream's line of a completed task without
// errors, by far the most common, without encoding/json's reflection:
// append appends exactly what json.Encoder.Encode(viewResult(t)) writes
// (the newline included), or answers false for any other task (another
// state, errors, a string of ID, queue or kind that needs escaping, a
// result that Encode would rewrite), which the caller encodes as before.
// FuzzResultLine compares the two.
type resultLines struct {
	compact bytes.Buffer // the result, compacted
}

func (l *resultLines) append(dst []byte, t *queue.TaskInfo) ([]byte, bool) {
	if t.State != queue.StateCompleted || len(t.Errors) > 0 ||
		!plainJSONString(t.ID) || !plainJSONString(t.Queue) || !plainJSONString(t.Kind) {
		return dst, false
	}
	n := len(dst)
	dst = append(dst, `{"id":"`...)
	dst = append(dst, t.ID...)
	dst = append(dst, `","queue":"`...)
	dst = append(dst, t.Queue...)
	dst = append(dst, `","kind":"`...)
	dst = append(dst, t.Kind...)
	dst = append(dst, `","state":"completed","done":true`...)
	if r := t.Result; len(r) > 0 {
		// jsonOrBase64: a valid JSON result as itself, which Encode
		// compacts and HTML-escapes (<, >, &, U+2028, U+2029); taken here
		// only when escaping changes nothing. Compact fails exactly when
		// json.Valid does.
		l.compact.Reset()
		if json.Compact(&l.compact, r) == nil {
			c := l.compact.Bytes()
			if bytes.ContainsAny(c, "<>&\u2028\u2029") {
				return dst[:n], false
			}
			dst = append(dst, `,"result":`...)
			dst = append(dst, c...)
		} else {
			dst = append(dst, `,"result_base64":"`...)
			dst = base64.StdEncoding.AppendEncode(dst, r)
			dst = append(dst, '"')
		}
	}
	dst = append(dst, `,"attempts":`...)
	dst = strconv.AppendInt(dst, int64(t.Attempts), 10)
	dst = append(dst, "}\n"...)
	return dst, true
}

// plainJSONString: s is printable ASCII that encoding/json writes as is
// between quotes (no quote, backslash or HTML character to escape).
func plainJSONString(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c >= 0x7f, c == '"', c == '\\', c == '<', c == '>', c == '&':
			return false
		}
	}
	return true
}
