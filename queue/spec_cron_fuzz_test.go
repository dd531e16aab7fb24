package queue

import (
	"testing"
	"time"
)

// FuzzCronSpec: any spec string parses or fails cleanly, and a parsed
// schedule's ticks are ordered around a fixed time.
func FuzzCronSpec(f *testing.F) {
	for _, s := range []string{
		"0 30 2 * * *", "*/10 * * * * *", "0 9 * * 1-5", "@daily", "@every 30s", "@every 2562047h",
		"CRON_TZ=Asia/Tokyo 0 9 * * 1-5", "TZ=Nowhere 0 0 * * *", "* * 31 2 *", "@every 0s", "@every", "60 * * * *",
		"0 0 1,15 * *", "0-59/7 * * * * *", "", "   ",
	} {
		f.Add(s)
	}
	at := time.Date(2026, 11, 21, 22, 53, 42, 0, time.UTC)
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := parseSchedule(spec, time.UTC)
		if err != nil {
			return
		}
		if n := s.next(at); !n.IsZero() && !n.After(at) {
			t.Fatalf("%q: next(%v) = %v, not after", spec, at, n)
		}
		if l := s.latest(at); !l.IsZero() && l.After(at) {
			t.Fatalf("%q: latest(%v) = %v, after", spec, at, l)
		}
		_ = period(s, at)
	})
}
