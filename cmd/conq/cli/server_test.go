package cli

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
)

func serverCmdRun(ctx context.Context, args ...string) (int, string) {
	var out, errb bytes.Buffer
	code := Main(ctx, args, strings.NewReader(""), &out, &errb)
	return code, out.String() + errb.String()
}

func TestServerCommandRefusesUnsafeSetups(t *testing.T) {
	t.Setenv(brokerEnv, "")
	t.Setenv(authTokenEnv, "")
	t.Setenv(basicAuthEnv, "")
	ctx := context.Background()
	for _, tc := range []struct {
		args []string
		want string
	}{
		// Refused before the broker is dialled (port 1 would fail anyway).
		{[]string{"server", "--listen", "0.0.0.0:0", "--broker", "redis://127.0.0.1:1/0"}, "refusing to listen on a non-loopback address without authentication"},
		{[]string{"server", "--listen", ":8080", "--broker", "redis://127.0.0.1:1/0"}, "--auth-token"},
		{[]string{"server", "--basic-auth", "nopassword", "--broker", "redis://127.0.0.1:1/0"}, "--basic-auth: want user:password"},
		{[]string{"server"}, "needs a shared broker"},
		{[]string{"server", "--broker", "http://x"}, "unsupported scheme"},
		{[]string{"server", "--max-flow-steps", "0", "--broker", "redis://127.0.0.1:1/0"}, "--max-flow-steps 0: must be in 1..100000"},
	} {
		code, out := serverCmdRun(ctx, tc.args...)
		if code != 2 || !strings.Contains(out, tc.want) {
			t.Errorf("conq %s: exit %d, output %q; want exit 2 mentioning %q", strings.Join(tc.args, " "), code, out, tc.want)
		}
	}
	// The token from the environment counts, and --help does not show it.
	t.Setenv(authTokenEnv, "env-token-0123456789")
	if code, out := serverCmdRun(ctx, "server", "--help"); code != 0 || strings.Contains(out, "env-token") {
		t.Errorf("server --help: exit %d, shows the token: %v", code, strings.Contains(out, "env-token"))
	}
	code, out := serverCmdRun(ctx, "server", "--listen", "0.0.0.0:0", "--broker", "redis://127.0.0.1:1/0")
	if code != 1 || strings.Contains(out, "refusing") {
		t.Errorf("public address with $%s: exit %d, %q; want the broker dial to fail (exit 1)", authTokenEnv, code, out)
	}
	t.Setenv(authTokenEnv, "")
	code, out = serverCmdRun(ctx, "server", "--listen", "0.0.0.0:0", "--auth-token", "short", "--broker", "redis://127.0.0.1:1/0")
	if code != 2 || !strings.Contains(out, "too short") {
		t.Errorf("short token: exit %d, %q", code, out)
	}
}

func TestServerCommandServes(t *testing.T) {
	url := testenv.RedisURL(t)
	prefix := testenv.UniquePrefix(t, testenv.RedisClient(t))
	t.Setenv(prefixEnv, prefix)
	t.Setenv(authTokenEnv, "")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		code int
		out  string
	}
	done := make(chan result, 1)
	go func() {
		code, out := serverCmdRun(ctx, "server", "--broker", url, "--listen", addr, "--log-level", "warn")
		done <- result{code, out}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			r := <-done
			t.Fatalf("server not healthy after 10s (last error %v); exit %d, output:\n%s", err, r.code, r.out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Post("http://"+addr+"/api/v1/tasks", "application/json", strings.NewReader(`{"kind":"k","queue":"cli"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("enqueue through conq server: status %d", resp.StatusCode)
	}
	cancel()
	select {
	case r := <-done:
		if r.code != 0 {
			t.Fatalf("conq server exit %d after cancel:\n%s", r.code, r.out)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("conq server did not stop within 10s of its context ending")
	}
}
