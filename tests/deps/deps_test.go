// Package deps checks the library's module graph: a program that imports
// only the library packages must not pull the CLI's or the tests'
// dependencies (cobra, chromedp, gonum/plot, x/term).
package deps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// forbidden are modules only the CLI (cmd/conq) or the tests module need.
var forbidden = []string{
	"github.com/spf13/cobra",
	"github.com/chromedp/",
	"gonum.org/v1/plot",
	"golang.org/x/term",
}

func TestLibraryModuleGraph(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a scratch module")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/app\n\ngo 1.26.0\n\nrequire github.com/conqhq/conq v0.0.0\n\nreplace github.com/conqhq/conq => "+root+"\n")
	write("main.go", `package main

import (
	"github.com/conqhq/conq/pool"
	"github.com/conqhq/conq/procpool"
	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
	"github.com/conqhq/conq/server"
)

var (
	_ = pool.New
	_ = procpool.New
	_ = queue.NewClient
	_ = memory.New
	_ = redisbroker.Open
	_ = server.New
)

func main() {}
`)
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("go", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("mod", "tidy")
	run("build", "./...")
	mods := run("list", "-m", "all")
	for _, line := range strings.Split(mods, "\n") {
		for _, f := range forbidden {
			if strings.HasPrefix(line, f) {
				t.Errorf("a program importing only the library pulls %s (from the library's go.mod); keep it in cmd/conq/go.mod or tests/go.mod", line)
			}
		}
	}
}
