package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

func TestParseURL(t *testing.T) {
	for _, c := range []struct {
		url                       string
		network, addr, user, pass string
		db                        int
		tls                       bool
	}{
		{url: "redis://localhost", network: "tcp", addr: "localhost:6379"},
		{url: "redis://user:p%40ss@example.com:6380/3", network: "tcp", addr: "example.com:6380", user: "user", pass: "p@ss", db: 3},
		{url: "redis://:secret@10.0.0.1/2", network: "tcp", addr: "10.0.0.1:6379", pass: "secret", db: 2},
		{url: "redis://[::1]:7000/0", network: "tcp", addr: "[::1]:7000"},
		{url: "redis://h?db=5", network: "tcp", addr: "h:6379", db: 5},
		{url: "rediss://u:p@cache.example.com:6390/1", network: "tcp", addr: "cache.example.com:6390", user: "u", pass: "p", db: 1, tls: true},
		{url: "unix:///run/redis.sock?db=4", network: "unix", addr: "/run/redis.sock", db: 4},
	} {
		o, err := ParseURL(c.url)
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", c.url, err)
		}
		if o.Network != c.network || o.Addr != c.addr || o.Username != c.user || o.Password != c.pass || o.DB != c.db || (o.TLSConfig != nil) != c.tls {
			t.Fatalf("ParseURL(%q) = network %s addr %s user %q pass %q db %d tls %v", c.url, o.Network, o.Addr, o.Username, o.Password, o.DB, o.TLSConfig != nil)
		}
		if c.tls && (o.TLSConfig.ServerName != "cache.example.com" || o.TLSConfig.InsecureSkipVerify) {
			t.Fatalf("TLS config %+v", o.TLSConfig)
		}
		if !o.ContextTimeoutEnabled {
			t.Fatal("ContextTimeoutEnabled is off")
		}
	}

	o, err := ParseURL("rediss://h/0?skip_verify=true&dial_timeout=2s&read_timeout=1s&write_timeout=500ms&pool_size=7&max_retries=2")
	if err != nil {
		t.Fatal(err)
	}
	if !o.TLSConfig.InsecureSkipVerify || o.DialTimeout != 2*time.Second || o.ReadTimeout != time.Second ||
		o.WriteTimeout != 500*time.Millisecond || o.PoolSize != 7 || o.MaxRetries != 2 {
		t.Fatalf("options not applied: %+v", o)
	}
}

func TestParseURLErrors(t *testing.T) {
	for _, c := range []struct{ url, want string }{
		{"http://localhost:6379", "unsupported scheme"},
		{"localhost:6379", "unsupported scheme"},
		{"//localhost", "missing scheme"},
		{"redis://localhost/abc", "database"},
		{"redis://localhost/-1", "database"},
		{"redis://localhost:99999", "port"},
		{"redis://localhost:0", "port"},
		{"redis://localhost/0?db=x", "option db"},
		{"redis://localhost/0?pool_size=x", "option pool_size"},
		{"redis://localhost/0?dial_timeout=5", "option dial_timeout"},
		{"redis://localhost/0?bogus=1", "unknown option"},
		{"redis://localhost/0?skip_verify=true", "needs rediss"},
		{"unix://", "socket path"},
		// Ranges (issue 8 repros: pool_size=-5 panicked in go-redis,
		// max_retries=-5 broke every command, dial_timeout=-1s reported an
		// i/o timeout).
		{"redis://localhost/0?pool_size=-5", "option pool_size=\"-5\": want a whole number in 1..10000"},
		{"redis://localhost/0?pool_size=0", "in 1..10000"},
		{"redis://localhost/0?pool_size=100000000000", "in 1..10000"},
		{"redis://localhost/0?max_retries=-5", "option max_retries=\"-5\": want a whole number in -1..100"},
		{"redis://localhost/0?max_retries=101", "in -1..100"},
		{"redis://localhost/0?dial_timeout=-1s", "option dial_timeout=\"-1s\": want a duration from 0"},
		{"redis://localhost/0?read_timeout=2h", "option read_timeout"},
		{"redis://localhost/0?write_timeout=-1ns", "option write_timeout"},
		{"redis://localhost/0?db=-1", "option db"},
		{"redis://localhost/0?db=4294967296", "option db"},
		{"redis://localhost/4294967296", "database"},
		{"redis://localhost/0?db=%zz", "options"},
		{"rediss://localhost/0?skip_verify=maybe", "option skip_verify"},
		{"redis://user:hunter2@host:bad", "bad redis URL"},
	} {
		_, err := ParseURL(c.url)
		if err == nil {
			t.Fatalf("ParseURL(%q) succeeded", c.url)
		}
		if !errors.Is(err, ErrBadURL) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("ParseURL(%q) = %v, want ErrBadURL mentioning %q", c.url, err, c.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("error leaks the password: %v", err)
		}
	}
}

// Every URL ParseURL accepts builds a client without a panic, with
// options in range.
func TestParseURLBounds(t *testing.T) {
	for _, u := range []string{
		"redis://h/0?pool_size=1&max_retries=-1&dial_timeout=0s&read_timeout=1h&write_timeout=0",
		"redis://h/2147483647?pool_size=10000&max_retries=100",
		"rediss://h/0?skip_verify=false&dial_timeout=1ms",
	} {
		o, err := ParseURL(u)
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", u, err)
		}
		goredis.NewClient(o).Close()
	}
}

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"redis://u:secret@h:1/0": "redis://u:xxxxx@h:1/0",
		"redis://:secret@h/0":    "redis://:xxxxx@h/0",
		"redis://h/0":            "redis://h/0",
	} {
		if got := redactURL(in); got != want {
			t.Fatalf("redactURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if _, err := New(Config{}); err == nil {
		t.Fatal("New without a client succeeded")
	}
}
