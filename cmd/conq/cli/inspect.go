package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
)

func init() { addCommand(newInspectCmd) }

type inspectOptions struct {
	broker string
	json   bool
}

func newInspectCmd() *cobra.Command {
	o := &inspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect",
		Short: "Look at queues and tasks in the broker",
		Long: `Inspect shows the broker's queues with their task counts, lists the tasks of
a state, shows one task with its payload, result and error history, or
the workflows, newest first, or one workflow with its steps.
Tables by default, JSON with --json. See also conq retry, delete, pause and
resume.`,
		Example: `  conq inspect --broker redis://localhost:6379/0 queues
  conq inspect --broker redis://localhost:6379/0 tasks --state dead
  conq inspect --broker redis://localhost:6379/0 task 3XKZ6Q4VJ2DGW7VN
  conq inspect --broker redis://localhost:6379/0 flows --state failed
  conq inspect --broker redis://localhost:6379/0 flow wf_3XKZ6Q4VJ2DGW7VN`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError("conq inspect needs a subcommand: queues, tasks, task, workers, flows or flow (see conq inspect --help)")
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.broker, "broker", "", brokerUsage)
	pf.BoolVar(&o.json, "json", false, "print JSON")
	cmd.AddCommand(newInspectQueuesCmd(o), newInspectTasksCmd(o), newInspectTaskCmd(o), newInspectWorkersCmd(o), newInspectFlowsCmd(o), newInspectFlowCmd(o))
	return cmd
}

// withInspector opens the broker of o and runs fn with an inspector.
func withInspector(ctx context.Context, cmdName, url string, stderr io.Writer, fn func(*queue.Inspector) error) error {
	b, err := openSharedBroker(ctx, cmdName, url, quietLogger(stderr))
	if err != nil {
		return err
	}
	defer b.Close()
	return inspectError(fn(queue.NewInspector(b)))
}

// inspectError gives invalid arguments exit status 2 and the rest 1.
func inspectError(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, queue.ErrInvalidOption) {
		return usageError("%v", err)
	}
	return failure(err)
}

func newInspectQueuesCmd(o *inspectOptions) *cobra.Command {
	var shards bool
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "List the queues with their task counts per state",
		Long: `Queues lists every queue with its task counts per state. A queue spread over
several shards (conq shards) is one line, its counts the sums over its
shards; --shards adds a table per sharded queue with each shard's slot,
node and counts (in JSON the "shards" field is always there for them).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withInspector(cmd.Context(), "inspect", o.broker, cmd.ErrOrStderr(), func(in *queue.Inspector) error {
				qs, err := in.Queues(cmd.Context())
				if err != nil {
					return err
				}
				if o.json {
					if qs == nil {
						qs = []queue.QueueInfo{}
					}
					return writeJSON(cmd.OutOrStdout(), qs)
				}
				if err := printQueues(cmd.OutOrStdout(), qs); err != nil || !shards {
					return err
				}
				for _, q := range qs {
					if len(q.Shards) > 0 {
						fmt.Fprintln(cmd.OutOrStdout())
						if err := printShards(cmd.OutOrStdout(), q); err != nil {
							return err
						}
					}
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&shards, "shards", false, "also show each shard of the sharded queues")
	return cmd
}

func newInspectWorkersCmd(o *inspectOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "workers",
		Short: "List the live workers with their heartbeats and running tasks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withInspector(cmd.Context(), "inspect", o.broker, cmd.ErrOrStderr(), func(in *queue.Inspector) error {
				ws, err := in.Workers(cmd.Context())
				if err != nil {
					return err
				}
				if o.json {
					if ws == nil {
						ws = []queue.WorkerInfo{}
					}
					return writeJSON(cmd.OutOrStdout(), ws)
				}
				tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "WORKER\tHOST\tPID\tQUEUES\tRUNNING\tHEARTBEAT\tTASKS")
				for _, w := range ws {
					var tasks []string
					for _, t := range w.Running {
						tasks = append(tasks, t.ID+"("+t.Kind+")")
					}
					fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d/%d\t%s\t%s\n", w.ID, w.Host, w.PID, strings.Join(w.Queues, ","),
						len(w.Running), w.Concurrency, w.HeartbeatAt.UTC().Format(time.RFC3339), strings.Join(tasks, " "))
				}
				if len(ws) == 0 {
					fmt.Fprintln(tw, "(no live workers)")
				}
				return tw.Flush()
			})
		},
	}
}

func printQueues(w io.Writer, qs []queue.QueueInfo) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprint(tw, "QUEUE\tSTATE")
	for _, st := range broker.States {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(string(st)))
	}
	fmt.Fprintln(tw)
	for _, q := range qs {
		state := "running"
		if q.Paused {
			state = "paused"
		}
		fmt.Fprintf(tw, "%s\t%s", q.Name, state)
		for _, st := range broker.States {
			fmt.Fprintf(tw, "\t%d", q.Counts[st])
		}
		fmt.Fprintln(tw)
	}
	if len(qs) == 0 {
		fmt.Fprintln(tw, "(no queues)")
	}
	return tw.Flush()
}

func newInspectTasksCmd(o *inspectOptions) *cobra.Command {
	var (
		state, queueName string
		limit, offset    int
	)
	cmd := &cobra.Command{
		Use:   "tasks --state STATE [--queue Q]",
		Short: "List the tasks of a state, oldest first (every queue unless --queue)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := broker.ParseState(state)
			if err != nil {
				return usageError("--state: %v", err)
			}
			if limit < 0 || limit > queue.MaxListOffset {
				return usageError("--limit %d: must be in 0..%d (0: all)", limit, queue.MaxListOffset)
			}
			if offset < 0 || offset > queue.MaxListOffset {
				return usageError("--offset %d: must be in 0..%d", offset, queue.MaxListOffset)
			}
			ctx := cmd.Context()
			return withInspector(ctx, "inspect", o.broker, cmd.ErrOrStderr(), func(in *queue.Inspector) error {
				var names []string
				if queueName != "" {
					names = []string{queueName}
				} else {
					qs, err := in.Queues(ctx)
					if err != nil {
						return err
					}
					for _, q := range qs {
						if q.Counts[st] > 0 {
							names = append(names, q.Name)
						}
					}
				}
				// offset and limit apply per queue, then to the whole list.
				tasks := []*queue.TaskInfo{}
				for _, name := range names {
					ts, err := firstTasks(ctx, in, name, st, offsetLimit(offset, limit))
					if err != nil {
						return err
					}
					tasks = append(tasks, ts...)
				}
				if len(names) > 1 {
					sortTasks(tasks)
				}
				tasks = tasks[min(offset, len(tasks)):]
				if limit > 0 && len(tasks) > limit {
					tasks = tasks[:limit]
				}
				if o.json {
					views := make([]taskView, len(tasks))
					for i, t := range tasks {
						views[i] = taskJSON(t)
					}
					return writeJSON(cmd.OutOrStdout(), views)
				}
				return printTasks(cmd.OutOrStdout(), tasks)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&state, "state", "", "task state: pending, scheduled, active, retry, dead or completed")
	f.StringVarP(&queueName, "queue", "q", "", "only this queue")
	f.IntVar(&limit, "limit", 100, "list at most this many (0: all)")
	f.IntVar(&offset, "offset", 0, "skip this many first")
	_ = cmd.MarkFlagRequired("state")
	return cmd
}

// inspectPage is the page size firstTasks reads with.
const inspectPage = 1000

// firstTasks returns the first n tasks of a queue in a state, or all of
// them if n is 0, reading them page by page.
func firstTasks(ctx context.Context, in *queue.Inspector, name string, st queue.State, n int) ([]*queue.TaskInfo, error) {
	var out []*queue.TaskInfo
	for {
		page := inspectPage
		if n > 0 {
			page = min(page, n-len(out))
		}
		ts, err := in.Tasks(ctx, name, st, len(out), page)
		if err != nil {
			return nil, err
		}
		out = append(out, ts...)
		if len(ts) < page || (n > 0 && len(out) >= n) {
			return out, nil
		}
	}
}

func offsetLimit(offset, limit int) int {
	if limit <= 0 {
		return 0
	}
	return offset + limit
}

// sortTasks orders tasks of several queues oldest first.
func sortTasks(ts []*queue.TaskInfo) {
	key := func(t *queue.TaskInfo) time.Time {
		if t.ProcessAt.After(t.EnqueuedAt) {
			return t.ProcessAt
		}
		return t.EnqueuedAt
	}
	for i := 1; i < len(ts); i++ { // insertion sort is stable
		for j := i; j > 0 && key(ts[j]).Before(key(ts[j-1])); j-- {
			ts[j], ts[j-1] = ts[j-1], ts[j]
		}
	}
}

func printTasks(w io.Writer, ts []*queue.TaskInfo) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tQUEUE\tKIND\tSTATE\tATTEMPTS\tENQUEUED\tLAST ERROR")
	for _, t := range ts {
		last := "-"
		if n := len(t.Errors); n > 0 {
			last = oneLine(t.Errors[n-1].Message, 60)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d/%d\t%s\t%s\n", t.ID, t.Queue, t.Kind, t.State,
			t.Attempts, t.MaxRetries+1, ago(t.EnqueuedAt), last)
	}
	if len(ts) == 0 {
		fmt.Fprintln(tw, "(no tasks)")
	}
	return tw.Flush()
}

func newInspectTaskCmd(o *inspectOptions) *cobra.Command {
	var queueName string
	cmd := &cobra.Command{
		Use:   "task ID",
		Short: "Show a task: options, state, payload, result and errors",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withInspector(cmd.Context(), "inspect", o.broker, cmd.ErrOrStderr(), func(in *queue.Inspector) error {
				t, err := in.Task(cmd.Context(), queueName, args[0])
				if err != nil {
					return err
				}
				if o.json {
					return writeJSON(cmd.OutOrStdout(), taskJSON(t))
				}
				return printTask(cmd.OutOrStdout(), t)
			})
		},
	}
	cmd.Flags().StringVarP(&queueName, "queue", "q", "", "the task's queue (default: search every queue)")
	return cmd
}

// taskView is a task for --json, with payload and result as JSON values,
// durations as Go duration strings and unset times left out, as the HTTP
// API shows it (its fields shadow TaskInfo's).
type taskView struct {
	*queue.TaskInfo
	Payload     json.RawMessage `json:"payload"`
	Result      json.RawMessage `json:"result,omitempty"`
	Timeout     string          `json:"timeout,omitempty"`
	Retention   string          `json:"retention,omitempty"`
	Deadline    *time.Time      `json:"deadline,omitempty"`
	ProcessAt   *time.Time      `json:"process_at,omitempty"`
	StartedAt   *time.Time      `json:"started_at,omitempty"`
	CompletedAt *time.Time      `json:"completed_at,omitempty"`
	LeaseUntil  *time.Time      `json:"lease_until,omitempty"`
}

func taskJSON(t *queue.TaskInfo) taskView {
	v := taskView{TaskInfo: t, Payload: resultValue(t.Payload),
		Deadline: setTime(t.Deadline), ProcessAt: setTime(t.ProcessAt), StartedAt: setTime(t.StartedAt),
		CompletedAt: setTime(t.CompletedAt), LeaseUntil: setTime(t.LeaseUntil)}
	if len(t.Result) > 0 {
		v.Result = resultValue(t.Result)
	}
	if t.Timeout > 0 {
		v.Timeout = t.Timeout.String()
	}
	if t.Retention > 0 {
		v.Retention = t.Retention.String()
	}
	return v
}

// setTime is t, or nil for the zero time (left out of JSON).
func setTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func printTask(w io.Writer, t *queue.TaskInfo) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("ID", t.ID)
	row("Queue", t.Queue)
	row("Kind", t.Kind)
	row("State", string(t.State))
	row("Attempts", fmt.Sprintf("%d of %d", t.Attempts, t.MaxRetries+1))
	row("Enqueued", stamp(t.EnqueuedAt))
	if !t.ProcessAt.IsZero() {
		row("Process at", stamp(t.ProcessAt))
	}
	if t.Timeout > 0 {
		row("Timeout", t.Timeout.String())
	}
	if !t.Deadline.IsZero() {
		row("Deadline", stamp(t.Deadline))
	}
	if t.Retention > 0 {
		row("Retention", t.Retention.String())
	}
	if !t.StartedAt.IsZero() {
		row("Started", stamp(t.StartedAt))
	}
	if !t.CompletedAt.IsZero() {
		row("Completed", stamp(t.CompletedAt))
	}
	if t.WorkerID != "" {
		row("Worker", t.WorkerID)
		row("Lease until", stamp(t.LeaseUntil))
	}
	row("Payload", oneLine(string(resultValue(t.Payload)), 200))
	if len(t.Result) > 0 {
		row("Result", oneLine(string(resultValue(t.Result)), 200))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(t.Errors) > 0 {
		fmt.Fprintln(w, "Errors:")
		for _, e := range t.Errors {
			fmt.Fprintf(w, "  attempt %d at %s (%s): %s\n", e.Attempt, stamp(e.At), e.Kind, indent(e.Message, "    "))
			if e.Stack != "" {
				fmt.Fprintf(w, "    %s\n", indent(strings.TrimSpace(e.Stack), "    "))
			}
		}
	}
	return nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05.000 MST") + " (" + ago(t) + ")"
}

// ago says how long ago (or in how long) t is, coarsely.
func ago(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	suffix := " ago"
	if d < 0 {
		d, suffix = -d, " from now"
	}
	switch {
	case d < time.Second:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s" + suffix
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m" + suffix
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h" + suffix
	}
	return strconv.Itoa(int(d.Hours()/24)) + "d" + suffix
}

// oneLine flattens s to its first line, at most n runes.
func oneLine(s string, n int) string {
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i] + " …"
	}
	if r := []rune(s); len(r) > n {
		s = string(r[:n-1]) + "…"
	}
	return s
}

func indent(s, prefix string) string { return strings.ReplaceAll(s, "\n", "\n"+prefix) }
