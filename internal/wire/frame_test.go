package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	frames := []Frame{
		{Kind: KindReady, Payload: []byte(`{"protocol":1}`)},
		{Kind: KindCall, ID: 7, Name: "is_prime", Payload: []byte("5")},
		{Kind: KindCall, ID: 8, Name: "big", Payload: bytes.Repeat([]byte{0xAB}, 3*smallFrame)},
		{Kind: KindResult, ID: 7, Payload: []byte("true")},
		{Kind: KindResult, ID: 9},
		{Kind: KindError, ID: 1<<64 - 1, Payload: []byte(`{"type":"ValueError","message":"x"}`)},
		{Kind: KindCancel, ID: 8},
		{Kind: KindCall, Flags: FlagMeta, ID: 10, Name: "resize", Payload: AppendMeta(nil, []byte(`{"task_id":"t1","attempt":2}`))},
		{Kind: KindCall, Flags: FlagShm, ID: 11, Name: "big", Payload: testHandle.Append(nil)},
		{Kind: KindCall, Flags: FlagMeta | FlagShm, ID: 12, Name: "big", Payload: testHandle.Append(AppendMeta(nil, []byte(`{}`)))},
		{Kind: KindResult, Flags: FlagShm, ID: 11, Payload: testHandle.Append(nil)},
		{Kind: KindRelease, ID: 99, Payload: []byte{ReleaseDone}},
		{Kind: KindRelease, ID: 98, Payload: []byte{ReleaseGone}},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, f := range frames {
		if err := w.WriteFrame(f.Kind, f.Flags, f.ID, f.Name, nil, f.Payload); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf, 1<<20)
	for i, want := range frames {
		got, err := r.Read()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Kind != want.Kind || got.Flags != want.Flags || got.ID != want.ID || got.Name != want.Name || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

var testHandle = Handle{PID: 4242, FD: 7, ID: 3, Size: 4 << 20, Offset: 4096, Length: 1 << 20}

func TestDecodeErrors(t *testing.T) {
	good := Append(nil, Frame{Kind: KindCall, ID: 1, Name: "t", Payload: []byte("x")})
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	frame := func(kind Kind, flags uint8, name string, payload []byte) []byte {
		return Append(nil, Frame{Kind: kind, Flags: flags, ID: 1, Name: name, Payload: payload})
	}
	h := testHandle
	overrun := h
	overrun.Length = h.Size
	cases := []struct {
		name    string
		in      []byte
		max     int
		version int
		want    error
		text    string
	}{
		{"short", good[:10], 100, 2, ErrMalformed, "shorter than prefix"},
		{"too large", good, HeaderSize + 1, 2, ErrTooLarge, "exceeds the limit"},
		{"length mismatch", good[:len(good)-1], 100, 2, ErrMalformed, "length prefix says"},
		{"tiny length", mut(func(b []byte) []byte { b[3] = 3; return b[:7+HeaderSize] }), 100, 2, ErrMalformed, "shorter than the"},
		{"bad kind", mut(func(b []byte) []byte { b[4] = 99; return b }), 100, 2, ErrMalformed, "unknown kind 99"},
		{"flags in v1", mut(func(b []byte) []byte { b[5] = 1; return b }), 100, 1, ErrMalformed, "want 0 in protocol 1"},
		{"unknown flag", mut(func(b []byte) []byte { b[5] = 0x80; return b }), 100, 2, ErrMalformed, "call frame with flags 0x80"},
		{"meta on a result", frame(KindResult, FlagMeta, "", AppendMeta(nil, []byte("{}"))), 100, 2, ErrMalformed, "result frame with flags 0x1"},
		{"shm on an error", frame(KindError, FlagShm, "", h.Append(nil)), 100, 2, ErrMalformed, "error frame with flags 0x2"},
		{"release in v1", frame(KindRelease, 0, "", []byte{ReleaseDone}), 100, 1, ErrMalformed, "unknown kind 6"},
		{"release op", frame(KindRelease, 0, "", []byte{7}), 100, 2, ErrMalformed, "operation 7"},
		{"release length", frame(KindRelease, 0, "", []byte{1, 1}), 100, 2, ErrMalformed, "release frame of length"},
		{"meta without prefix", frame(KindCall, FlagMeta, "t", []byte{0, 0}), 100, 2, ErrMalformed, "no length prefix"},
		{"meta overrun", frame(KindCall, FlagMeta, "t", []byte{0, 0, 0, 9, '{', '}'}), 100, 2, ErrMalformed, "overruns"},
		{"meta not an object", frame(KindCall, FlagMeta, "t", AppendMeta(nil, []byte("[1]"))), 100, 2, ErrMalformed, "not a JSON object"},
		{"meta not json", frame(KindCall, FlagMeta, "t", AppendMeta(nil, []byte("{"))), 100, 2, ErrMalformed, "not a JSON object"},
		{"handle size", frame(KindCall, FlagShm, "t", h.Append(nil)[:HandleSize-1]), 100, 2, ErrMalformed, "SHM handle of 39 bytes"},
		{"handle after meta", frame(KindCall, FlagShm|FlagMeta, "t", append(AppendMeta(nil, []byte("{}")), 1)), 100, 2, ErrMalformed, "SHM handle of 1 bytes"},
		{"handle overrun", frame(KindResult, FlagShm, "", overrun.Append(nil)), 100, 2, ErrMalformed, "overrun the segment"},
		{"handle id 0", frame(KindResult, FlagShm, "", Handle{PID: 1, Size: 1}.Append(nil)), 100, 2, ErrMalformed, "segment id 0"},
		{"name overrun", mut(func(b []byte) []byte { b[7] = 50; return b }), 100, 2, ErrMalformed, "overruns"},
		{"call without name", Append(nil, Frame{Kind: KindCall, ID: 1}), 100, 2, ErrMalformed, "without a task name"},
		{"result with name", mut(func(b []byte) []byte { b[4] = byte(KindResult); return b }), 100, 2, ErrMalformed, "carries a name"},
		{"bad utf8", mut(func(b []byte) []byte { b[16] = 0xff; return b }), 100, 2, ErrMalformed, "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.in, c.max, c.version)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("err = %v, want %v containing %q", err, c.want, c.text)
			}
			// The stream reader must agree with Decode on malformed input.
			if len(c.in) >= PrefixSize+HeaderSize {
				r := NewReader(bytes.NewReader(c.in), c.max)
				r.SetVersion(c.version)
				if _, err := r.Read(); err == nil {
					t.Fatal("Reader accepted what Decode rejected")
				}
			}
		})
	}
}

func TestMetaAndHandle(t *testing.T) {
	p := testHandle.Append(AppendMeta(nil, []byte(`{"kind":"k"}`)))
	meta, rest, err := SplitMeta(p)
	if err != nil || string(meta) != `{"kind":"k"}` {
		t.Fatalf("SplitMeta = %q, %v", meta, err)
	}
	h, err := ParseHandle(rest)
	if err != nil || h != testHandle {
		t.Fatalf("ParseHandle = %+v, %v", h, err)
	}
}

func TestReaderTruncated(t *testing.T) {
	b := Append(nil, Frame{Kind: KindResult, ID: 1, Payload: []byte("hello")})
	_, err := NewReader(bytes.NewReader(b[:len(b)-2]), 100).Read()
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
}

// The seed corpus is here and in testdata/fuzz/FuzzDecodeFrame.
func FuzzDecodeFrame(f *testing.F) {
	f.Add(Append(nil, Frame{Kind: KindCall, ID: 1, Name: "is_prime", Payload: []byte("42")}), true)
	f.Add(Append(nil, Frame{Kind: KindReady, Payload: []byte(`{"protocol":2,"tasks":["a"],"slots":8,"features":["meta","shm"]}`)}), false)
	f.Add(Append(nil, Frame{Kind: KindError, ID: 3, Payload: []byte(`{"type":"E","message":"m","retry_after":1.5}`)}), true)
	f.Add(Append(nil, Frame{Kind: KindCancel, ID: 5}), true)
	f.Add(Append(nil, Frame{Kind: KindCall, Flags: FlagMeta | FlagShm, ID: 6, Name: "t", Payload: testHandle.Append(AppendMeta(nil, []byte(`{"task_id":"x"}`)))}), true)
	f.Add(Append(nil, Frame{Kind: KindResult, Flags: FlagShm, ID: 6, Payload: testHandle.Append(nil)}), true)
	f.Add(Append(nil, Frame{Kind: KindRelease, ID: 2, Payload: []byte{ReleaseGone}}), true)
	f.Add([]byte{0, 0, 0, 0}, false)
	f.Add([]byte("\xff\xff\xff\xffhello world, not a frame"), true)
	f.Fuzz(func(t *testing.T, b []byte, v2 bool) {
		const max = 1 << 16
		version := VersionV1
		if v2 {
			version = Version
		}
		fr, err := Decode(b, max, version)
		// The stream reader must agree with Decode on every input that is
		// exactly one frame.
		r := NewReader(bytes.NewReader(b), max)
		r.SetVersion(version)
		fr2, err2 := r.Read()
		if err == nil {
			if err2 != nil {
				t.Fatalf("Decode ok, Reader: %v", err2)
			}
			if fr2.Kind != fr.Kind || fr2.Flags != fr.Flags || fr2.ID != fr.ID || fr2.Name != fr.Name || !bytes.Equal(fr2.Payload, fr.Payload) {
				t.Fatalf("Reader %+v != Decode %+v", fr2, fr)
			}
			if re := Append(nil, fr); !bytes.Equal(re, b) {
				t.Fatalf("re-encoding differs: %x vs %x", re, b)
			}
			if version == VersionV1 && fr.Flags != 0 {
				t.Fatalf("flags %#x accepted in protocol 1", fr.Flags)
			}
			// What the flags announce decodes, and META decodes as Meta.
			rest := fr.Payload
			if fr.Flags&FlagMeta != 0 {
				meta, r, err := SplitMeta(rest)
				if err != nil {
					t.Fatalf("accepted frame with bad META: %v", err)
				}
				var m Meta
				_ = json.Unmarshal(meta, &m) // may fail on field types; must not panic
				rest = r
			}
			if fr.Flags&FlagShm != 0 {
				h, err := ParseHandle(rest)
				if err != nil || !bytes.Equal(h.Append(nil), rest) {
					t.Fatalf("accepted frame with bad handle: %v", err)
				}
			}
			return
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("unclassified error %v", err)
		}
		if err2 == nil && len(b) >= PrefixSize && uint64(binary.BigEndian.Uint32(b)) == uint64(len(b)-PrefixSize) {
			t.Fatalf("Reader accepted what Decode rejected: %v", err)
		}
	})
}

// AppendJSON writes what json.Marshal writes, for any field values.
func FuzzMetaJSON(f *testing.F) {
	f.Add("01ABC", "resize", "default", 1, 3, true, "2030-01-02T03:04:05.000000006Z", "args")
	f.Add("", "", "", 0, 0, false, "", "")
	f.Add("a\"b\\c", "<k&>", "q\u2028\x00é\xff", -5, -1, true, "\n", "json")
	f.Fuzz(func(t *testing.T, id, kind, queue string, attempt, retries int, hasRetries bool, deadline, enc string) {
		m := Meta{TaskID: id, Kind: kind, Queue: queue, Attempt: attempt, Deadline: deadline, Encoding: enc}
		if hasRetries {
			m.MaxRetries = &retries
		}
		want, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.AppendJSON([]byte("x")); string(got[1:]) != string(want) || got[0] != 'x' {
			t.Fatalf("AppendJSON = %s, json.Marshal = %s", got[1:], want)
		}
	})
}
