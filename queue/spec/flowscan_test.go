package spec

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

// scanSeeds are flow files for FuzzScanFlow and TestScanFlowTakes. The
// first ones (up to scanTaken) are of forms scanFlow must take itself.
var scanSeeds = []string{
	// What the Python canvas sends for chord(group(member.s() x 10))(callback.s()), shortened.
	`{"flow":{"chord":{"header":[{"task":{"kind":"__main__:member","args":[],"kwargs":{}}},{"task":{"kind":"__main__:member","args":[],"kwargs":{}}}],"body":{"task":{"kind":"__main__:callback","args":[],"kwargs":{}}},"tolerate_failures":false}}}`,
	`{"flow":{"task":{"kind":"a"}}}`,
	` {"flow" : { "chain" : [ {"task":{"kind":"a","args":[1, 2.5e3, -0.5, "x\n", null, true]}} , {"task":{"kind":"b","payload":{"x":[1,{}]}},"immutable":true} ] } } ` + "\n",
	`{"flow":{"chord":{"body":{"task":{"kind":"s","args":[5]},"immutable":true},"header":[{"task":{"kind":"a"}},{"group":[{"task":{"kind":"g1"}},{"task":{"kind":"g2"}}]}],"tolerate_failures":true}}}`,
	`{"flow":{"chain":[{"task":{"kind":"a","args":[2,2]}},{"task":{"kind":"m","args":[4]}}]},"queue":"q","retention":"24h"}`,
	`{"retention":90,"queue":"file","flow":{"group":[{"task":{"kind":"a","queue":"own"}},{"task":{"kind":"b"}}]}}`,
	`{"flow":{"task":{"kind":"a","payload_text":"h\u00e9llo \"x\"","queue":"caf\u0065"}},"queue":"d\u0065faut"}`,
	`{"flow":{"task":{"kind":"k\u00e9","payload_base64":"AAH/","max_retries":3,"timeout":"30s","process_in":1.5,"retention":null}}}`,
	`{"flow":{"task":{"kind":"k","payload":null,"queue":null,"kwargs":{"b":3},"deadline":"2199-01-01T00:00:00+02:00"}}}`,
	`{"flow":{"task":{"kind":"k","process_at":"2198-01-01T00:00:00Z","deadline":"2199-01-01T00:00:00Z"}}}`,
	`{"flow":{"task":{"kind":"k","timeout":0}},"retention":null}`,
	`{"flow":{"chain":[{"task":{"kind":"a"},"immutable":false}]}}`,
	`{"flow":{"task":{"kind":"a","process_in":"2h","deadline":"2199-01-01T00:00:00Z"}}}`,
	// Invalid UTF-8 in a string: decoded by encoding/json, as in parseFlow (to U+FFFD).
	"{\"flow\":{\"task\":{\"kind\":\"\xff\"}}}",
	"{\"flow\":{\"task\":{\"kind\":\"a\",\"payload_text\":\"\xff\"}}}",
	// Up to here scanFlow takes them itself; from here parseFlow (an error, or a rare form).
	`{"flow":{"group":[]}}`,
	`{"flow":{"task":{"kind":"a","id":"x"}}}`,
	`{"flow":{"task":{"kind":"a","unique":"1h"}}}`,
	`{"flow":{"task":{"kind":"a"}}}{"flow":{"task":{"kind":"b"}}}`,
	`{"flow":{"chord":{"header":[{"task":{"kind":"a"}}],"body":null}}}`,
	`{"flow":{"chord":{"header":[{"task":{"kind":"a"}}]}}}`,
	`{"flow":null}`,
	`{"flow":{"task":{"kind":"a"}},"retention":"soon"}`,
	`{"flow":{"task":{"kind":"a"}},"queue":"bad queue"}`,
	`{"flow":{"task":{"kind":"a"}},"queue":null}`,
	`{"Flow":{"task":{"Kind":"a"}}}`,
	`{"flow":{"task":{"kind":"a"},"task":{"kind":"b"}}}`,
	`{"flow":{"task":{"kind":"a","queue":"x"},"task":{"kind":"b"}}}`,
	`{"flow":{"task":null,"group":[{"task":{"kind":"a"}}]}}`,
	`{"flow":{"group":[{"task":{"kind":"a"}}],"immutable":false}}`,
	`{"flow":{"task":{"kind":"a","retries":2}}}`,
	`{"flow":{"task":{"kind":"a","max_retries":01}}}`,
	`{"flow":{"task":{"kind":"a","max_retries":+1}}}`,
	`{"flow":{"task":{"kind":"a","timeout":"1s","timeout":"2s"}}}`,
	`{"flow":{"task":{"kind":"a","args":[1,]}}}`,
	`{"flow":{"task":{"kind":"a","args":{}}}}`,
	`{"flow":{"task":{"kind":"a","payload":1,"args":[]}}}`,
	`{"flow":{"task":{"kind":"a\u0000"}}}`,
	`{"flow":{"task":{"kind":"a","deadline":"2001-01-01T00:00:00Z"}}}`,
	`{"flow":{"task":{"kind":"a"}},"extra":1}`,
	`{"flow":{"chain":[{"task":{"kind":"a"}}, {"group":[]}]}}`,
	`{"flow":{"chain":[null]}}`,
	`{"flow":{"chord":{"header":[{"task":{"kind":"a"}}],"body":{"task":{"kind":"s"}},"tolerate_failures":null}}}`,
	`{"flow":{"task":{"kind":"a"}}} }`,
}

// scanTaken counts the first scanSeeds, the ones scanFlow reads itself.
const scanTaken = 15

// scanOptions are the options of a FuzzScanFlow case: a step limit
// (0 for the default) and defaults by mode.
func scanOptions(limit, mode uint8) (int, Task) {
	maxSteps := int(limit % 8)
	if maxSteps == 0 {
		maxSteps = 100_000
	}
	three, hour, twoHours := 3, time.Hour, 2*time.Hour
	switch mode % 4 {
	case 1:
		return maxSteps, Task{Queue: "cli", MaxRetries: &three, Retention: &hour}
	case 2: // a deadline in a day: a step due later fails only with it
		return maxSteps, Task{Deadline: time.Now().Add(24 * time.Hour)}
	case 3:
		return maxSteps, Task{ProcessIn: &twoHours, Timeout: &hour}
	}
	return maxSteps, Task{}
}

// checkScan: scanFlow either declines or gives what parseFlow gives, and
// ParseFlowWith is whichever answers.
func checkScan(t *testing.T, data []byte, limit, mode uint8) bool {
	t.Helper()
	maxSteps, defaults := scanOptions(limit, mode)
	var scanned, parsed []Task
	sf, ok := scanFlow(data, maxSteps, defaults, &scanned)
	pf, err := parseFlow(data, maxSteps, defaults, &parsed)
	o := FlowOptions{Defaults: defaults, MaxSteps: maxSteps}
	if maxSteps == 100_000 {
		o.MaxSteps = 0
	}
	f, ferr := ParseFlowWith(data, o)
	if !ok {
		if fmt.Sprint(ferr) != fmt.Sprint(err) || dumpFlow(f) != dumpFlow(pf) {
			t.Fatalf("%q: ParseFlowWith = %v, parseFlow = %v", data, ferr, err)
		}
		return false
	}
	if err != nil {
		t.Fatalf("%q (limit %d, mode %d): scanFlow took what parseFlow refuses: %v", data, limit, mode, err)
	}
	if ferr != nil || dumpFlow(f) != dumpFlow(sf) {
		t.Fatalf("%q: ParseFlowWith = %v, %v; scanFlow gave %s", data, dumpFlow(f), ferr, dumpFlow(sf))
	}
	if a, b := dumpFlow(sf), dumpFlow(pf); a != b {
		t.Fatalf("%q:\nscanFlow  %s\nparseFlow %s", data, a, b)
	}
	if !reflect.DeepEqual(scanned, parsed) {
		t.Fatalf("%q: steps\nscanFlow  %+v\nparseFlow %+v", data, scanned, parsed)
	}
	return true
}

// dumpFlow writes out a Flow, its queue.Flow's unexported fields
// included; a function (a task's option) is written as "func", so the
// options are compared through the steps' specifications instead.
func dumpFlow(f Flow) string {
	var b strings.Builder
	dumpValue(&b, reflect.ValueOf(f))
	return b.String()
}

func dumpValue(b *strings.Builder, v reflect.Value) {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		b.WriteByte('&')
		dumpValue(b, v.Elem())
	case reflect.Struct:
		b.WriteString(v.Type().String() + "{")
		for i := range v.NumField() {
			fmt.Fprintf(b, "%s:", v.Type().Field(i).Name)
			dumpValue(b, v.Field(i))
			b.WriteByte(' ')
		}
		b.WriteByte('}')
	case reflect.Slice:
		if v.IsNil() {
			b.WriteString("nil")
			return
		}
		b.WriteByte('[')
		for i := range v.Len() {
			dumpValue(b, v.Index(i))
			b.WriteByte(',')
		}
		b.WriteByte(']')
	case reflect.Func:
		b.WriteString("func")
	case reflect.String:
		fmt.Fprintf(b, "%q", v.String())
	case reflect.Bool:
		fmt.Fprint(b, v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		fmt.Fprint(b, v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		fmt.Fprint(b, v.Uint())
	default:
		fmt.Fprintf(b, "<%s>", v.Kind())
	}
}

// The usual forms are read by the single pass, not parsed again; the
// others by parseFlow, with the same answer.
func TestScanFlowTakes(t *testing.T) {
	for i, s := range scanSeeds {
		for mode := range uint8(4) {
			took := checkScan(t, []byte(s), 0, mode)
			if i < scanTaken && !took {
				t.Errorf("scanFlow declined %s (mode %d)", s, mode)
			}
			if i >= scanTaken && took {
				t.Errorf("scanFlow took %s (mode %d)", s, mode)
			}
		}
	}
	// A 100-member group and the step limit.
	var b strings.Builder
	b.WriteString(`{"flow":{"group":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"task":{"kind":"k%d","args":[%d]}}`, i, i)
	}
	b.WriteString(`]}}`)
	if !checkScan(t, []byte(b.String()), 0, 0) {
		t.Error("scanFlow declined a 100-member group")
	}
	if checkScan(t, []byte(b.String()), 7, 0) {
		t.Error("scanFlow took 100 steps with a limit of 7")
	}
}

func FuzzScanFlow(f *testing.F) {
	for _, s := range scanSeeds {
		for mode := range uint8(4) {
			f.Add([]byte(s), uint8(0), mode)
		}
		f.Add([]byte(s), uint8(2), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, limit, mode uint8) {
		checkScan(t, data, limit, mode)
	})
}

// BenchmarkParseFlowChord10: the flow of a chord of 10 members and a
// callback as the Python canvas sends it, read by ParseFlowWith (the
// single pass) and by parseFlow (the general parser, what ParseFlowWith
// was before).
func BenchmarkParseFlowChord10(b *testing.B) {
	sig := `{"task":{"kind":"__main__:member","args":[],"kwargs":{}}}`
	data := []byte(`{"flow":{"chord":{"header":[` + strings.Repeat(sig+",", 9) + sig +
		`],"body":{"task":{"kind":"__main__:callback","args":[],"kwargs":{}}},"tolerate_failures":false}}}`)
	b.Run("ParseFlowWith", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if f, err := ParseFlowWith(data, FlowOptions{}); err != nil || f.Steps != 11 {
				b.Fatal(f.Steps, err)
			}
		}
	})
	b.Run("parseFlow", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if f, err := parseFlow(data, 100_000, Task{}, nil); err != nil || f.Steps != 11 {
				b.Fatal(f.Steps, err)
			}
		}
	})
}

// flowGen writes a flow file from fuzz bytes: nodes of every shape,
// task fields from a palette of good and bad values, keys in any order,
// sometimes repeated or misspelt, white space anywhere. Most of what it
// writes is valid, so FuzzScanFlowShapes compares scanFlow and parseFlow
// on accepted files, where FuzzScanFlow's mutations mostly make errors.
type flowGen struct {
	b []byte
	i int
}

func (g *flowGen) n(k int) int {
	if g.i >= len(g.b) {
		return 0
	}
	v := int(g.b[g.i]) % k
	g.i++
	return v
}

func (g *flowGen) pick(vs ...string) string { return vs[g.n(len(vs))] }

func (g *flowGen) ws() string { return g.pick("", "", "", " ", "\n\t ", "\r\n") }

// object writes members in an order the bytes choose, sometimes one twice.
func (g *flowGen) object(members []string) string {
	for i := len(members) - 1; i > 0; i-- {
		j := g.n(i + 1)
		members[i], members[j] = members[j], members[i]
	}
	if len(members) > 0 && g.n(16) == 0 {
		members = append(members, members[0])
	}
	var b strings.Builder
	b.WriteString("{" + g.ws())
	for i, m := range members {
		if i > 0 {
			b.WriteString(g.ws() + "," + g.ws())
		}
		b.WriteString(m)
	}
	b.WriteString(g.ws() + "}")
	return b.String()
}

func (g *flowGen) member(key, value string) string {
	if g.n(32) == 0 {
		key = strings.ToUpper(key[:1]) + key[1:]
	}
	return `"` + key + `"` + g.ws() + ":" + g.ws() + value
}

func (g *flowGen) list(depth int) string {
	n := 1 + g.n(3)
	if g.n(16) == 0 {
		n = 0
	}
	var b strings.Builder
	b.WriteString("[" + g.ws())
	for i := range n {
		if i > 0 {
			b.WriteString("," + g.ws())
		}
		b.WriteString(g.node(depth + 1))
	}
	b.WriteString(g.ws() + "]")
	return b.String()
}

func (g *flowGen) node(depth int) string {
	shape := g.n(5)
	if depth > 3 {
		shape = 0
	}
	var ms []string
	switch shape {
	case 0, 1:
		ms = append(ms, g.member("task", g.task()))
		if g.n(3) == 0 {
			ms = append(ms, g.member("immutable", g.value([]string{"true", "false"}, "null")))
		}
	case 2:
		ms = append(ms, g.member(g.pick("chain", "group"), g.list(depth)))
	case 3:
		ms = append(ms, g.member("group", g.list(depth)))
	default:
		var c []string
		if g.n(16) != 0 {
			c = append(c, g.member("header", g.list(depth)))
		}
		if g.n(16) != 0 {
			c = append(c, g.member("body", g.node(depth+1)))
		}
		if g.n(2) == 0 {
			c = append(c, g.member("tolerate_failures", g.value([]string{"true", "false"}, "null")))
		}
		ms = append(ms, g.member("chord", g.object(c)))
	}
	if g.n(32) == 0 {
		ms = append(ms, g.member(g.pick("task", "chain", "immutable"), `{"kind":"x"}`))
	}
	return g.object(ms)
}

func (g *flowGen) task() string {
	ms := []string{g.member("kind", g.value([]string{`"a"`, `"__main__:member"`, `"b.c"`, `"k\u00e9"`}, `""`, `null`, `5`, `"a b"`))}
	fields := []struct {
		key  string
		good []string
		bad  []string
	}{
		{"args", []string{`[]`, `[1, 2]`, `[ "x", {"y": [null, true, false, -0.5e+3]} ]`}, []string{`{}`, `null`, `[1,]`}},
		{"kwargs", []string{`{}`, `{"b": 3}`}, []string{`[]`, `null`}},
		{"payload", []string{`{"x": 1}`, `null`, `"s"`, `[1, 2 ]`, `12`}, []string{`01`}},
		{"payload_text", []string{`"hello"`, `"h\u00e9\n"`}, []string{`null`}},
		{"payload_base64", []string{`"AAH/"`}, []string{`"!!"`}},
		{"queue", []string{`"q"`, `"mail"`, `null`}, []string{`"bad queue"`, `""`}},
		{"max_retries", []string{`3`, `0`}, []string{`-1`, `1.5`, `"3"`, `+1`}},
		{"timeout", []string{`"30s"`, `90`, `0.5`, `null`, `1e3`}, []string{`"soon"`, `-1`}},
		{"process_in", []string{`"1h"`, `"2h"`, `60`}, nil},
		{"retention", []string{`"24h"`, `600`, `null`}, nil},
		{"deadline", []string{`"2199-01-01T00:00:00Z"`, `"2198-06-01T00:00:00+02:00"`}, []string{`"2001-01-01T00:00:00Z"`, `"x"`}},
		{"process_at", []string{`"2198-01-01T00:00:00Z"`, `"2199-06-01T00:00:00Z"`}, nil},
		{"id", []string{`null`}, []string{`"x"`}},
		{"unique", []string{`null`}, []string{`"1h"`}},
		{"unique_key", nil, []string{`"k"`}},
		{"retries", nil, []string{`2`}},
	}
	for _, f := range fields {
		if g.n(8) == 0 && (len(f.good) > 0 || g.n(4) == 0) {
			ms = append(ms, g.member(f.key, g.value(f.good, f.bad...)))
		}
	}
	return g.object(ms)
}

// value is one of good, or now and then one of bad.
func (g *flowGen) value(good []string, bad ...string) string {
	if len(bad) > 0 && (len(good) == 0 || g.n(8) == 0) {
		return g.pick(bad...)
	}
	return g.pick(good...)
}

func (g *flowGen) file() string {
	ms := []string{g.member("flow", g.node(0))}
	if g.n(3) == 0 {
		ms = append(ms, g.member("queue", g.value([]string{`"file"`, `"d\u0065f"`, `""`}, `"bad queue"`, `null`)))
	}
	if g.n(3) == 0 {
		ms = append(ms, g.member("retention", g.value([]string{`"2h"`, `90`, `null`}, `"soon"`)))
	}
	return g.ws() + g.object(ms) + g.ws()
}

func FuzzScanFlowShapes(f *testing.F) {
	for _, s := range []string{"", "\x00\x01\x02\x03", "\x04\x04\x04\x04\x04\x04\x04\x04", "seed of a few words", "\xff\xfe\xfd\xfc\xfb\xfa"} {
		f.Add([]byte(s), uint8(0), uint8(0))
	}
	f.Fuzz(func(t *testing.T, b []byte, limit, mode uint8) {
		g := &flowGen{b: b}
		checkScan(t, []byte(g.file()), limit, mode)
	})
}

// listSeeds are task lists for FuzzScanList; the first scanListTaken are
// of forms scanList must take itself.
var listSeeds = []string{
	// What conq.Executor.map sends in "tasks" (compact JSON).
	`[{"kind":"__main__:noop","args":[17],"kwargs":{}},{"kind":"__main__:noop","args":[18],"kwargs":{}}]`,
	` [ {"kind": "a", "args": [1, 2.5e3, -0.5, "x\n", null, true], "kwargs": {"b": {"c": []}}} ,` +
		` {"kind":"b","payload":{"x":[1,{}]},"queue":"q","max_retries":3,"timeout":"30s","retention":600,` +
		`"deadline":"2199-01-01T00:00:00Z","id":"i","unique":"1h","unique_key":"k"} ] ` + "\n",
	`[{"kind":"k","payload_base64":"AAH/"},{"kind":"k","payload_text":"h\u00e9"},{"kind":"k","payload":null,"queue":null}]`,
	`[{"kind":"k","process_at":"2100-01-01T00:00:00.123456789+02:00"},{"kind":"k","process_in":"1m"}]`,
	`[{}]`,
	// Declined (then decoded by parseList, as the same or an error).
	`[]`, `[null]`, `[1]`, `null`, `{}`, `[{"kind":"k"},{"kind":"k","nope":1}]`, `[{"kind":"k","retries":1}]`,
	`[{"kind":"k","args":{"a":1}}]`, `[{"kind":"k","kwargs":[1]}]`, `[{"KIND":"k"}]`, `[{"kind":"k","kind":"j"}]`,
	`[{"kind":"k"}] [1]`, `[{"kind":"k",}]`, `[{"kind":"k"},]`, `[{"kind":"k\u0000"}]`, `[{"kind":"\xff"}]`,
	`[{"kind":"k","max_retries":"3"}]`, `[{"kind":"k","args":[1],"payload":1}]`, `[{"kind":"k","timeout":"soon"}]`,
}

const scanListTaken = 5

func TestScanListTakes(t *testing.T) {
	for _, s := range listSeeds[:scanListTaken] {
		if _, ok := scanList([]byte(s)); !ok {
			t.Errorf("scanList declines %s", s)
		}
		checkScanList(t, []byte(s))
	}
	for _, s := range listSeeds[scanListTaken:] {
		checkScanList(t, []byte(s))
	}
}

// checkScanList: what scanList takes, parseList (ParseList's decoder)
// decodes to the same specifications.
func checkScanList(t *testing.T, data []byte) {
	t.Helper()
	got, ok := scanList(data)
	if !ok {
		return
	}
	want, bad, err := parseList(data)
	if err != nil {
		t.Fatalf("scanList takes %q, parseList: %v at %d", data, err, bad)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\nscanList  %#v\nparseList %#v", data, got, want)
	}
}

// FuzzScanList: scanList against ParseList's decoder (see checkScanList).
func FuzzScanList(f *testing.F) {
	for _, s := range listSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(checkScanList)
}
