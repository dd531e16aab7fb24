package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"go.uber.org/goleak"
)

// A few small numbers, so that the tests take no time: primes 2, 97,
// 1000003 and 999999937 (the largest prime below 10^9), and non-primes.
const primesTestNumbers = "2,4,97,100,1000003,999999937,999999999"

var primesTestWant = map[string]bool{
	"2": true, "4": false, "97": true, "100": false, "1000003": true, "999999937": true, "999999999": false,
}

func primesCLI(t *testing.T, ctx context.Context, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	var out, errb bytes.Buffer
	code = Main(ctx, append([]string{"primes"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

var checkLine = regexp.MustCompile(`^ *(\d+)  ([P ]) +\d+\.\d{6}s$`)

// parseCheckLines returns the numbers of the check lines in order and
// fails on a line that does not look like procs.py's.
func parseCheckLines(t *testing.T, lines []string) []string {
	t.Helper()
	var ns []string
	for _, l := range lines {
		m := checkLine.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %q is not like procs.py's", l)
		}
		if len(l) != len("9999999999999999  P  0.000001s") {
			t.Errorf("line %q: width %d, want the book's f'{n:16}  {label} {elapsed:9.6f}s'", l, len(l))
		}
		if want := primesTestWant[m[1]]; (m[2] == "P") != want {
			t.Errorf("line %q: prime should be %v", l, want)
		}
		ns = append(ns, m[1])
	}
	return ns
}

func TestPrimesPoolText(t *testing.T) {
	code, out, errOut := primesCLI(t, context.Background(), "--mode", "pool", "--workers", "3", "--numbers", primesTestNumbers)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if errOut != "" {
		t.Errorf("stderr is not a terminal, yet got %q", errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "Checking 7 numbers with 3 workers (pool):" {
		t.Errorf("header %q", lines[0])
	}
	if !regexp.MustCompile(`^7 checks in \d+\.\d\ds with 3 workers$`).MatchString(lines[len(lines)-1]) {
		t.Errorf("footer %q", lines[len(lines)-1])
	}
	got := parseCheckLines(t, lines[1:len(lines)-1])
	slices.Sort(got)
	want := strings.Split(primesTestNumbers, ",")
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("checked %v, want each of %v once", got, want)
	}
}

func TestPrimesSeqText(t *testing.T) {
	code, out, errOut := primesCLI(t, context.Background(), "--mode", "seq", "--numbers", primesTestNumbers)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != "Checking 7 numbers sequentially:" {
		t.Errorf("header %q", lines[0])
	}
	if !regexp.MustCompile(`^7 checks in \d+\.\d\ds with 1 worker$`).MatchString(lines[len(lines)-1]) {
		t.Errorf("footer %q", lines[len(lines)-1])
	}
	// Sequential: input order.
	if got := parseCheckLines(t, lines[1:len(lines)-1]); !slices.Equal(got, strings.Split(primesTestNumbers, ",")) {
		t.Errorf("order %v", got)
	}
}

func TestPrimesBookNumbers(t *testing.T) {
	if testing.Short() {
		t.Skip("checks the book's twenty 16-digit numbers")
	}
	code, out, errOut := primesCLI(t, context.Background(), "--workers", "2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if n := strings.Count(out, "  P "); n != 9 {
		t.Errorf("%d primes among the book's numbers, want 9:\n%s", n, out)
	}
	if !strings.Contains(out, "\n20 checks in ") {
		t.Errorf("output:\n%s", out)
	}
}

func TestPrimesJSON(t *testing.T) {
	for _, mode := range []string{"pool", "seq"} {
		code, out, errOut := primesCLI(t, context.Background(), "--mode", mode, "--workers", "1", "--json", "--numbers", primesTestNumbers)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var got struct {
			Mode    string   `json:"mode"`
			Workers *int     `json:"workers"`
			TotalS  *float64 `json:"total_s"`
			Checks  []struct {
				N        *uint64  `json:"n"`
				Prime    *bool    `json:"prime"`
				ElapsedS *float64 `json:"elapsed_s"`
			} `json:"checks"`
		}
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&got); err != nil {
			t.Fatalf("%s: %v in %s", mode, err, out)
		}
		if dec.More() {
			t.Errorf("%s: more than one JSON value", mode)
		}
		if got.Mode != mode || got.Workers == nil || *got.Workers != 1 || got.TotalS == nil || *got.TotalS <= 0 || len(got.Checks) != 7 {
			t.Fatalf("%s: %s", mode, out)
		}
		for _, c := range got.Checks {
			if c.N == nil || c.Prime == nil || c.ElapsedS == nil || *c.ElapsedS < 0 {
				t.Fatalf("%s: incomplete check in %s", mode, out)
			}
			if want := primesTestWant[strconvU(*c.N)]; *c.Prime != want {
				t.Errorf("%s: %d prime %v, want %v", mode, *c.N, *c.Prime, want)
			}
		}
	}
}

func strconvU(n uint64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestPrimesFlagErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--workers", "0"}, "--workers"},
		{[]string{"--workers", "-2"}, "--workers"},
		{[]string{"--mode", "bogus"}, `--mode "bogus"`},
		{[]string{"--sweep", "5..2"}, "--sweep"},
		{[]string{"--sweep", "0..2"}, "--sweep"},
		{[]string{"--sweep", "1-4"}, "--sweep"},
		{[]string{"--sweep", "1..3", "--plot", filepath.Join(dir, "x.txt")}, "--plot"},
		{[]string{"--plot", filepath.Join(dir, "x.svg")}, "--plot needs --sweep"},
		{[]string{"--mode", "seq", "--sweep", "1..2"}, "--sweep"},
		{[]string{"--mode", "seq", "--workers", "4"}, "--workers"},
		{[]string{"--numbers", "2,x"}, "--numbers"},
		{[]string{"--numbers", "-5"}, "--numbers"},
		{[]string{"extra"}, "unknown command"},
	} {
		code, out, errOut := primesCLI(t, context.Background(), tc.args...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (usage); output %q", tc.args, code, out)
			continue
		}
		if !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q does not mention %q", tc.args, code, errOut, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Error("a rejected --plot file was written")
	}
}

func TestPrimesSweep(t *testing.T) {
	code, out, errOut := primesCLI(t, context.Background(), "--sweep", "1..3", "--numbers", primesTestNumbers)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 5 || lines[0] != "Checking 7 numbers with 1 to 3 workers (pool):" {
		t.Fatalf("output:\n%s", out)
	}
	row := regexp.MustCompile(`^ +(\d)  +\d+\.\d\ds  +\d+\.\d\dx$`)
	for i, l := range lines[2:] {
		m := row.FindStringSubmatch(l)
		if m == nil || m[1] != string(rune('1'+i)) {
			t.Errorf("row %q", l)
		}
	}
}

func TestPrimesSweepJSON(t *testing.T) {
	code, out, errOut := primesCLI(t, context.Background(), "--sweep", "2..3", "--json", "--numbers", primesTestNumbers)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var got struct {
		Mode  string `json:"mode"`
		Sweep []struct {
			Workers int     `json:"workers"`
			TotalS  float64 `json:"total_s"`
			Speedup float64 `json:"speedup"`
		} `json:"sweep"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v in %s", err, out)
	}
	if got.Mode != "pool" || len(got.Sweep) != 2 || got.Sweep[0].Workers != 2 || got.Sweep[1].Workers != 3 || got.Sweep[0].Speedup != 1 || got.Sweep[1].TotalS <= 0 {
		t.Errorf("output: %s", out)
	}
}

func TestPrimesPlot(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"sweep.svg", "sweep.PNG"} {
		file := filepath.Join(dir, name)
		code, out, errOut := primesCLI(t, context.Background(), "--sweep", "1..2", "--plot", file, "--numbers", primesTestNumbers)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.Contains(out, "plot written to "+file) {
			t.Errorf("output:\n%s", out)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		switch filepath.Ext(name) {
		case ".svg":
			if !bytes.Contains(b, []byte("<svg")) {
				t.Errorf("%s is not an SVG", name)
			}
		default:
			if !bytes.HasPrefix(b, []byte("\x89PNG")) {
				t.Errorf("%s is not a PNG", name)
			}
		}
	}
}

func TestPrimesModeRegistry(t *testing.T) {
	// A mode registered from elsewhere gets the shared flags and printing.
	var gotWorkers int
	registerPrimesMode("test-reverse", primesMode{
		Summary: "test only",
		Run: func(ctx context.Context, workers int, numbers []uint64, report func(primeCheck)) error {
			gotWorkers = workers
			for _, n := range slices.Backward(numbers) {
				report(checkPrime(n))
			}
			return nil
		},
	})
	defer delete(primesModes, "test-reverse")
	code, out, errOut := primesCLI(t, context.Background(), "--mode", "test-reverse", "--workers", "5", "--numbers", "2,4")
	if code != 0 || gotWorkers != 5 {
		t.Fatalf("exit %d, workers %d: %s", code, gotWorkers, errOut)
	}
	if !strings.Contains(out, "               4     ") || strings.Index(out, "   4  ") > strings.Index(out, "   2  P") {
		t.Errorf("output not in report order:\n%s", out)
	}
	defer func() {
		if recover() == nil {
			t.Error("registering a mode twice did not panic")
		}
	}()
	registerPrimesMode("test-reverse", primesMode{})
}

func TestPrimesModeSetup(t *testing.T) {
	var seen any
	registerPrimesMode("test-flags", primesMode{
		Setup: func(cmd *cobra.Command) func(string) (primesRunner, error) {
			level := cmd.Flags().Int("test-level", 0, "a mode's own flag")
			return func(mode string) (primesRunner, error) {
				if mode != "test-flags" {
					if cmd.Flags().Changed("test-level") {
						return nil, primesUsage("--test-level is only for --mode test-flags")
					}
					return nil, nil
				}
				return func(ctx context.Context, _ int, numbers []uint64, report func(primeCheck)) error {
					seen = *level
					return runPrimesSeq(ctx, 1, numbers, report)
				}, nil
			}
		},
		Run: runPrimesSeq,
	})
	defer delete(primesModes, "test-flags")
	if code, _, errOut := primesCLI(t, context.Background(), "--mode", "test-flags", "--test-level", "7", "--numbers", "2"); code != 0 || seen != 7 {
		t.Errorf("exit %d, flag value %v: %s", code, seen, errOut)
	}
	if code, _, errOut := primesCLI(t, context.Background(), "--mode", "seq", "--test-level", "7", "--numbers", "2"); code != 2 || !strings.Contains(errOut, "--test-level") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestPrimesModeFailure(t *testing.T) {
	registerPrimesMode("test-fail", primesMode{
		Run: func(context.Context, int, []uint64, func(primeCheck)) error { return errors.New("workers exploded") },
	})
	defer delete(primesModes, "test-fail")
	code, _, errOut := primesCLI(t, context.Background(), "--mode", "test-fail", "--numbers", "2")
	if code != 1 || !strings.Contains(errOut, "workers exploded") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	registerPrimesMode("test-short", primesMode{
		Run: func(context.Context, int, []uint64, func(primeCheck)) error { return nil },
	})
	defer delete(primesModes, "test-short")
	code, _, errOut = primesCLI(t, context.Background(), "--mode", "test-short", "--numbers", "2")
	if code != 1 || !strings.Contains(errOut, "0 of 1 numbers reported") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestPrimesInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, mode := range []string{"pool", "seq"} {
		code, _, errOut := primesCLI(t, ctx, "--mode", mode, "--numbers", primesTestNumbers)
		if code != 130 || !strings.Contains(errOut, "canceled") {
			t.Errorf("%s: exit %d, stderr %q; want 130", mode, code, errOut)
		}
	}
}
