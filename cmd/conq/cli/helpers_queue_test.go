package cli

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
)

// queueTestRedis returns the private test Redis URL and gives the test its
// own key prefix (through $CONQ_BROKER_PREFIX, so the test must not be
// parallel), deleted when it ends. Without CONQ_TEST_REDIS_URL it skips, or
// fails under CI / CONQ_REQUIRE_SERVERS.
func queueTestRedis(t *testing.T) (url, prefix string) {
	t.Helper()
	url = testenv.RedisURL(t)
	prefix = testenv.UniquePrefix(t, testenv.RedisClient(t))
	t.Setenv(prefixEnv, prefix)
	t.Setenv(brokerEnv, "")
	return url, prefix
}

// queueRunResult is the outcome of one in-process conq run.
type queueRunResult struct {
	code           int
	stdout, stderr string
}

// queueRun runs the conq command line in-process.
func queueRun(t *testing.T, ctx context.Context, stdin string, args ...string) queueRunResult {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(ctx, args, strings.NewReader(stdin), &out, &errb)
	return queueRunResult{code: code, stdout: out.String(), stderr: errb.String()}
}

// queueMust runs conq and fails the test unless it exits 0.
func queueMust(t *testing.T, ctx context.Context, stdin string, args ...string) string {
	t.Helper()
	r := queueRun(t, ctx, stdin, args...)
	if r.code != 0 {
		t.Fatalf("conq %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// queuePythonWorker writes a Python worker module using the SDK and
// returns its command line.
func queuePythonWorker(t *testing.T, src string) string {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		testenv.Need(t, "python3 not found", "install it (apt-get install -y python3)")
	}
	sdk, err := filepath.Abs("../../../sdk/python")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "tasks.py")
	full := "import sys\nsys.path.insert(0, " + queuePyQuote(sdk) + ")\nimport conq\n" + src + "\nif __name__ == '__main__':\n    conq.run()\n"
	if err := os.WriteFile(file, []byte(full), 0o600); err != nil {
		t.Fatal(err)
	}
	return py + " " + file
}

func queuePyQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `\'`) + "'" }

func queueCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
