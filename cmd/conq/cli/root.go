// Package cli implements the conq command line. cmd/conq is a thin wrapper
// around Main so that the commands can be tested in-process and embedded.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// commandFactories holds one constructor per top-level command; each command
// file registers its own in an init function so the files stay independent.
var commandFactories []func() *cobra.Command

func addCommand(f func() *cobra.Command) { commandFactories = append(commandFactories, f) }

// NewRootCommand builds a fresh command tree.
func NewRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "conq",
		Short:         "Run work in parallel: goroutine pools, process pools, a distributed task queue",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	for _, f := range commandFactories {
		root.AddCommand(f())
	}
	return root
}

// ExitError carries a specific exit status out of a command.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Main runs conq with args and returns the process exit status.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	root := NewRootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintln(stderr, "conq:", ee.Err)
		}
		return ee.Code
	}
	fmt.Fprintln(stderr, "conq:", err)
	return 2
}
