package redis

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"

	goredis "github.com/redis/go-redis/v9"
)

// Target is what a broker URL names: one Redis server, the seed nodes of a
// Redis Cluster, or a primary watched by Redis Sentinel. The URL forms
// beyond ParseURL's:
//
//	redis://host:port?addr=host2:port2&addr=host3:port3
//	    more addresses of the same deployment (go-redis ParseClusterURL
//	    convention): Open asks the first that answers whether it is a
//	    cluster node, and uses all of them as cluster seeds. Several
//	    addresses that are not a cluster are an error.
//	redis+sentinel://[user:pass@]s1:26379[/db]?addr=s2:26379&master_name=NAME
//	    the primary that the sentinels s1, s2... call NAME, followed
//	    through failovers (go-redis's failover client). The user and
//	    password are the data nodes'; sentinel_username and
//	    sentinel_password authenticate to the sentinels. master_name is
//	    required. rediss+sentinel:// is the same over TLS.
//
// Every other option is ParseURL's and applies to every node.
type Target struct {
	// Options are the client options of the first address, as ParseURL
	// builds them; for Sentinel, those of the data nodes (Addr is a
	// sentinel's).
	Options *goredis.Options
	// Addrs are every address named: the URL's host, then each addr=.
	Addrs []string
	// Sentinel is set for redis+sentinel:// and rediss+sentinel:// URLs;
	// Addrs are then the sentinels'.
	Sentinel bool
	// MasterName is the primary's name at the sentinels.
	MasterName string
	// SentinelUsername and SentinelPassword authenticate to the sentinels.
	SentinelUsername, SentinelPassword string
}

// ParseTarget parses a broker URL of any form Open accepts: ParseURL's, and
// the cluster and Sentinel forms of Target. Its errors wrap ErrBadURL and
// never show the password.
func ParseTarget(raw string) (Target, error) {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w %q: %s", ErrBadURL, redactURL(raw), fmt.Sprintf(format, a...))
	}
	u, err := url.Parse(raw)
	if err != nil {
		// ParseURL words the error (without the password).
		_, perr := ParseURL(raw)
		if perr == nil {
			perr = bad("%v", err)
		}
		return Target{}, perr
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return Target{}, bad("options: %v", err)
	}
	var t Target
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "redis+sentinel", "rediss+sentinel":
		t.Sentinel = true
		u.Scheme = strings.TrimSuffix(scheme, "+sentinel")
		t.MasterName = last(q, "master_name")
		if t.MasterName == "" {
			return Target{}, bad("a sentinel URL needs master_name=NAME (the name the sentinels monitor)")
		}
		t.SentinelUsername, t.SentinelPassword = last(q, "sentinel_username"), last(q, "sentinel_password")
		if u.Port() == "" {
			// A sentinel's port, not a data node's.
			u.Host = net.JoinHostPort(hostOr(u.Hostname()), "26379")
		}
	default:
		for _, k := range []string{"master_name", "sentinel_username", "sentinel_password"} {
			if q.Has(k) {
				return Target{}, bad("option %s needs a redis+sentinel:// URL", k)
			}
		}
	}
	extra := q["addr"]
	for _, k := range []string{"addr", "master_name", "sentinel_username", "sentinel_password"} {
		q.Del(k)
	}
	if len(extra) > 0 && scheme == "unix" {
		return Target{}, bad("addr= needs redis:// or rediss:// (a unix socket is one server)")
	}
	u.RawQuery = q.Encode()
	opts, err := ParseURL(u.String())
	if err != nil {
		// Reworded with the URL as the caller wrote it.
		return Target{}, rewordURLError(err, raw, u.String())
	}
	t.Options = opts
	t.Addrs = append(t.Addrs, opts.Addr)
	for _, a := range extra {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return Target{}, bad("addr=%q is not host:port", a)
		}
		if p, err := strconv.Atoi(port); err != nil || p <= 0 || p > 65535 {
			return Target{}, bad("addr=%q: port %q is not a number in 1..65535", a, port)
		}
		t.Addrs = append(t.Addrs, net.JoinHostPort(hostOr(host), port))
	}
	return t, nil
}

func last(q url.Values, k string) string {
	vs := q[k]
	if len(vs) == 0 {
		return ""
	}
	return vs[len(vs)-1]
}

func hostOr(h string) string {
	if h == "" {
		return "localhost"
	}
	return h
}

// rewordURLError replaces the rewritten URL in a ParseURL error by the
// caller's (both redacted).
func rewordURLError(err error, raw, rewritten string) error {
	msg := err.Error()
	msg = strings.Replace(msg, strconv.Quote(redactURL(rewritten)), strconv.Quote(redactURL(raw)), 1)
	if !errors.Is(err, ErrBadURL) {
		return err
	}
	return fmt.Errorf("%w%s", ErrBadURL, strings.TrimPrefix(msg, ErrBadURL.Error()))
}

// failoverOptions are the go-redis failover client options of a Sentinel
// target.
func (t Target) failoverOptions() *goredis.FailoverOptions {
	o := t.Options
	return &goredis.FailoverOptions{
		MasterName:            t.MasterName,
		SentinelAddrs:         t.Addrs,
		SentinelUsername:      t.SentinelUsername,
		SentinelPassword:      t.SentinelPassword,
		Username:              o.Username,
		Password:              o.Password,
		DB:                    o.DB,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		PoolSize:              o.PoolSize,
		MaxRetries:            o.MaxRetries,
		TLSConfig:             o.TLSConfig,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,
	}
}

// clusterOptions are the go-redis cluster client options of a target whose
// nodes are a cluster.
func (t Target) clusterOptions() *goredis.ClusterOptions {
	o := t.Options
	tlsConf := o.TLSConfig
	if tlsConf != nil {
		// Each node is verified under its own host name.
		tlsConf = tlsConf.Clone()
		tlsConf.ServerName = ""
	}
	return &goredis.ClusterOptions{
		Addrs:                 t.Addrs,
		Username:              o.Username,
		Password:              o.Password,
		DialTimeout:           o.DialTimeout,
		ReadTimeout:           o.ReadTimeout,
		WriteTimeout:          o.WriteTimeout,
		PoolSize:              o.PoolSize,
		MaxRetries:            o.MaxRetries,
		TLSConfig:             tlsConf,
		ContextTimeoutEnabled: o.ContextTimeoutEnabled,
		// go-redis reloads the slot map every 60 s by default; after a
		// failover the broker asks for a reload itself (cluster.go), and
		// this bounds how stale a map can get without errors.
		ClusterStateReloadInterval: clusterReloadInterval,
	}
}
