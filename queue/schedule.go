package queue

import (
	"fmt"
	"strings"
	"time"

	cron "github.com/netresearch/go-cron"
)

// Cron specs are parsed by github.com/netresearch/go-cron, the maintained
// fork of robfig/cron (unmaintained since 2020): the same spec language and
// API, with fixes for DST and time-zone handling and a Prev method that the
// missed-tick policy needs.
var cronParser = cron.MustNewParser(cron.SecondOptional | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// schedule yields the ticks of an entry.
type schedule interface {
	// next returns the first tick after t.
	next(t time.Time) time.Time
	// latest returns the last tick at or before t (zero if none).
	latest(t time.Time) time.Time
}

// minInterval is the shortest "@every" interval.
const minInterval = time.Second

// parseSchedule parses a spec:
//
//   - a cron expression of 5 fields (minute hour day-of-month month
//     day-of-week) or 6 with seconds first, e.g. "*/10 * * * * *";
//   - a descriptor: @yearly, @monthly, @weekly, @daily, @hourly;
//   - "@every <duration>", e.g. "@every 30s" (at least 1s).
//
// A "CRON_TZ=<zone> " or "TZ=<zone> " prefix sets the time zone of a cron
// expression; otherwise it is loc. "@every" intervals are aligned to the
// Unix epoch, not to when a scheduler started, so every scheduler process
// agrees on the ticks.
func parseSchedule(spec string, loc *time.Location) (schedule, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, fmt.Errorf("empty spec")
	}
	if rest, ok := strings.CutPrefix(spec, "@every"); ok {
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err != nil {
			return nil, fmt.Errorf("spec %q: bad interval: %w", spec, err)
		}
		if d < minInterval {
			return nil, fmt.Errorf("spec %q: interval %v is shorter than %v", spec, d, minInterval)
		}
		return interval(d), nil
	}
	zoned := strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("spec %q: %w", spec, err)
	}
	cs, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("spec %q: unsupported schedule type %T", spec, s)
	}
	if err := checkFields(cs); err != nil {
		return nil, fmt.Errorf("spec %q: %w", spec, err)
	}
	if !zoned {
		cs.Location = loc
	}
	return cronSchedule{cs}, nil
}

// checkFields refuses a field that matches no value. The parser takes a
// field of commas alone (",") for an empty list rather than an error; such
// a schedule never ticks, and finding that out walks five years second by
// second: RegisterEntry's "never fires" check took 3 s of CPU to refuse
// ", * * * * *" without saying why (the fuzz target, which also asks for
// the latest tick and the period, 13 s). cronParser has no L, W or #
// options, so a field's bits are all of it.
func checkFields(cs *cron.SpecSchedule) error {
	for _, f := range []struct {
		name string
		bits uint64
	}{
		{"seconds", cs.Second},
		{"minutes", cs.Minute},
		{"hours", cs.Hour},
		{"day of month", cs.Dom},
		{"month", cs.Month},
		{"day of week", cs.Dow},
	} {
		if f.bits == 0 {
			return fmt.Errorf("the %s field matches no value", f.name)
		}
	}
	return nil
}

type cronSchedule struct{ s *cron.SpecSchedule }

func (c cronSchedule) next(t time.Time) time.Time { return c.s.Next(t) }

func (c cronSchedule) latest(t time.Time) time.Time {
	p := c.s.Prev(t)
	if p.IsZero() {
		return p
	}
	if n := c.s.Next(p); !n.IsZero() && !n.After(t) {
		return n // t is itself a tick
	}
	return p
}

// interval ticks at every multiple of itself since the Unix epoch.
type interval time.Duration

func (d interval) latest(t time.Time) time.Time {
	n := t.UnixNano()
	step := int64(d)
	k := n / step
	if n < 0 && n%step != 0 {
		k--
	}
	return time.Unix(0, k*step).In(t.Location())
}

func (d interval) next(t time.Time) time.Time {
	return d.latest(t).Add(time.Duration(d))
}

// period estimates the gap between ticks after t.
func period(s schedule, t time.Time) time.Duration {
	a := s.next(t)
	if a.IsZero() {
		return 0
	}
	b := s.next(a)
	if b.IsZero() {
		return 0
	}
	return b.Sub(a)
}
