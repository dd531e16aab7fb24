// Command conq runs work in parallel: in-process pools, process pools and a
// distributed task queue. See `conq --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/conqhq/conq/cmd/conq/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
