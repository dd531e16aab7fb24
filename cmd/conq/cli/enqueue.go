package cli

import (
	"bufio"
	"bytes"
	"cmp"
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
	"github.com/conqhq/conq/queue/spec"
)

func init() { addCommand(newEnqueueCmd) }

// waitRetention is how long a task enqueued with --wait keeps its result
// when --retention is not given, so the waiting client can read it.
const waitRetention = time.Hour

// enqueueBatch bounds one EnqueueMany call of --file.
const enqueueBatch = 5000

// Bounds of --file: the whole file is checked before anything is
// enqueued, so it is held in memory.
const (
	maxFileTasks = 1_000_000
	maxFileBytes = 256 << 20
)

// maxStdinPayload bounds what --payload - reads: twice the payload limit,
// as the JSON is compacted before its size is checked.
const maxStdinPayload = 2 * queue.DefaultMaxPayloadSize

type enqueueOptions struct {
	broker      string
	kind        string
	payload     string
	args        string
	kwargs      string
	file        string
	queue       string
	retries     int
	in          durationFlag
	id          string
	timeout     durationFlag
	retention   durationFlag
	wait        bool
	waitTimeout durationFlag
	json        bool
	flow        string
	kinds       string
	maxSteps    int
	set         func(name string) bool
}

// durationFlag is a flag in the duration grammar of task specifications
// (spec.ParseDuration): "90s", "1h30m", or a number of seconds.
type durationFlag time.Duration

func (d *durationFlag) String() string {
	if *d == 0 {
		return "0" // pflag shows no default for "0"
	}
	return time.Duration(*d).String()
}
func (d *durationFlag) Type() string { return "duration" }
func (d *durationFlag) Set(s string) error {
	v, err := spec.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = durationFlag(v)
	return nil
}

func newEnqueueCmd() *cobra.Command {
	var o enqueueOptions
	cmd := &cobra.Command{
		Use:   "enqueue --broker URL --kind KIND --payload JSON",
		Short: "Put a task (or a file of tasks) on a queue",
		Long: `Enqueue stores a task in the broker and prints its ID. With --wait it waits
for the task to finish and prints its result instead; if the task ended
dead it prints the last error and exits with status 1.

The payload is one JSON value (--payload), or a call's arguments (--args
'[2, 3]' and/or --kwargs '{"b": 3}'), which a Python task receives as
fn(2, 3, b=3).

With --file it enqueues one task per line of a JSON Lines file ("-" for
stdin) in batches and prints their IDs in order. Each line is a task
specification, as in the HTTP API (docs/cli-queue.md lists the fields):

  {"kind": "send_email", "payload": {"to": "a@b.c"}, "queue": "emails",
   "max_retries": 3, "process_in": "30s", "id": "email-42", "timeout": "1m", "retention": "1h"}

Only "kind" is required. The whole file is checked before anything is
enqueued: a bad line is reported by number and nothing is enqueued.
Command-line options (--queue, --retries, ...) are defaults for the lines.

With --flow it creates a workflow (chain, group, chord) from a JSON file
("-" for stdin) and prints its ID; with --wait it prints the workflow's
result, or exits with status 1 and the failed steps' errors if it failed or
was cancelled. The format (docs/workflows.md):

  {"flow": {"chord": {"header": [{"task": {"kind": "add", "args": [1, 1]}},
                                 {"task": {"kind": "add", "args": [2, 2]}}],
                      "body": {"task": {"kind": "tsum"}}}},
   "queue": "default", "retention": "24h"}

The whole flow is checked before anything is enqueued: an empty chain,
group or chord header, more than --max-steps steps, a step with its own
non-args payload after another step, or a kind that no live worker of the
step's queue serves (when those workers publish their kinds; --kinds a,b
checks against a list instead, without asking the broker) is an error
naming the step, and nothing is enqueued. --queue, --retries, --timeout and
--retention are defaults for the steps, under the file's "queue" and
"retention".

Durations are Go durations (30s, 1h30m) or numbers of seconds (90).`,
		Example: `  conq enqueue --broker redis://localhost:6379/0 --kind is_prime --payload 9999999999999917 --wait
  conq enqueue --broker redis://localhost:6379/0 --kind add --args '[2, 3]' --wait
  conq enqueue --broker redis://localhost:6379/0 --kind report --payload '{"day":"2026-11-21"}' --in 1h --queue low
  conq enqueue --broker redis://localhost:6379/0 --file tasks.jsonl
  conq enqueue --broker redis://localhost:6379/0 --flow chord.json --wait
  conq enqueue --broker redis://localhost:6379/0 --flow - --kinds add,tsum < chord.json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.set = func(name string) bool { return cmd.Flags().Changed(name) }
			return runEnqueue(cmd.Context(), o, cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addBrokerFlag(cmd, &o.broker)
	f.StringVar(&o.kind, "kind", "", "task kind (the handler's name)")
	f.StringVar(&o.payload, "payload", "null", `payload as JSON ("-": read it from stdin, at most 2 MiB)`)
	f.StringVar(&o.args, "args", "", `positional arguments as a JSON array, e.g. '[2, 3]' (payload encoding "args")`)
	f.StringVar(&o.kwargs, "kwargs", "", `keyword arguments as a JSON object, e.g. '{"b": 3}' (payload encoding "args")`)
	f.StringVarP(&o.file, "file", "f", "", `JSON Lines file of tasks to enqueue ("-": stdin)`)
	f.StringVarP(&o.queue, "queue", "q", queue.DefaultQueue, "queue name")
	f.IntVar(&o.retries, "retries", queue.DefaultMaxRetries, fmt.Sprintf("retries after the first attempt (0..%d)", queue.MaxRetriesLimit))
	f.Var(&o.in, "in", "run it this long from now (e.g. 30s, 2h, or seconds)")
	f.StringVar(&o.id, "id", "", "task ID (unique per queue: enqueueing an existing ID fails); default random")
	f.Var(&o.timeout, "timeout", "time limit of each attempt (0: the worker's default)")
	f.Var(&o.retention, "retention", "keep the completed task and its result this long (--wait: default 1h)")
	f.BoolVarP(&o.wait, "wait", "w", false, "wait for the task to finish and print its result")
	f.Var(&o.waitTimeout, "wait-timeout", "give up waiting after this long (0: wait forever); the task carries on")
	f.BoolVar(&o.json, "json", false, "print JSON")
	f.StringVar(&o.flow, "flow", "", `JSON workflow file to create: a chain, group or chord of tasks ("-": stdin)`)
	f.StringVar(&o.kinds, "kinds", "", "with --flow: the task kinds the workers serve, comma-separated, to check the flow against (default: ask the live workers)")
	f.IntVar(&o.maxSteps, "max-steps", queue.DefaultMaxFlowSteps, "with --flow: refuse a flow of more steps than this")
	return cmd
}

// specFlags names the command-line flag of each specification field, for
// messages.
var specFlags = map[string]string{
	"kind": "--kind", "payload": "--payload", "args": "--args", "kwargs": "--kwargs", "id": "--id",
	"queue": "--queue", "max_retries": "--retries", "process_in": "--in", "timeout": "--timeout", "retention": "--retention",
}

// flagError turns a specification error into one naming the flag.
func flagError(err error) error {
	var se *spec.Error
	if errors.As(err, &se) {
		if name, ok := specFlags[se.Field]; ok {
			if se.Value == "" {
				return usageError("%s: %s", name, se.Problem)
			}
			return usageError("%s %s: %s", name, se.Value, se.Problem)
		}
	}
	return usageError("%v", err)
}

// defaultsSpec is the specification the command-line options give every
// task.
func (o enqueueOptions) defaultsSpec() spec.Task {
	retries := o.retries
	d := spec.Task{Queue: o.queue, MaxRetries: &retries}
	dur := func(v durationFlag) *time.Duration { d := time.Duration(v); return &d }
	if o.set("in") {
		d.ProcessIn = dur(o.in)
	}
	if o.set("timeout") {
		d.Timeout = dur(o.timeout)
	}
	retention := o.retention
	if o.wait && !o.set("retention") {
		retention = durationFlag(waitRetention)
	}
	if retention != 0 || o.set("retention") {
		d.Retention = dur(retention)
	}
	return d
}

func runEnqueue(ctx context.Context, o enqueueOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	if o.flow != "" {
		return runEnqueueFlow(ctx, o, stdin, stdout, stderr)
	}
	if o.set("kinds") || o.set("max-steps") {
		return usageError("--kinds and --max-steps need --flow")
	}
	if o.file != "" {
		if o.set("kind") || o.set("payload") || o.set("args") || o.set("kwargs") || o.set("id") || o.wait {
			return usageError("--file cannot be combined with --kind, --payload, --args, --kwargs, --id or --wait")
		}
	} else if o.kind == "" {
		return usageError("--kind is required (or --file, or --flow)")
	}
	if o.set("payload") && (o.set("args") || o.set("kwargs")) {
		return usageError("--payload cannot be combined with --args or --kwargs: the payload is one JSON value or a call's arguments")
	}
	if o.waitTimeout != 0 && !o.wait {
		return usageError("--wait-timeout needs --wait")
	}
	if o.waitTimeout < 0 || time.Duration(o.waitTimeout) > queue.MaxDuration {
		return usageError("--wait-timeout %v: must be in 0 to 100 years (876000h)", time.Duration(o.waitTimeout))
	}
	// The options alone first, so that a bad one is named by its flag.
	defaults := o.defaultsSpec()
	if err := (spec.Task{Kind: "-"}).WithDefaults(defaults).Validate(); err != nil {
		return flagError(err)
	}

	var tasks []*queue.Task
	var lines []int // line numbers of --file tasks
	if o.file != "" {
		var err error
		if tasks, lines, err = readTaskFile(o.file, stdin, defaults); err != nil {
			return usageError("--file %s: %v", o.file, err)
		}
	} else {
		ts, err := o.taskSpec(stdin)
		if err != nil {
			return err
		}
		t, err := ts.WithDefaults(defaults).Task()
		if err != nil {
			return flagError(err)
		}
		if err := checkSize(t); err != nil {
			return usageError("%v", err)
		}
		tasks = []*queue.Task{t}
	}

	b, err := openSharedBroker(ctx, "enqueue", o.broker, quietLogger(stderr))
	if err != nil {
		return err
	}
	defer b.Close()
	client, err := queue.NewClient(b, queue.ClientConfig{Logger: quietLogger(stderr)})
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
	return waitResult(ctx, client, queue.NewInspector(b), info, o, stdout, stderr)
}

// taskSpec is the task of --kind, --payload (or --args and --kwargs) and
// --id, decoded as the task specification they spell.
func (o enqueueOptions) taskSpec(stdin io.Reader) (spec.Task, error) {
	obj := map[string]json.RawMessage{}
	obj["kind"], _ = json.Marshal(o.kind)
	if o.id != "" {
		obj["id"], _ = json.Marshal(o.id)
	}
	if o.set("args") || o.set("kwargs") {
		for _, a := range []struct{ name, v string }{{"args", o.args}, {"kwargs", o.kwargs}} {
			if !o.set(a.name) {
				continue
			}
			if !json.Valid([]byte(a.v)) {
				return spec.Task{}, usageError("--%s is not valid JSON: %v", a.name, jsonError([]byte(a.v)))
			}
			obj[a.name] = json.RawMessage(a.v)
		}
	} else {
		payload := []byte(o.payload)
		if o.payload == "-" {
			var err error
			if payload, err = readStdinPayload(stdin); err != nil {
				return spec.Task{}, err
			}
		}
		if !json.Valid(payload) {
			return spec.Task{}, usageError("--payload is not valid JSON: %v (quote strings: --payload '\"text\"')", jsonError(payload))
		}
		obj["payload"] = payload
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return spec.Task{}, usageError("%v", err)
	}
	var ts spec.Task
	if err := json.Unmarshal(b, &ts); err != nil {
		return spec.Task{}, flagError(err)
	}
	return ts, nil
}

// readStdinPayload reads --payload - through a limit: a payload too large
// to enqueue is refused without reading the rest.
func readStdinPayload(stdin io.Reader) ([]byte, error) {
	payload, err := io.ReadAll(io.LimitReader(stdin, maxStdinPayload+1))
	if err != nil {
		return nil, failure(fmt.Errorf("reading the payload from stdin: %w", err))
	}
	if len(payload) > maxStdinPayload {
		return nil, usageError("--payload -: stdin holds more than %d bytes, over the limit of %d bytes for a payload", maxStdinPayload, queue.DefaultMaxPayloadSize)
	}
	return bytes.TrimSpace(payload), nil
}

// checkSize applies the client's payload limit before anything is
// enqueued.
func checkSize(t *queue.Task) error {
	if len(t.Payload) > queue.DefaultMaxPayloadSize {
		return &queue.PayloadTooLargeError{Kind: t.Kind, Size: len(t.Payload), Max: queue.DefaultMaxPayloadSize}
	}
	return nil
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

// lastAttemptNote is what a wait that timed out adds about the task: its
// last failed attempt, when one failed (a task waiting to retry), read once
// (a second of its own: ctx has ended); "" otherwise or if it cannot be
// read.
func lastAttemptNote(ctx context.Context, insp *queue.Inspector, info *queue.TaskInfo) string {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	t, err := insp.Task(rctx, info.Queue, info.ID)
	if err != nil || len(t.Errors) == 0 {
		return ""
	}
	last := t.Errors[len(t.Errors)-1]
	return fmt.Sprintf(" (%s; attempt %d failed: %s)", t.State, last.Attempt, oneLine(last.Message, 200))
}

// waitResult waits for the task and prints its result or its failure.
func waitResult(ctx context.Context, c *queue.Client, insp *queue.Inspector, info *queue.TaskInfo, o enqueueOptions, stdout, stderr io.Writer) error {
	if o.waitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(o.waitTimeout))
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
		return &ExitError{Code: 1, Err: fmt.Errorf("task %s did not finish within --wait-timeout %v; it is still queued or running%s", info.ID, time.Duration(o.waitTimeout), lastAttemptNote(ctx, insp, info))}
	default:
		return failure(fmt.Errorf("waiting for task %s: %w", info.ID, err))
	}
	return writeResult(stdout, o.json, info.ID, string(queue.StateCompleted), res)
}

// writeResult prints a finished task's or workflow's result: as JSON
// {"id", "state", "result"} with --json, else its bytes on a line.
func writeResult(stdout io.Writer, asJSON bool, id, state string, res []byte) error {
	if asJSON {
		return writeJSON(stdout, map[string]any{"id": id, "state": state, "result": resultValue(res)})
	}
	if len(res) > 0 && res[len(res)-1] != '\n' {
		res = append(res, '\n')
	}
	_, err := stdout.Write(res)
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

// readTaskFile parses a JSON Lines task file, blank lines skipped, into
// tasks with the command line's defaults, checking each as the client
// will: a bad file enqueues nothing.
func readTaskFile(name string, stdin io.Reader, defaults spec.Task) (tasks []*queue.Task, lines []int, err error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		r = f
	}
	lr := &io.LimitedReader{R: r, N: maxFileBytes + 1}
	sc := bufio.NewScanner(lr)
	sc.Buffer(make([]byte, 64<<10), 2*queue.DefaultMaxPayloadSize+64<<10)
	type key struct{ queue, id string }
	ids := map[key]int{}
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		if len(tasks) == maxFileTasks {
			return nil, nil, fmt.Errorf("more than %d tasks: split the file (nothing was enqueued)", maxFileTasks)
		}
		t, ts, err := parseTaskLine(line, defaults)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %v (nothing was enqueued)", n, err)
		}
		if ts.ID != "" {
			k := key{cmp.Or(ts.Queue, queue.DefaultQueue), ts.ID}
			if prev, dup := ids[k]; dup {
				return nil, nil, fmt.Errorf("line %d: task ID %q in queue %q is on line %d too (nothing was enqueued)", n, k.id, k.queue, prev)
			}
			ids[k] = n
		}
		tasks = append(tasks, t)
		lines = append(lines, n)
	}
	if lr.N <= 0 {
		return nil, nil, fmt.Errorf("over %d MiB: split the file (nothing was enqueued)", maxFileBytes>>20)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading: %w (nothing was enqueued)", err)
	}
	if len(tasks) == 0 {
		return nil, nil, errors.New("no tasks in the file")
	}
	return tasks, lines, nil
}

// parseTaskLine reads one line: a task specification (the older names
// "retries" and "in" still accepted), with the defaults. It returns the
// task and its specification, defaults applied.
func parseTaskLine(line []byte, defaults spec.Task) (*queue.Task, spec.Task, error) {
	ts, err := spec.ParseLine(line)
	if err != nil {
		return nil, ts, err
	}
	ts = ts.WithDefaults(defaults)
	t, err := ts.Task()
	if err != nil {
		return nil, ts, err
	}
	return t, ts, checkSize(t)
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
