package server

import (
	"context"
	"testing"

	"github.com/conqhq/conq/queue/broker"
)

func TestAPIWorkflow(t *testing.T) {
	ts := newTestServer(t, Config{})
	ctx := context.Background()
	r := ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"chain":[{"task":{"kind":"a","args":[2,2]}},{"task":{"kind":"m","args":[4]}}]},"queue":"wq"}`)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	id, _ := r.json(t)["id"].(string)
	for _, res := range []string{"4", "16"} {
		tasks, err := ts.b.Fetch(ctx, broker.FetchParams{Queues: []string{"wq"}, Max: 5, Lease: 60e9})
		if err != nil || len(tasks) != 1 {
			t.Fatalf("fetch: %v %v", tasks, err)
		}
		if err := ts.b.Complete(ctx, broker.Ack{LeaseRef: tasks[0].Ref(), Result: []byte(res)}); err != nil {
			t.Fatal(err)
		}
	}
	g := ts.do(t, "GET", "/api/v1/workflows/"+id+"?wait=5s", nil).json(t)
	if g["state"] != "completed" || g["result"] != float64(16) || len(g["steps"].([]any)) != 2 {
		t.Fatalf("get: %v", g)
	}
	if r := ts.do(t, "POST", "/api/v1/workflows", `{"flow":{"group":[]}}`); r.status != 400 || r.errCode(t) != "invalid_argument" {
		t.Fatalf("empty group: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "POST", "/api/v1/workflows/"+id+"/cancel", nil); r.status != 409 {
		t.Fatalf("cancel finished: %d %s", r.status, r.body)
	}
	if r := ts.do(t, "GET", "/api/v1/workflows/nope", nil); r.status != 404 {
		t.Fatalf("get absent: %d %s", r.status, r.body)
	}
}
