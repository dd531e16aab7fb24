package cli

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.uber.org/goleak"
)

// buildConq builds cmd/conq into a temporary directory: under `go test`
// os.Executable is the test binary, so the proc mode's default Go worker
// needs the real conq.
func buildConq(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "conq")
	if out, err := exec.Command("go", "build", "-o", bin, "..").CombinedOutput(); err != nil {
		t.Fatalf("building conq: %v\n%s", err, out)
	}
	return bin
}

func checkPrimesOutput(t *testing.T, stdout string) {
	t.Helper()
	want := map[string]string{"2": "P", "9": "", "97": "P", "142702110479723": "P", "4444444444444444": ""}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 2+len(want) {
		t.Fatalf("output:\n%s", stdout)
	}
	for _, l := range lines[1 : len(lines)-1] {
		f := strings.Fields(l)
		label, ok := want[f[0]]
		if !ok || (label == "P") != (len(f) == 3 && f[1] == "P") {
			t.Errorf("line %q", l)
		}
		delete(want, f[0])
	}
	if !strings.Contains(lines[len(lines)-1], "5 checks in") {
		t.Errorf("last line %q", lines[len(lines)-1])
	}
}

func TestPrimesProcGoWorker(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), ignoreSpawner)
	t.Setenv(primesWorkerEnv, buildConq(t)+" "+internalWorkerCmd+" primes")
	code, stdout, stderr := runConq(t, "", "primes", "--mode", "proc", "--workers", "2", "--numbers", "2,9,97,142702110479723,4444444444444444")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkPrimesOutput(t, stdout)
}

func TestPrimesProcPythonWorker(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(), ignoreSpawner)
	cmd := pythonWorkerCmd(t, "") // skips without python3; the example imports the SDK itself
	py := strings.Fields(cmd)[0]
	example, _ := filepath.Abs("../../../sdk/python/examples/primes_worker.py")
	code, stdout, stderr := runConq(t, "", "primes", "--mode", "proc", "--workers", "2",
		"--worker-cmd", py+" "+example, "--numbers", "2,9,97,142702110479723,4444444444444444")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	checkPrimesOutput(t, stdout)
}

func TestPrimesProcBadWorker(t *testing.T) {
	code, _, stderr := runConq(t, "", "primes", "--mode", "proc", "--workers", "1", "--worker-cmd", "/nonexistent/worker", "--numbers", "7")
	if code == 0 || !strings.Contains(stderr, "failed to start") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

func TestPrimesProcWorkerCommand(t *testing.T) {
	cmd := &cobra.Command{}
	prepare := setupPrimesProc(cmd)
	if err := cmd.Flags().Parse([]string{"--worker-cmd", "python3 'my worker.py'"}); err != nil {
		t.Fatal(err)
	}
	if _, err := prepare("pool"); err == nil || !strings.Contains(err.Error(), "--worker-cmd is only for --mode proc") {
		t.Fatalf("--worker-cmd with --mode pool: %v", err)
	}
	if run, err := prepare("proc"); err != nil || run == nil {
		t.Fatalf("prepare(proc) = %v, %v; want a runner bound to --worker-cmd", run != nil, err)
	}
	argv, err := primesWorkerCommand(cmd.Flags().Lookup("worker-cmd").Value.String())
	if err != nil || len(argv) != 2 || argv[1] != "my worker.py" {
		t.Fatalf("argv = %q, %v", argv, err)
	}
	t.Setenv(primesWorkerEnv, "")
	argv, err = primesWorkerCommand("")
	if err != nil || len(argv) != 3 || argv[1] != internalWorkerCmd || argv[2] != "primes" {
		t.Fatalf("default argv = %q, %v", argv, err)
	}
}
