package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/spec"
)

// maxFlowFile bounds a --flow file: the whole flow is checked before
// anything is enqueued, so it is held in memory. It is the HTTP API's
// bound too.
const maxFlowFile = 32 << 20

// flowConflicts are the enqueue flags that say something a flow file
// says per task (or that make no sense for a workflow).
var flowConflicts = []string{"kind", "payload", "args", "kwargs", "id", "file", "in"}

// runEnqueueFlow is conq enqueue --flow: parse and check the whole flow,
// then create it in one broker call, then (--wait) wait for its end.
func runEnqueueFlow(ctx context.Context, o enqueueOptions, stdin io.Reader, stdout, stderr io.Writer) error {
	for _, name := range flowConflicts {
		if o.set(name) {
			return usageError("--flow cannot be combined with --%s: a flow file gives each step its own task (see docs/workflows.md)", name)
		}
	}
	if o.waitTimeout != 0 && !o.wait {
		return usageError("--wait-timeout needs --wait")
	}
	if o.waitTimeout < 0 || time.Duration(o.waitTimeout) > queue.MaxDuration {
		return usageError("--wait-timeout %v: must be in 0 to 100 years (876000h)", time.Duration(o.waitTimeout))
	}
	if o.maxSteps < 1 || o.maxSteps > queue.DefaultMaxFlowSteps {
		return usageError("--max-steps %d: must be in 1..%d", o.maxSteps, queue.DefaultMaxFlowSteps)
	}
	defaults := o.flowDefaults()
	if err := (spec.Task{Kind: "-"}).WithDefaults(defaults).Validate(); err != nil {
		return flagError(err)
	}
	data, err := readFlowFile(o.flow, stdin)
	if err != nil {
		return err
	}
	f, err := spec.ParseFlowWith(data, spec.FlowOptions{Defaults: defaults, MaxSteps: o.maxSteps})
	if err != nil {
		return usageError("--flow %s: %v", o.flow, err)
	}
	kinds, err := parseKinds(o.kinds)
	if err != nil {
		return err
	}
	if kinds != nil {
		if err := f.CheckKinds(func(string) []string { return kinds }); err != nil {
			return usageError("--flow %s: %v (--kinds)", o.flow, err)
		}
	}

	b, err := openSharedBroker(ctx, "enqueue", o.broker, quietLogger(stderr))
	if err != nil {
		return err
	}
	defer b.Close()
	if kinds == nil {
		if err := f.CheckWorkers(ctx, queue.NewInspector(b).Workers); err != nil {
			if errors.Is(err, spec.ErrUnknownKind) {
				return usageError("--flow %s: %v", o.flow, err)
			}
			return failure(err)
		}
	}
	client, err := queue.NewClient(b, queue.ClientConfig{Logger: quietLogger(stderr)})
	if err != nil {
		return usageError("%v", err)
	}
	h, err := client.EnqueueFlow(ctx, f.Flow)
	switch {
	case errors.Is(err, broker.ErrUnsupported):
		return failure(fmt.Errorf("the broker does not support workflows (docs/workflows.md lists the brokers that do): %w", err))
	case errors.Is(err, broker.ErrWorkflowTooLarge):
		return usageError("--flow %s: %v (nothing was enqueued)", o.flow, err)
	case err != nil:
		return enqueueFailure(err)
	}
	if !o.wait {
		if o.json {
			return writeJSON(stdout, map[string]any{"id": h.ID, "state": broker.WorkflowRunning, "steps": f.Steps})
		}
		_, err := fmt.Fprintln(stdout, h.ID)
		return err
	}
	return waitFlow(ctx, h, queue.NewInspector(b), o, stdout, stderr)
}

// flowDefaults are the options the command line gives every step. Unlike
// a single task's, --wait adds no retention: a workflow keeps its results
// (queue.DefaultFlowRetention) unless a step asks for longer.
func (o enqueueOptions) flowDefaults() spec.Task {
	retries := o.retries
	d := spec.Task{MaxRetries: &retries}
	if o.set("queue") {
		d.Queue = o.queue
	}
	if o.set("timeout") {
		v := time.Duration(o.timeout)
		d.Timeout = &v
	}
	if o.set("retention") {
		v := time.Duration(o.retention)
		d.Retention = &v
	}
	return d
}

// readFlowFile reads --flow (a file name or "-" for stdin) through the
// size bound.
func readFlowFile(name string, stdin io.Reader) ([]byte, error) {
	r := stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, usageError("--flow: %v", err)
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxFlowFile+1))
	if err != nil {
		return nil, failure(fmt.Errorf("--flow %s: reading: %w", name, err))
	}
	if len(data) > maxFlowFile {
		return nil, usageError("--flow %s: over %d MiB (nothing was enqueued)", name, maxFlowFile>>20)
	}
	return data, nil
}

// parseKinds reads --kinds a,b: nil when not given.
func parseKinds(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for k := range strings.SplitSeq(s, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if err := (spec.Task{Kind: k}).Validate(); err != nil {
			return nil, usageError("--kinds: %q: %v", k, err)
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil, usageError("--kinds: no kind given")
	}
	return out, nil
}

// waitFlow waits for the workflow's end and prints its result, or its
// failure (exit status 1, with the failed steps' errors on stderr).
func waitFlow(ctx context.Context, h *queue.FlowHandle, insp *queue.Inspector, o enqueueOptions, stdout, stderr io.Writer) error {
	if o.waitTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(o.waitTimeout))
		defer cancel()
	}
	res, err := h.Result(ctx)
	var fe *queue.FlowError
	switch {
	case err == nil:
	case errors.As(err, &fe):
		// The workflow's error names the first failure; the steps say
		// which failed and which were cancelled because of it.
		wf, ierr := insp.Workflow(context.WithoutCancel(ctx), h.ID)
		if o.json {
			v := map[string]any{"id": h.ID, "state": fe.State, "error": fe.Msg}
			if ierr == nil {
				v["steps"] = flowStepsJSON(wf)
			}
			_ = writeJSON(stdout, v)
		} else if ierr == nil {
			for i, st := range wf.Steps {
				if st.State == broker.StepFailed {
					fmt.Fprintf(stderr, "step %d (%s, task %s) failed: %s\n", i, st.Task.Kind, st.Task.ID, st.Error)
				}
			}
		}
		return &ExitError{Code: 1, Err: err}
	case errors.Is(err, context.DeadlineExceeded) && o.waitTimeout > 0:
		return &ExitError{Code: 1, Err: fmt.Errorf("workflow %s did not finish within --wait-timeout %v; it carries on (conq inspect flow %s)%s", h.ID, time.Duration(o.waitTimeout), h.ID, retryingStepsNote(ctx, insp, h.ID))}
	default:
		return failure(fmt.Errorf("waiting for workflow %s: %w", h.ID, err))
	}
	return writeResult(stdout, o.json, h.ID, string(broker.WorkflowCompleted), res)
}

// retryingStepsNote is what a wait for a workflow that timed out adds: its
// steps waiting to retry, with their last error (read once, in a second
// of its own); "" when none or if the workflow cannot be read.
func retryingStepsNote(ctx context.Context, insp *queue.Inspector, id string) string {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	wf, err := insp.Workflow(rctx, id)
	if err != nil {
		return ""
	}
	var notes []string
	for i, st := range wf.Steps {
		if st.State == broker.StepEnqueued && st.TaskState == broker.StateRetry {
			notes = append(notes, fmt.Sprintf("step %d (%s) waits to retry after %d attempt(s): %s", i, st.Task.Kind, st.Attempts, oneLine(st.Error, 200)))
		}
	}
	switch {
	case len(notes) == 0:
		return ""
	case len(notes) > 3:
		notes = append(notes[:3], fmt.Sprintf("%d more", len(notes)-3))
	}
	return "; " + strings.Join(notes, "; ")
}

// flowStep is a step for --json, as GET /api/v1/workflows/{id} shows it.
type flowStep struct {
	Index    int    `json:"index"`
	TaskID   string `json:"task_id"`
	Kind     string `json:"kind"`
	Queue    string `json:"queue"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
	Inputs   []int  `json:"inputs,omitempty"`
	// Immutable: the step waits for its inputs but does not receive them.
	Immutable bool            `json:"immutable,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
}

// stepState is a step's state as shown: its task's while it is enqueued
// (pending, active, retry, ...), else the step's own.
func stepState(st broker.WorkflowStep) string {
	if st.State == broker.StepEnqueued && st.TaskState != "" {
		return string(st.TaskState)
	}
	return string(st.State)
}

func flowStepsJSON(wf *queue.WorkflowInfo) []flowStep {
	out := make([]flowStep, len(wf.Steps))
	for i, st := range wf.Steps {
		v := flowStep{Index: i, TaskID: st.Task.ID, Kind: st.Task.Kind, Queue: st.Task.Queue, State: stepState(st),
			Attempts: st.Attempts, Error: st.Error, Immutable: st.Immutable}
		if st.Input != nil {
			v.Inputs = st.Input.Deps(nil)
		}
		if len(st.Result) > 0 {
			v.Result = resultValue(st.Result)
		}
		out[i] = v
	}
	return out
}

type flowView struct {
	ID         string          `json:"id"`
	StateName  string          `json:"state"`
	Result     json.RawMessage `json:"result,omitempty"`
	Error      string          `json:"error,omitempty"`
	CreatedAt  *time.Time      `json:"created_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
	Retention  string          `json:"retention,omitempty"`
	Steps      []flowStep      `json:"steps"`
}

func flowJSON(wf *queue.WorkflowInfo) flowView {
	v := flowView{ID: wf.ID, StateName: string(wf.State), Error: wf.Error, CreatedAt: setTime(wf.CreatedAt),
		FinishedAt: setTime(wf.FinishedAt), Steps: flowStepsJSON(wf)}
	if wf.State == broker.WorkflowCompleted {
		v.Result = resultValue(wf.Result)
	}
	if wf.Retention > 0 {
		v.Retention = wf.Retention.String()
	}
	return v
}

func newInspectFlowCmd(o *inspectOptions) *cobra.Command {
	return &cobra.Command{
		Use:     "flow ID",
		Aliases: []string{"workflow"},
		Short:   "Show a workflow: its state, result, and each step's state, attempts, result or error",
		Long: `Flow shows a workflow (conq enqueue --flow) and each of its steps in the
order the workflow numbers them (step N's task ID is ID.N): its kind, task
ID, state (its task's while it is enqueued: pending, active, retry; else
waiting, completed, failed or cancelled), attempts and result or error.`,
		Example: `  conq inspect --broker redis://localhost:6379/0 flow wf_3XKZ6Q4VJ2DGW7VN
  conq inspect --broker redis://localhost:6379/0 flow wf_3XKZ6Q4VJ2DGW7VN --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withInspector(cmd.Context(), "inspect", o.broker, cmd.ErrOrStderr(), func(in *queue.Inspector) error {
				return inspectFlow(cmd.Context(), in, args[0], o.json, cmd.OutOrStdout())
			})
		},
	}
}

func inspectFlow(ctx context.Context, in *queue.Inspector, id string, jsonOut bool, w io.Writer) error {
	wf, err := in.Workflow(ctx, id)
	switch {
	case errors.Is(err, broker.ErrTaskNotFound):
		return failure(fmt.Errorf("no workflow %q (finished workflows are kept for their retention)", id))
	case errors.Is(err, broker.ErrUnsupported):
		return failure(fmt.Errorf("the broker does not support workflows: %w", err))
	case err != nil:
		return err
	}
	if jsonOut {
		return writeJSON(w, flowJSON(wf))
	}
	return printFlow(w, wf)
}

func printFlow(w io.Writer, wf *queue.WorkflowInfo) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Workflow", wf.ID)
	row("State", string(wf.State))
	row("Steps", fmt.Sprint(len(wf.Steps)))
	row("Created", stamp(wf.CreatedAt))
	if !wf.FinishedAt.IsZero() {
		row("Finished", stamp(wf.FinishedAt))
	}
	if wf.State == broker.WorkflowCompleted {
		row("Result", oneLine(string(resultValue(wf.Result)), 200))
	}
	if wf.Error != "" {
		row("Error", oneLine(wf.Error, 200))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "STEP\tKIND\tTASK\tSTATE\tATTEMPTS\tINPUTS\tRESULT / ERROR")
	for i, st := range wf.Steps {
		inputs := "-"
		if st.Input != nil {
			deps := st.Input.Deps(nil)
			parts := make([]string, len(deps))
			for j, d := range deps {
				parts[j] = fmt.Sprint(d)
			}
			inputs = oneLine(strings.Join(parts, ","), 30)
			if st.Immutable {
				inputs += " (immutable)"
			}
		}
		out := "-"
		switch {
		case st.Error != "":
			out = "error: " + oneLine(st.Error, 80)
		case len(st.Result) > 0:
			out = oneLine(string(resultValue(st.Result)), 80)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", i, st.Task.Kind, st.Task.ID, stepState(st), st.Attempts, inputs, out)
	}
	return tw.Flush()
}

func newInspectFlowsCmd(o *inspectOptions) *cobra.Command {
	var (
		state, cursor string
		limit         int
	)
	cmd := &cobra.Command{
		Use:     "flows [--state S] [--limit N]",
		Aliases: []string{"workflows"},
		Short:   "List the workflows, newest first: state, steps done, creation time",
		Long: `Flows lists the workflows the broker keeps (finished ones until their
retention ends), newest first: ID, queue, state, steps finished out of all,
when it was created and, for a failed one, why. --state keeps one state
(running, completed, failed or cancelled). When more are left than --limit
shows, the last line gives the --cursor that lists the next ones (in JSON,
"next").`,
		Example: `  conq inspect --broker redis://localhost:6379/0 flows
  conq inspect --broker redis://localhost:6379/0 flows --state running --limit 20`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := queue.WorkflowListParams{State: broker.WorkflowState(state), Cursor: cursor}
			if p.State != "" && !p.State.Known() {
				return usageError("--state %q: want running, completed, failed or cancelled", state)
			}
			if limit < 0 || limit > queue.MaxListOffset {
				return usageError("--limit %d: must be in 0..%d (0: all)", limit, queue.MaxListOffset)
			}
			ctx := cmd.Context()
			return withInspector(ctx, "inspect", o.broker, cmd.ErrOrStderr(), func(in *queue.Inspector) error {
				ws, next, err := listFlows(ctx, in, p, limit)
				if errors.Is(err, broker.ErrUnsupported) {
					return failure(fmt.Errorf("the broker does not support workflows: %w", err))
				}
				if err != nil {
					return err
				}
				if o.json {
					out := map[string]any{"workflows": ws}
					if next != "" {
						out["next"] = next
					}
					return writeJSON(cmd.OutOrStdout(), out)
				}
				return printFlows(cmd.OutOrStdout(), ws, next)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "only workflows in this state: running, completed, failed or cancelled")
	f.IntVar(&limit, "limit", 100, "list at most this many (0: all)")
	f.StringVar(&cursor, "cursor", "", "continue after the list that printed this cursor")
	return cmd
}

// listFlows reads pages until it has limit workflows (0: all of them),
// since a page may be short while more follow. It returns the cursor of
// what is left, "" if nothing is.
func listFlows(ctx context.Context, in *queue.Inspector, p queue.WorkflowListParams, limit int) ([]queue.WorkflowSummary, string, error) {
	out := []queue.WorkflowSummary{}
	for {
		p.Limit = broker.MaxWorkflowListLimit
		if limit > 0 {
			p.Limit = min(p.Limit, limit-len(out))
		}
		page, err := in.Workflows(ctx, p)
		if err != nil {
			return nil, "", err
		}
		out = append(out, page.Workflows...)
		if page.Next == "" || (limit > 0 && len(out) >= limit) {
			return out, page.Next, nil
		}
		p.Cursor = page.Next
	}
}

func printFlows(w io.Writer, ws []queue.WorkflowSummary, next string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tQUEUE\tSTATE\tSTEPS\tCREATED\tERROR")
	for _, wf := range ws {
		errText := "-"
		if wf.Error != "" {
			errText = oneLine(wf.Error, 80)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%s\n", wf.ID, wf.Queue, wf.State, wf.Done, wf.Steps, ago(wf.CreatedAt), errText)
	}
	if len(ws) == 0 {
		fmt.Fprintln(tw, "(no workflows)")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		fmt.Fprintf(w, "(more: --cursor %s)\n", next)
	}
	return nil
}
