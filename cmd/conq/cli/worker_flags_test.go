package cli

import (
	"strings"
	"testing"
)

func TestWorkerProcessesFlag(t *testing.T) {
	for _, args := range [][]string{{"-c", "2", "-p", "3"}, {"-c", "2", "--processes", "-1"}} {
		code, _, stderr := runConq(t, "", append([]string{"worker", "--broker", "redis://127.0.0.1:1/0", "--exec", "w"}, args...)...)
		if code != 2 || !strings.Contains(stderr, "--processes must be between 1 and --concurrency") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}

func TestPipelineFlag(t *testing.T) {
	for _, args := range [][]string{
		{"worker", "--broker", "redis://127.0.0.1:1/0", "--exec", "w", "--pipeline", "-1"},
		{"worker", "--broker", "redis://127.0.0.1:1/0", "--exec", "w", "--pipeline", "2000"},
		{"server", "--exec", "w", "--pipeline", "-1"},
	} {
		code, _, stderr := runConq(t, "", args...)
		if code != 2 || !strings.Contains(stderr, "--pipeline must be between 0 and 1024") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
