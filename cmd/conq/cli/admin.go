package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/queue"
)

func init() {
	addCommand(newRetryCmd)
	addCommand(newDeleteCmd)
	addCommand(newCancelCmd)
	addCommand(newPauseCmd)
	addCommand(newResumeCmd)
}

// adminCmd builds a command that applies one inspector call to its argument.
func adminCmd(use, short, long string, withQueue bool, do func(ctx context.Context, in *queue.Inspector, queueName, arg string) (string, error)) *cobra.Command {
	var url, queueName string
	var jsonOut bool
	name, _, _ := strings.Cut(use, " ")
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long:  long,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withInspector(cmd.Context(), name, url, cmd.ErrOrStderr(), func(in *queue.Inspector) error {
				msg, err := do(cmd.Context(), in, queueName, args[0])
				if err != nil {
					return err
				}
				if jsonOut {
					return writeJSON(cmd.OutOrStdout(), map[string]any{"ok": true, "command": name, "target": args[0], "message": msg})
				}
				_, err = fmt.Fprintln(cmd.OutOrStdout(), msg)
				return err
			})
		},
	}
	addBrokerFlag(cmd, &url)
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	if withQueue {
		cmd.Flags().StringVarP(&queueName, "queue", "q", "", "the task's queue (default: search every queue)")
	}
	return cmd
}

func newRetryCmd() *cobra.Command {
	return adminCmd("retry TASK_ID", "Run a dead, retrying or scheduled task now",
		"Retry makes the task pending now. A dead task gets one more attempt; its error history is kept.",
		true, func(ctx context.Context, in *queue.Inspector, q, id string) (string, error) {
			if err := in.RetryTask(ctx, q, id); err != nil {
				return "", err
			}
			return fmt.Sprintf("task %s is pending again", id), nil
		})
}

func newDeleteCmd() *cobra.Command {
	return adminCmd("delete TASK_ID", "Delete a task that is not running",
		"Delete removes the task and its history. A running (active) task cannot be deleted.",
		true, func(ctx context.Context, in *queue.Inspector, q, id string) (string, error) {
			if err := in.DeleteTask(ctx, q, id); err != nil {
				return "", err
			}
			return fmt.Sprintf("task %s deleted", id), nil
		})
}

func newCancelCmd() *cobra.Command {
	return adminCmd("cancel TASK_ID", "Cancel a waiting or running task",
		`Cancel sends a pending, scheduled or retrying task to dead at once, with an
error of kind "cancelled" (kept for inspection). A running task is flagged:
its worker cancels the handler at its next lease renewal and the attempt
ends dead, kind "cancelled", without retries.`,
		true, func(ctx context.Context, in *queue.Inspector, q, id string) (string, error) {
			was, err := in.CancelTask(ctx, q, id)
			if err != nil {
				return "", err
			}
			if was == queue.StateActive {
				return fmt.Sprintf("task %s is running: cancellation requested; its worker stops it at the next lease renewal", id), nil
			}
			return fmt.Sprintf("task %s cancelled (was %s); it is dead", id, was), nil
		})
}

func newPauseCmd() *cobra.Command {
	return adminCmd("pause QUEUE", "Stop workers from taking tasks of a queue",
		"Pause stops workers from taking tasks of the queue; running tasks finish and enqueueing goes on.",
		false, func(ctx context.Context, in *queue.Inspector, _, name string) (string, error) {
			if err := in.PauseQueue(ctx, name); err != nil {
				return "", err
			}
			return fmt.Sprintf("queue %s paused", name), nil
		})
}

func newResumeCmd() *cobra.Command {
	return adminCmd("resume QUEUE", "Let workers take tasks of a paused queue again",
		"Resume undoes conq pause.",
		false, func(ctx context.Context, in *queue.Inspector, _, name string) (string, error) {
			if err := in.ResumeQueue(ctx, name); err != nil {
				return "", err
			}
			return fmt.Sprintf("queue %s resumed", name), nil
		})
}
