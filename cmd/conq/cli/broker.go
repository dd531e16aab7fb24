package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"

	"github.com/conqhq/conq/queue/broker"
	"github.com/conqhq/conq/queue/broker/memory"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// brokerEnv names the environment variable that gives --broker its default.
const brokerEnv = "CONQ_BROKER"

// prefixEnv names the environment variable that sets the Redis key prefix
// (default "conq"), so several applications or test runs can share a Redis.
const prefixEnv = "CONQ_BROKER_PREFIX"

// addBrokerFlag registers --broker on cmd.
func addBrokerFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "broker", "", brokerUsage)
}

const brokerUsage = "broker URL: redis://[user:pass@]host[:port][/db], rediss://... or unix:///path/redis.sock; a Redis Cluster: redis://node1:6379?addr=node2:6379; Sentinel: redis+sentinel://s1:26379?addr=s2:26379&master_name=NAME (default $" + brokerEnv + ")"

// openBroker opens the broker named by rawURL: the embedded memory broker
// when it is empty, Redis for redis:// and rediss:// (and unix:// sockets;
// a cluster when the node says so), Sentinel for redis+sentinel://.
// The caller closes it.
func openBroker(ctx context.Context, rawURL string, logger *slog.Logger) (broker.Broker, error) {
	rawURL = strings.TrimSpace(rawURL)
	if rawURL == "" {
		return memory.New(memory.Config{}), nil
	}
	if err := checkBrokerURL(rawURL); err != nil {
		return nil, err
	}
	quietRedisOnce.Do(func() { goredis.SetLogger(redisDebugLogger{}) })
	b, err := redisbroker.Open(ctx, rawURL, redisbroker.Config{Logger: logger, Prefix: os.Getenv(prefixEnv)})
	if err != nil {
		return nil, fmt.Errorf("--broker: %w", err)
	}
	return b, nil
}

// checkBrokerURL rejects URLs of schemes conq has no broker for, naming
// the ones it has. Redis URL details are checked by the Redis broker.
func checkBrokerURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	scheme := ""
	if err == nil {
		scheme = strings.ToLower(u.Scheme)
	} else if i := strings.Index(rawURL, "://"); i > 0 {
		scheme = strings.ToLower(rawURL[:i])
	}
	if !strings.Contains(rawURL, "://") {
		scheme = "" // host:port parses as scheme "host"
	}
	switch scheme {
	case "redis", "rediss", "unix", "redis+sentinel", "rediss+sentinel":
		return nil
	case "":
		return usageError("--broker %q has no scheme: want redis://host[:port][/db], rediss://... or unix:///path/redis.sock (or no --broker for the embedded broker)", redactedURL(rawURL))
	default:
		return usageError("--broker %q: unsupported scheme %q: want redis://, rediss://, unix:// or redis+sentinel:// (or no --broker for the embedded broker)", redactedURL(rawURL), scheme)
	}
}

// redactedURL hides a URL's password for messages.
func redactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// errNeedSharedBroker is the reason commands that talk to other processes
// refuse the embedded broker.
func errNeedSharedBroker(cmd string) error {
	return usageError("conq %s needs a shared broker: the embedded broker lives inside one process, so no other process could see its tasks; pass --broker redis://host:6379/0 (or set $%s)", cmd, brokerEnv)
}

// openSharedBroker is openBroker for commands that only make sense with a
// broker other processes can reach: an empty URL means $CONQ_BROKER, and
// with neither it refuses.
func openSharedBroker(ctx context.Context, cmd, rawURL string, logger *slog.Logger) (broker.Broker, error) {
	if sharedBrokerForTest != nil {
		return unclosed{sharedBrokerForTest}, nil
	}
	if strings.TrimSpace(rawURL) == "" {
		rawURL = envBroker()
	}
	if strings.TrimSpace(rawURL) == "" {
		return nil, errNeedSharedBroker(cmd)
	}
	b, err := openBroker(ctx, rawURL, logger)
	if err != nil {
		var ee *ExitError
		if errors.As(err, &ee) {
			return nil, err
		}
		if errors.Is(err, redisbroker.ErrBadURL) {
			return nil, &ExitError{Code: 2, Err: err}
		}
		return nil, &ExitError{Code: 1, Err: err}
	}
	return b, nil
}

// sharedBrokerForTest, when a test sets it, is the broker every command
// opens instead of --broker's: an in-process memory broker that a test's
// commands and workers share as they would share a Redis (for features
// the Redis broker lacks). Never set outside tests.
var sharedBrokerForTest broker.Broker

// unclosed keeps a command's deferred Close from closing the shared test
// broker.
type unclosed struct{ broker.Broker }

func (unclosed) Close() error { return nil }

// usageError is an error in the command line: exit status 2.
func usageError(format string, args ...any) error {
	return &ExitError{Code: 2, Err: fmt.Errorf(format, args...)}
}

// failure is an error of the operation itself: exit status 1.
func failure(err error) error {
	var ee *ExitError
	if err == nil || errors.As(err, &ee) {
		return err
	}
	return &ExitError{Code: 1, Err: err}
}

// quietLogger is the logger of commands that talk to a broker briefly:
// warnings and errors only, to stderr.
func quietLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// envBroker is the broker URL from the environment.
func envBroker() string { return os.Getenv(brokerEnv) }

var quietRedisOnce sync.Once

// redisDebugLogger sends go-redis's own log lines (each failed dial, for
// instance) to slog at debug level: the commands report failures in their
// errors, so they would only repeat them on stderr.
type redisDebugLogger struct{}

func (redisDebugLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().DebugContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}
