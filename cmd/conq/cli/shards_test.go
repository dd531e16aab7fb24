package cli

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
)

// TestShardsCommand: conq shards sets a queue's shard count on a Redis
// Cluster, prints each shard on its own master, and conq inspect shows
// the queue once with --shards detail.
func TestShardsCommand(t *testing.T) {
	url := testenv.RedisClusterURL(t)
	c := testenv.RedisClusterClient(t)
	t.Setenv(prefixEnv, testenv.UniquePrefix(t, c))
	t.Setenv(brokerEnv, "")
	ctx := queueCtx(t, 30*time.Second)
	r := queueRun(t, ctx, "", "shards", "--broker", url, "hot", "3")
	if r.code != 0 || !strings.Contains(r.stdout, "queue hot has 3 shards") {
		t.Fatalf("conq shards hot 3: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	r = queueRun(t, ctx, "", "shards", "--broker", url, "--json", "hot")
	var out struct {
		Count  int `json:"count"`
		Shards []struct {
			Node string `json:"node"`
		} `json:"shards"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &out); err != nil || out.Count != 3 || len(out.Shards) != 3 {
		t.Fatalf("conq shards --json: %v, %q", err, r.stdout)
	}
	nodes := map[string]bool{}
	for _, s := range out.Shards {
		nodes[s.Node] = true
	}
	if len(nodes) != 3 {
		t.Fatalf("shards on nodes %v, want 3 distinct masters", nodes)
	}
	if r := queueRun(t, ctx, "", "shards", "--broker", url, "hot", "2"); r.code == 0 || !strings.Contains(r.stderr, "only grows") {
		t.Fatalf("lowering: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := queueRun(t, ctx, "", "shards", "--broker", url, "hot", "0"); r.code != 2 {
		t.Fatalf("0 shards: exit %d, stderr %q", r.code, r.stderr)
	}
	r = queueRun(t, ctx, "", "inspect", "--broker", url, "queues", "--shards")
	if r.code != 0 || strings.Count(r.stdout, "\nhot ") != 1 || !strings.Contains(r.stdout, "SHARD") {
		t.Fatalf("inspect queues --shards: exit %d, stdout %q", r.code, r.stdout)
	}
	// The embedded broker has nothing to spread over.
	if r := queueRun(t, ctx, "", "shards", "hot", "2"); r.code == 0 {
		t.Fatalf("shards without --broker: exit 0, stdout %q", r.stdout)
	}
}
