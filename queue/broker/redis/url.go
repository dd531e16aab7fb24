package redis

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// ErrBadURL is wrapped by ParseURL's errors.
var ErrBadURL = errors.New("bad redis URL")

// ParseURL turns a Redis URL into client options:
//
//	redis://[user[:password]@]host[:port][/db][?option=value...]
//	rediss://...            same, over TLS (server name from host)
//	unix://[user[:password]@]/path/to/socket[?db=N&...]
//
// The port defaults to 6379 and the database to 0. Options, each checked
// against its range before any client is built:
//
//	db             0..2147483647 (also the path: redis://host/3)
//	dial_timeout   Go duration, 0 (default 5s) to 1h; bounds the TCP dial
//	               and, for rediss, the TLS handshake
//	read_timeout   Go duration, 0 (default 3s) to 1h
//	write_timeout  Go duration, 0 (default: read_timeout) to 1h
//	pool_size      1..10000 (default 10 per CPU)
//	max_retries    -1 (no retries), 0 (default, 3) or 1..100
//	skip_verify    true or false, rediss only (tests only)
//
// For rediss a server that answers in plain-text Redis instead of TLS is
// detected at once and reported as such (ErrNotTLS), instead of every dial
// waiting for a handshake that never comes.
func ParseURL(raw string) (*goredis.Options, error) {
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, password included: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w %q: %v", ErrBadURL, redactURL(raw), err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrBadURL, redactURL(raw), fmt.Sprintf(format, a...))
	}
	o := &goredis.Options{ContextTimeoutEnabled: true}
	if u.User != nil {
		o.Username = u.User.Username()
		// "redis://:pass@host" is password-only AUTH (no ACL user).
		o.Password, _ = u.User.Password()
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, bad("options: %v", err)
	}
	switch u.Scheme {
	case "redis", "rediss":
		if u.Opaque != "" {
			return nil, bad("expected %s://host[:port][/db]", u.Scheme)
		}
		host, port := u.Hostname(), u.Port()
		if host == "" {
			host = "localhost"
		}
		if port == "" {
			port = "6379"
		} else if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return nil, bad("port %q is not a number in 1..65535", port)
		}
		o.Network, o.Addr = "tcp", net.JoinHostPort(host, port)
		if p := strings.Trim(u.Path, "/"); p != "" {
			db, err := strconv.ParseInt(p, 10, 32)
			if err != nil || db < 0 {
				return nil, bad("database %q is not a number in 0..%d", p, math.MaxInt32)
			}
			o.DB = int(db)
		}
		if u.Scheme == "rediss" {
			o.TLSConfig = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		}
	case "unix":
		if u.Path == "" {
			return nil, bad("unix URL needs a socket path")
		}
		o.Network, o.Addr = "unix", u.Path
	case "":
		return nil, bad("missing scheme (want redis://, rediss:// or unix://)")
	default:
		return nil, bad("unsupported scheme %q (want redis, rediss or unix)", u.Scheme)
	}
	for name, vals := range q {
		v := vals[len(vals)-1]
		var err error
		switch name {
		case "db":
			o.DB, err = intOption(v, 0, math.MaxInt32)
		case "dial_timeout":
			o.DialTimeout, err = durationOption(v)
		case "read_timeout":
			o.ReadTimeout, err = durationOption(v)
		case "write_timeout":
			o.WriteTimeout, err = durationOption(v)
		case "pool_size":
			o.PoolSize, err = intOption(v, 1, maxPoolSize)
		case "max_retries":
			o.MaxRetries, err = intOption(v, -1, maxRetries)
		case "skip_verify":
			if o.TLSConfig == nil {
				return nil, bad("skip_verify needs rediss://")
			}
			o.TLSConfig.InsecureSkipVerify, err = strconv.ParseBool(v)
		default:
			return nil, bad("unknown option %q (known: db, dial_timeout, read_timeout, write_timeout, pool_size, max_retries, skip_verify)", name)
		}
		if err != nil {
			return nil, bad("option %s=%q: %v", name, v, err)
		}
	}
	if o.TLSConfig != nil {
		o.Dialer = tlsDialer(o)
	}
	return o, nil
}

// Ranges of the URL options.
const (
	maxPoolSize   = 10000
	maxRetries    = 100
	maxURLTimeout = time.Hour
)

func intOption(v string, lo, hi int) (int, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < int64(lo) || n > int64(hi) {
		return 0, fmt.Errorf("want a whole number in %d..%d", lo, hi)
	}
	return int(n), nil
}

func durationOption(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("want a Go duration like 5s or 500ms")
	}
	if d < 0 || d > maxURLTimeout {
		return 0, fmt.Errorf("want a duration from 0 (the default) to %v", maxURLTimeout)
	}
	return d, nil
}

// ErrNotTLS is wrapped by the dial error of a rediss:// URL whose server
// answers in plain-text Redis instead of TLS.
var ErrNotTLS = errors.New("server does not speak TLS")

// plaintextProbeAfter is how long a TLS handshake may go unanswered before
// the dialer checks whether the server is a plain-text Redis. A plain-text
// Redis never answers a ClientHello (it waits for the end of an inline
// command that never comes), so without the check every dial would wait
// for its whole timeout, five times over.
const plaintextProbeAfter = 250 * time.Millisecond

// defaultDialTimeout is go-redis's, for a URL without dial_timeout.
const defaultDialTimeout = 5 * time.Second

// tlsDialer dials TCP and runs the TLS handshake within the dial timeout.
// If the server has not answered after plaintextProbeAfter, a second
// connection sends a plain-text PING: a Redis reply there means the server
// does not speak TLS, and the dial fails at once with ErrNotTLS.
func tlsDialer(o *goredis.Options) func(ctx context.Context, network, addr string) (net.Conn, error) {
	cfg := o.TLSConfig
	// The pool redials a failed dial at once, a few times: a plain-text
	// server found moments ago is not probed again.
	type verdict struct {
		at  time.Time
		err error
	}
	var last atomic.Pointer[verdict]
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if v := last.Load(); v != nil && time.Since(v.at) < time.Second {
			return nil, v.err
		}
		timeout := o.DialTimeout
		if timeout <= 0 {
			timeout = defaultDialTimeout
		}
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		d := &net.Dialer{KeepAlive: 5 * time.Minute}
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		found := make(chan error, 1)
		probe := time.AfterFunc(plaintextProbeAfter, func() {
			if err := probePlaintext(ctx, d, network, addr); err != nil {
				found <- err
				cancel() // ends the handshake
			}
		})
		tc := tls.Client(raw, cfg)
		err = tc.HandshakeContext(ctx)
		probe.Stop()
		if err == nil {
			return tc, nil
		}
		raw.Close()
		select {
		case perr := <-found:
			last.Store(&verdict{time.Now(), perr})
			return nil, perr
		default:
		}
		var rh tls.RecordHeaderError
		if errors.As(err, &rh) && respReply(rh.RecordHeader[:]) {
			return nil, fmt.Errorf("%w: %s answered the TLS handshake in plain-text Redis (%q): use redis:// for it, or enable TLS on the server", ErrNotTLS, addr, rh.RecordHeader[:])
		}
		var cve *tls.CertificateVerificationError
		if errors.As(err, &cve) {
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		return nil, fmt.Errorf("TLS handshake with %s: %w (rediss:// needs a TLS port; a plain-text Redis is redis://)", addr, err)
	}
}

// probePlaintext sends PING in plain text on a new connection and returns
// an ErrNotTLS error if the answer is a Redis reply, else nil.
func probePlaintext(ctx context.Context, d *net.Dialer, network, addr string) error {
	c, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return nil
	}
	buf := make([]byte, 128)
	n, _ := io.ReadAtLeast(c, buf, 1)
	reply := buf[:n]
	if i := bytes.Index(reply, []byte("\r\n")); i > 0 && respReply(reply) {
		return fmt.Errorf("%w: %s is a plain-text Redis (it answered PING with %q): use redis:// for it, or enable TLS on the server", ErrNotTLS, addr, reply[:i])
	}
	return nil
}

// respReply reports whether b starts like a RESP simple reply: "+PONG",
// "-ERR ..." or "-NOAUTH ...", printable text. A TLS record starts with a
// byte below 0x20.
func respReply(b []byte) bool {
	if len(b) < 2 || (b[0] != '+' && b[0] != '-') {
		return false
	}
	for _, c := range b[1:] {
		if c == '\r' {
			break
		}
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}

// redactURL hides the password of a URL for messages.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "xxxxx" + raw[i:]
			}
		}
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	} else {
		u.User = url.User("xxxxx")
	}
	return u.String()
}
