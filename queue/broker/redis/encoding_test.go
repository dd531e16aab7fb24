package redis

import (
	"bytes"
	"testing"
	"time"

	"github.com/conqhq/conq/queue/broker"
)

func TestMsgRoundTrip(t *testing.T) {
	now := time.Unix(0, 1_893_456_789_123_456_789)
	for _, in := range []*broker.Task{
		{Kind: "k", MaxRetries: 3},
		{Kind: "email.send", Payload: []byte{0, 1, 2, 0xff, ','}, Encoding: "raw", MaxRetries: 0, Timeout: time.Second,
			Deadline: now.Add(time.Hour), Retention: time.Minute, EnqueuedAt: now, ProcessAt: now.Add(-time.Hour)},
		{Kind: string(bytes.Repeat([]byte("x"), 300)), Payload: bytes.Repeat([]byte{7}, 70_000), Encoding: "args", MaxRetries: 25, Timeout: -1},
	} {
		var out broker.Task
		if err := decodeMsg(string(encodeMsg(in)), &out); err != nil {
			t.Fatal(err)
		}
		if out.Kind != in.Kind || !bytes.Equal(out.Payload, in.Payload) || out.Encoding != in.Encoding || out.MaxRetries != in.MaxRetries ||
			out.Timeout != in.Timeout || out.Retention != in.Retention || !out.Deadline.Equal(in.Deadline) ||
			!out.EnqueuedAt.Equal(in.EnqueuedAt) || !out.ProcessAt.Equal(in.ProcessAt) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", out, in)
		}
	}
	for _, bad := range []string{"", "1,", "1,2,", "x,2,\x01", "1,2,\x02", "1,2,\x01\x05ab"} {
		if err := decodeMsg(bad, &broker.Task{}); err == nil {
			t.Fatalf("decodeMsg(%q) accepted", bad)
		}
	}
}

// TestMsgVersion1 reads a record written before the payload encoding was
// stored (message version 1): no encoding, every other field intact.
func TestMsgVersion1(t *testing.T) {
	v1 := "3,60000000000,\x01\x01k\x02\x00\x00\x00payload"
	var out broker.Task
	if err := decodeMsg(v1, &out); err != nil {
		t.Fatal(err)
	}
	if out.Kind != "k" || out.Encoding != "" || string(out.Payload) != "payload" || out.MaxRetries != 3 ||
		out.Retention != time.Minute || out.Timeout != 1 { // zigzag varint 2 is 1ns
		t.Fatalf("version 1 record decoded as %+v", out)
	}
}

func TestMetaDecode(t *testing.T) {
	var tk broker.Task
	if err := decodeMeta("a,2,5,0,17,1000,900,0,host:1,x", &tk); err != nil {
		t.Fatal(err)
	}
	if tk.State != broker.StateActive || tk.Attempts != 2 || tk.MaxRetries != 5 || tk.Token != 17 ||
		tk.LeaseUntil.UnixNano() != 1000 || tk.StartedAt.UnixNano() != 900 || tk.WorkerID != "host:1,x" {
		t.Fatalf("decoded %+v", tk)
	}
	for _, bad := range []string{"", "a", "z,0,0,0,0,0,0,0,", "p,0,0,0,0,0,0,", "p,x,0,0,0,0,0,0,"} {
		if err := decodeMeta(bad, &broker.Task{}); err == nil {
			t.Fatalf("decodeMeta(%q) accepted", bad)
		}
	}
	if m := newMeta(&broker.Task{MaxRetries: 4, Retention: time.Second}, broker.StateScheduled); m != "s,0,4,1000000000,0,0,0,0," {
		t.Fatalf("newMeta = %q", m)
	}
}

// FuzzDecode: stored records come from Redis, which anyone with access can
// edit; decoding must fail cleanly, never panic.
func FuzzDecode(f *testing.F) {
	f.Add(string(encodeMsg(&broker.Task{Kind: "k", Payload: []byte("p"), MaxRetries: 3})), "a,1,3,0,7,1,1,0,w")
	f.Add("1,2,\x01", "p,0,0,0,0,0,0,0,")
	f.Add(string(encodeMsg(&broker.Task{Kind: "k", Payload: []byte("[1]"), Workflow: "wf", Step: 3})), "c,1,0,0,0,0,1,2,")
	f.Fuzz(func(t *testing.T, msg, meta string) {
		var tk broker.Task
		_ = decodeMsg(msg, &tk)
		_ = decodeMeta(meta, &tk)
		_, _ = decodeErrors(meta)
	})
}
