package redis

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
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
// The port defaults to 6379 and the database to 0. Options:
// dial_timeout, read_timeout, write_timeout (Go durations), pool_size,
// max_retries, db, and for rediss skip_verify=true (tests only).
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
	q := u.Query()
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
			db, err := strconv.Atoi(p)
			if err != nil || db < 0 {
				return nil, bad("database %q is not a non-negative number", p)
			}
			o.DB = db
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
			o.DB, err = strconv.Atoi(v)
			if err == nil && o.DB < 0 {
				err = errors.New("negative")
			}
		case "dial_timeout":
			o.DialTimeout, err = time.ParseDuration(v)
		case "read_timeout":
			o.ReadTimeout, err = time.ParseDuration(v)
		case "write_timeout":
			o.WriteTimeout, err = time.ParseDuration(v)
		case "pool_size":
			o.PoolSize, err = strconv.Atoi(v)
		case "max_retries":
			o.MaxRetries, err = strconv.Atoi(v)
		case "skip_verify":
			if o.TLSConfig == nil {
				return nil, bad("skip_verify needs rediss://")
			}
			o.TLSConfig.InsecureSkipVerify, err = strconv.ParseBool(v)
		default:
			return nil, bad("unknown option %q", name)
		}
		if err != nil {
			return nil, bad("option %s=%q: %v", name, v, err)
		}
	}
	return o, nil
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
