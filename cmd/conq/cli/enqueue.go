package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
)

func init() { addCommand(newEnqueueCmd) }

// waitRetention is how long a task enqueued with --wait keeps its result
// when --retention is not given, so the waiting client can read it.
const waitRetention = time.Hour

// enqueueBatch bounds one EnqueueMany call of --file.
const enqueueBatch = 5000

type enqueueOptions struct {
	broker      string
	kind        string
	payload     string
	file        string
	queue       string
	retries     int
	in          time.Duration
	id          string
	timeout     time.Duration
	retention   time.Duration
	wait        bool
	waitTimeout time.Duration
	json        bool
	set         func(name string) bool
}

func newEnqueueCmd() *cobra.Command {
	var o enqueueOptions
	cmd := &cobra.Command{
		Use:   "enqueue --broker URL --kind KIND --payload JSON",
		Short: "Put a task (or a file of tasks) on a queue",
		Long: `Enqueue stores a task in the broker and prints its ID. With --wait it waits
for the task to finish and prints its result instead; if the task ended
dead it prints the last error and exits with status 1.

With --file it enqueues one task per line of a JSON Lines file ("-" for
stdin) in batches and prints their IDs in order. Each line is an object:

  {"kind": "send_email", "payload": {"to": "a@b.c"}, "queue": "emails",
   "retries": 3, "in": "30s", "id": "email-42", "timeout": "1m", "retention": "1h"}

Only "kind" is required. The whole file is checked before anything is
enqueued: a bad line is reported by number and nothing is enqueued.
Command-line options (--queue, --retries, ...) are defaults for the lines.`,
		Example: `  conq enqueue --broker redis://localhost:6379/0 --kind is_prime --payload 9999999999999917 --wait
  conq enqueue --broker redis://localhost:6379/0 --kind report --payload '{"day":"2026-11-21"}' --in 1h --queue low
  conq enqueue --broker redis://localhost:6379/0 --file tasks.jsonl`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.set = func(name string) bool { return cmd.Flags().Changed(name) }
			return runEnqueue(cmd.Context(), o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addBrokerFlag(cmd, &o.broker)
	f.StringVar(&o.kind, "kind", "", "task kind (the handler's name)")
	f.StringVar(&o.payload, "payload", "null", `payload as JSON ("-": read it from stdin)`)
	f.StringVarP(&o.file, "file", "f", "", `JSON Lines file of tasks to enqueue ("-": stdin)`)
	f.StringVarP(&o.queue, "queue", "q", queue.DefaultQueue, "queue name")
	f.IntVar(&o.retries, "retries", queue.DefaultMaxRetries, "retries after the first attempt")
	f.DurationVar(&o.in, "in", 0, "run it this long from now (e.g. 30s, 2h)")
	f.StringVar(&o.id, "id", "", "task ID (unique per queue: enqueueing an existing ID fails); default random")
	f.DurationVar(&o.timeout, "timeout", 0, "time limit of each attempt (0: the worker's default)")
	f.DurationVar(&o.retention, "retention", 0, "keep the completed task and its result this long (--wait: default 1h)")
	f.BoolVarP(&o.wait, "wait", "w", false, "wait for the task to finish and print its result")
	f.DurationVar(&o.waitTimeout, "wait-timeout", 0, "give up waiting after this long (0: wait forever); the task carries on")
	f.BoolVar(&o.json, "json", false, "print JSON")
	return cmd
}

// taskLine is one line of an --file.
type taskLine struct {
	Kind      string          `json:"kind"`
	Payload   json.RawMessage `json:"payload"`
	Queue     *string         `json:"queue"`
	Retries   *int            `json:"retries"`
	In        *string         `json:"in"`
	ID        string          `json:"id"`
	Timeout   *string         `json:"timeout"`
	Retention *string         `json:"retention"`
}

func runEnqueue(ctx context.Context, o enqueueOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	if o.retries < 0 {
		return usageError("--retries %d: must be 0 or more", o.retries)
	}
	if o.in < 0 || o.timeout < 0 || o.retention < 0 || o.waitTimeout < 0 {
		return usageError("--in, --timeout, --retention and --wait-timeout must not be negative")
	}
	if o.file != "" {
		if o.set("kind") || o.set("payload") || o.set("id") || o.wait {
			return usageError("--file cannot be combined with --kind, --payload, --id or --wait")
		}
	} else if o.kind == "" {
		return usageError("--kind is required (or --file)")
	}
	if o.waitTimeout > 0 && !o.wait {
		return usageError("--wait-timeout needs --wait")
	}
	defaults := []queue.Option{queue.Queue(o.queue), queue.MaxRetries(o.retries)}
	if o.in > 0 {
		defaults = append(defaults, queue.ProcessIn(o.in))
	}
	if o.timeout > 0 {
		defaults = append(defaults, queue.Timeout(o.timeout))
	}
	retention := o.retention
	if o.wait && !o.set("retention") {
		retention = waitRetention
	}
	if retention > 0 {
		defaults = append(defaults, queue.Retention(retention))
	}

	var tasks []*queue.Task
	var lines []int // line numbers of --file tasks
	if o.file != "" {
		var err error
		if tasks, lines, err = readTaskFile(o.file, stdin); err != nil {
			return usageError("--file %s: %v", o.file, err)
		}
	} else {
		payload := []byte(o.payload)
		if o.payload == "-" {
			var err error
			if payload, err = io.ReadAll(stdin); err != nil {
				return failure(fmt.Errorf("reading the payload from stdin: %w", err))
			}
			payload = bytes.TrimSpace(payload)
		}
		if !json.Valid(payload) {
			return usageError("--payload is not valid JSON: %v (quote strings: --payload '\"text\"')", jsonError(payload))
		}
		var opts []queue.Option
		if o.id != "" {
			opts = append(opts, queue.TaskID(o.id))
		}
		tasks = []*queue.Task{jsonTask(o.kind, compact(payload), opts...)}
	}
	// Check every task exactly as the client will before touching the
	// broker: a bad file enqueues nothing.
	if err := validateTasks(tasks, defaults, lines); err != nil {
		return err
	}

	b, err := openSharedBroker(ctx, "enqueue", o.broker, quietLogger(stderr))
	if err != nil {
		return err
	}
	defer b.Close()
	client, err := queue.NewClient(b, queue.ClientConfig{Options: defaults, Logger: quietLogger(stderr)})
	if err != nil {
		return usageError("%v", err)
	}

	if o.file != "" {
		return enqueueFile(ctx, client, tasks, lines, o.json, stdout)
	}
	info, err := client.Enqueue(ctx, tasks[0])
	if err != nil {
		return enqueueFailure(err)
	}
	if !o.wait {
		if o.json {
			return writeJSON(stdout, enqueuedJSON(info))
		}
		_, err := fmt.Fprintln(stdout, info.ID)
		return err
	}
	return waitResult(ctx, client, info, o, stdout, stderr)
}

// validateTasks runs tasks through a client on a scratch memory broker,
// which applies exactly the checks of the real one (kind, options, payload
// size, duplicate IDs within the batch).
func validateTasks(tasks []*queue.Task, defaults []queue.Option, lines []int) error {
	scratch := memory.New(memory.Config{})
	defer scratch.Close()
	c, err := queue.NewClient(scratch, queue.ClientConfig{Options: defaults})
	if err != nil {
		// The options come from the command line's flags, not a config.
		if inner := errors.Unwrap(err); inner != nil {
			err = inner
		}
		return usageError("bad option: %v", err)
	}
	_, err = c.EnqueueMany(context.Background(), tasks)
	if err == nil {
		return nil
	}
	var be *queue.BatchError
	if errors.As(err, &be) {
		for i, e := range be.Errs {
			if e != nil {
				if lines != nil {
					return usageError("line %d: %v (nothing was enqueued)", lines[i], e)
				}
				return usageError("%v", e)
			}
		}
	}
	return usageError("%v", err)
}

func enqueueFailure(err error) error {
	if errors.Is(err, queue.ErrInvalidOption) {
		return usageError("%v", err)
	}
	return failure(err)
}

func enqueueFile(ctx context.Context, c *queue.Client, tasks []*queue.Task, lines []int, jsonOut bool, stdout io.Writer) error {
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	var failed []string
	enqueued := 0
	for start := 0; start < len(tasks); start += enqueueBatch {
		batch := tasks[start:min(start+enqueueBatch, len(tasks))]
		infos, err := c.EnqueueMany(ctx, batch)
		var be *queue.BatchError
		if err != nil && !errors.As(err, &be) {
			out.Flush()
			return failure(fmt.Errorf("enqueued %d of %d tasks, then: %w", enqueued, len(tasks), err))
		}
		for i, info := range infos {
			if info == nil {
				failed = append(failed, fmt.Sprintf("line %d: %v", lines[start+i], be.Errs[i]))
				continue
			}
			enqueued++
			if jsonOut {
				b, _ := json.Marshal(enqueuedJSON(info))
				out.Write(append(b, '\n'))
			} else {
				fmt.Fprintln(out, info.ID)
			}
		}
	}
	if len(failed) > 0 {
		out.Flush()
		return failure(fmt.Errorf("%d of %d tasks were not enqueued:\n  %s", len(failed), len(tasks), strings.Join(failed, "\n  ")))
	}
	return out.Flush()
}

type enqueuedTask struct {
	ID        string      `json:"id"`
	Queue     string      `json:"queue"`
	Kind      string      `json:"kind"`
	State     queue.State `json:"state"`
	ProcessAt *time.Time  `json:"process_at,omitempty"`
}

func enqueuedJSON(t *queue.TaskInfo) enqueuedTask {
	e := enqueuedTask{ID: t.ID, Queue: t.Queue, Kind: t.Kind, State: t.State}
	if !t.ProcessAt.IsZero() {
		e.ProcessAt = &t.ProcessAt
	}
	return e
}

// waitResult waits for the task and prints its result or its failure.
func waitResult(ctx context.Context, c *queue.Client, info *queue.TaskInfo, o enqueueOptions, stdout, stderr io.Writer) error {
	if o.waitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.waitTimeout)
		defer cancel()
	}
	res, err := c.Result(ctx, info.ID)
	var tf *queue.TaskFailedError
	switch {
	case err == nil:
	case errors.As(err, &tf):
		if o.json {
			_ = writeJSON(stdout, map[string]any{"id": info.ID, "state": queue.StateDead, "attempts": tf.Attempts, "errors": tf.Errors})
		} else if last, ok := tf.Last(); ok && last.Stack != "" {
			// The traceback (a Python worker's, or a Go panic's stack) is
			// what a user needs first; the error line follows it.
			fmt.Fprintln(stderr, strings.TrimRight(last.Stack, "\n"))
		}
		return &ExitError{Code: 1, Err: err}
	case errors.Is(err, context.DeadlineExceeded) && o.waitTimeout > 0:
		return &ExitError{Code: 1, Err: fmt.Errorf("task %s did not finish within --wait-timeout %v; it is still queued or running", info.ID, o.waitTimeout)}
	default:
		return failure(fmt.Errorf("waiting for task %s: %w", info.ID, err))
	}
	if o.json {
		return writeJSON(stdout, map[string]any{"id": info.ID, "state": queue.StateCompleted, "result": resultValue(res)})
	}
	if len(res) > 0 && res[len(res)-1] != '\n' {
		res = append(res, '\n')
	}
	_, err = stdout.Write(res)
	return err
}

// resultValue is a result as a JSON value: itself if it is JSON, else a
// string.
func resultValue(res []byte) json.RawMessage {
	if len(res) == 0 {
		return json.RawMessage("null")
	}
	if json.Valid(res) {
		return compact(res)
	}
	b, _ := json.Marshal(string(res))
	return b
}

// readTaskFile parses a JSON Lines task file; blank lines are skipped.
func readTaskFile(name string, stdin io.Reader) (tasks []*queue.Task, lines []int, err error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		r = f
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 2*queue.DefaultMaxPayloadSize+64<<10)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		t, err := parseTaskLine(line)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %v (nothing was enqueued)", n, err)
		}
		tasks = append(tasks, t)
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading: %w (nothing was enqueued)", err)
	}
	if len(tasks) == 0 {
		return nil, nil, errors.New("no tasks in the file")
	}
	return tasks, lines, nil
}

func parseTaskLine(line []byte) (*queue.Task, error) {
	var tl taskLine
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&tl); err != nil {
		return nil, fmt.Errorf("not a task object: %v", err)
	}
	if dec.More() {
		return nil, errors.New("more than one JSON value on the line")
	}
	if tl.Kind == "" {
		return nil, errors.New(`missing "kind"`)
	}
	payload := []byte(tl.Payload)
	if len(payload) == 0 {
		payload = []byte("null")
	}
	var opts []queue.Option
	if tl.Queue != nil {
		opts = append(opts, queue.Queue(*tl.Queue))
	}
	if tl.Retries != nil {
		opts = append(opts, queue.MaxRetries(*tl.Retries))
	}
	if tl.ID != "" {
		opts = append(opts, queue.TaskID(tl.ID))
	}
	for _, d := range []struct {
		name string
		v    *string
		opt  func(time.Duration) queue.Option
	}{{"in", tl.In, queue.ProcessIn}, {"timeout", tl.Timeout, queue.Timeout}, {"retention", tl.Retention, queue.Retention}} {
		if d.v == nil {
			continue
		}
		v, err := time.ParseDuration(*d.v)
		if err != nil {
			return nil, fmt.Errorf("%q: %q is not a duration like 30s or 2h", d.name, *d.v)
		}
		opts = append(opts, d.opt(v))
	}
	return jsonTask(tl.Kind, compact(payload), opts...), nil
}

// compact removes insignificant whitespace from valid JSON.
func compact(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return b
	}
	return buf.Bytes()
}

// jsonError says what is wrong with invalid JSON.
func jsonError(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	return errors.New("invalid JSON")
}

// writeJSON writes v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// jsonTask is a task whose payload is the JSON text payload.
func jsonTask(kind string, payload []byte, opts ...queue.Option) *queue.Task {
	return &queue.Task{Kind: kind, Payload: payload, Encoding: queue.EncodingJSON, Options: opts}
}
