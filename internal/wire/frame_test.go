package wire

import (
	"bytes"
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
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, f := range frames {
		if err := w.Write(f.Kind, f.ID, f.Name, f.Payload); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf, 1<<20)
	for i, want := range frames {
		got, err := r.Read()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if got.Kind != want.Kind || got.ID != want.ID || got.Name != want.Name || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("frame %d: got %+v, want %+v", i, got, want)
		}
	}
	if _, err := r.Read(); err != io.EOF {
		t.Fatalf("at end: %v, want io.EOF", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := Append(nil, Frame{Kind: KindCall, ID: 1, Name: "t", Payload: []byte("x")})
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	cases := []struct {
		name string
		in   []byte
		max  int
		want error
		text string
	}{
		{"short", good[:10], 100, ErrMalformed, "shorter than prefix"},
		{"too large", good, HeaderSize + 1, ErrTooLarge, "exceeds the limit"},
		{"length mismatch", good[:len(good)-1], 100, ErrMalformed, "length prefix says"},
		{"tiny length", mut(func(b []byte) []byte { b[3] = 3; return b[:7+HeaderSize] }), 100, ErrMalformed, "shorter than the"},
		{"bad kind", mut(func(b []byte) []byte { b[4] = 99; return b }), 100, ErrMalformed, "unknown kind 99"},
		{"flags", mut(func(b []byte) []byte { b[5] = 1; return b }), 100, ErrMalformed, "flags"},
		{"name overrun", mut(func(b []byte) []byte { b[7] = 50; return b }), 100, ErrMalformed, "overruns"},
		{"call without name", Append(nil, Frame{Kind: KindCall, ID: 1}), 100, ErrMalformed, "without a task name"},
		{"result with name", mut(func(b []byte) []byte { b[4] = byte(KindResult); return b }), 100, ErrMalformed, "carries a name"},
		{"bad utf8", mut(func(b []byte) []byte { b[16] = 0xff; return b }), 100, ErrMalformed, "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.in, c.max)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("err = %v, want %v containing %q", err, c.want, c.text)
			}
			// The stream reader must agree with Decode on malformed input.
			if len(c.in) >= PrefixSize+HeaderSize {
				if _, err := NewReader(bytes.NewReader(c.in), c.max).Read(); err == nil {
					t.Fatal("Reader accepted what Decode rejected")
				}
			}
		})
	}
}

func TestReaderTruncated(t *testing.T) {
	b := Append(nil, Frame{Kind: KindResult, ID: 1, Payload: []byte("hello")})
	_, err := NewReader(bytes.NewReader(b[:len(b)-2]), 100).Read()
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func FuzzDecodeFrame(f *testing.F) {
	f.Add(Append(nil, Frame{Kind: KindCall, ID: 1, Name: "is_prime", Payload: []byte("42")}))
	f.Add(Append(nil, Frame{Kind: KindReady, Payload: []byte(`{"protocol":1,"tasks":["a"]}`)}))
	f.Add(Append(nil, Frame{Kind: KindError, ID: 3, Payload: []byte(`{"type":"E","message":"m"}`)}))
	f.Add(Append(nil, Frame{Kind: KindCancel, ID: 5}))
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte("\xff\xff\xff\xffhello world, not a frame"))
	f.Fuzz(func(t *testing.T, b []byte) {
		const max = 1 << 16
		fr, err := Decode(b, max)
		// The stream reader must agree with Decode on every input that is
		// exactly one frame.
		fr2, err2 := NewReader(bytes.NewReader(b), max).Read()
		if err == nil {
			if err2 != nil {
				t.Fatalf("Decode ok, Reader: %v", err2)
			}
			if fr2.Kind != fr.Kind || fr2.ID != fr.ID || fr2.Name != fr.Name || !bytes.Equal(fr2.Payload, fr.Payload) {
				t.Fatalf("Reader %+v != Decode %+v", fr2, fr)
			}
			if re := Append(nil, fr); !bytes.Equal(re, b) {
				t.Fatalf("re-encoding differs: %x vs %x", re, b)
			}
			return
		}
		if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}
