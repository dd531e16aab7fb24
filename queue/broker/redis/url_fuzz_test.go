package redis

import (
	"errors"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// FuzzParseURL: any broker URL parses into options in range, from which a
// client is built without a panic (pool_size=-5 used to panic in
// go-redis), or fails with ErrBadURL; the password never shows in the
// error.
func FuzzParseURL(f *testing.F) {
	for _, s := range []string{
		"localhost", "h:6380/3", "[::1]:7000/0", "h/0?db=5&pool_size=7&max_retries=-1", "h/0?pool_size=-5", "h/0?max_retries=-5",
		"h/0?dial_timeout=-1s&read_timeout=2s&write_timeout=500ms", "h/0?db=%zz", "h:bad", "h/0?skip_verify=true", "h/-1",
	} {
		f.Add("redis", s)
		f.Add("rediss", s)
	}
	f.Add("unix", "/run/redis.sock?db=4")
	f.Add("ftp", "h")
	const secret = "S3cretPassw0rd"
	f.Fuzz(func(t *testing.T, scheme, rest string) {
		raw := scheme + "://user:" + secret + "@" + rest
		o, err := ParseURL(raw)
		if err != nil {
			if !errors.Is(err, ErrBadURL) {
				t.Fatalf("%q: error %v is not ErrBadURL", raw, err)
			}
			if strings.Contains(err.Error(), secret) && !strings.Contains(rest, secret) {
				t.Fatalf("%q: error leaks the password: %v", raw, err)
			}
			return
		}
		if o.PoolSize < 0 || o.PoolSize > maxPoolSize || o.MaxRetries < -1 || o.MaxRetries > maxRetries || o.DB < 0 ||
			o.DialTimeout < 0 || o.ReadTimeout < 0 || o.WriteTimeout < 0 || o.DialTimeout > time.Hour {
			t.Fatalf("%q: options out of range: %+v", raw, o)
		}
		goredis.NewClient(o).Close()
	})
}
