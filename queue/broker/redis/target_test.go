package redis_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

func TestParseTarget(t *testing.T) {
	for _, c := range []struct {
		url        string
		addrs      []string
		sentinel   bool
		master, pw string
		db         int
	}{
		{url: "redis://h:1", addrs: []string{"h:1"}},
		{url: "redis://h:1?addr=h2:2&addr=h3:3", addrs: []string{"h:1", "h2:2", "h3:3"}},
		{url: "redis://:pw@h:1/0?addr=h2:2&dial_timeout=2s", addrs: []string{"h:1", "h2:2"}, pw: "pw"},
		{url: "rediss://h:1?addr=h2:2", addrs: []string{"h:1", "h2:2"}},
		{url: "redis+sentinel://s1:26379?addr=s2:26380&master_name=mymaster", addrs: []string{"s1:26379", "s2:26380"}, sentinel: true, master: "mymaster"},
		{url: "redis+sentinel://:secret@s1/3?master_name=m&sentinel_password=sp", addrs: []string{"s1:26379"}, sentinel: true, master: "m", pw: "secret", db: 3},
		{url: "rediss+sentinel://s1:1?master_name=m", addrs: []string{"s1:1"}, sentinel: true, master: "m"},
		{url: "unix:///tmp/redis.sock", addrs: []string{"/tmp/redis.sock"}},
	} {
		tg, err := redisbroker.ParseTarget(c.url)
		if err != nil {
			t.Fatalf("ParseTarget(%q): %v", c.url, err)
		}
		if !slices.Equal(tg.Addrs, c.addrs) || tg.Sentinel != c.sentinel || tg.MasterName != c.master ||
			tg.Options.Password != c.pw || tg.Options.DB != c.db {
			t.Fatalf("ParseTarget(%q) = %+v (options %+v)", c.url, tg, tg.Options)
		}
	}
	tg, _ := redisbroker.ParseTarget("redis+sentinel://s1?master_name=m&sentinel_username=su&sentinel_password=sp")
	if tg.SentinelUsername != "su" || tg.SentinelPassword != "sp" {
		t.Fatalf("sentinel credentials %q %q", tg.SentinelUsername, tg.SentinelPassword)
	}
	for _, c := range []struct{ url, want string }{
		{"redis+sentinel://s1:26379", "master_name"},
		{"redis://h?master_name=m", "redis+sentinel"},
		{"redis://h?sentinel_password=x", "redis+sentinel"},
		{"redis://h?addr=nohostport", "host:port"},
		{"redis://h?addr=h:0", "1..65535"},
		{"redis://h?addr=h:99999", "1..65535"},
		{"unix:///s?addr=h:1", "unix socket"},
		{"redis://h?nope=1", "nope"},
		{"redis://:topsecret@h?addr=bad", "host:port"},
		{"http://h", "scheme"},
	} {
		_, err := redisbroker.ParseTarget(c.url)
		if err == nil || !errors.Is(err, redisbroker.ErrBadURL) || !strings.Contains(err.Error(), c.want) {
			t.Fatalf("ParseTarget(%q) = %v, want ErrBadURL mentioning %q", c.url, err, c.want)
		}
		if strings.Contains(err.Error(), "topsecret") {
			t.Fatalf("error shows the password: %v", err)
		}
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{
		"redis://h:1?addr=h2:2&addr=h3:3",
		"redis+sentinel://:pw@s1:26379/2?addr=s2:26379&master_name=m&sentinel_password=x",
		"rediss+sentinel://s?master_name=m",
		"redis://h?addr=",
		"redis://h?addr=%zz",
		"unix:///s?addr=h:1",
		"redis+sentinel://[::1]?master_name=m",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tg, err := redisbroker.ParseTarget(raw)
		if err != nil {
			if !errors.Is(err, redisbroker.ErrBadURL) {
				t.Fatalf("ParseTarget(%q) error %v does not wrap ErrBadURL", raw, err)
			}
			return
		}
		if len(tg.Addrs) == 0 || tg.Options == nil || (tg.Sentinel && tg.MasterName == "") {
			t.Fatalf("ParseTarget(%q) = %+v", raw, tg)
		}
	})
}
