package testenv_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/conqhq/conq/internal/testenv"
)

// TestUniquePrefixCluster writes keys under many hash tags (so on every
// master) and checks that UniquePrefix's cleanup deletes them all.
func TestUniquePrefixCluster(t *testing.T) {
	c := testenv.RedisClusterClient(t)
	ctx := context.Background()
	var prefix string
	t.Run("write", func(t *testing.T) {
		prefix = testenv.UniquePrefix(t, c)
		for i := range 60 {
			if err := c.Set(ctx, fmt.Sprintf("%s:{q%d}:k", prefix, i), "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		var mu sync.Mutex // ForEachMaster calls in parallel
		masters := map[string]bool{}
		_ = c.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
			keys, _, err := n.Scan(ctx, 0, prefix+":*", 1000).Result()
			if err == nil && len(keys) > 0 {
				mu.Lock()
				masters[n.Options().Addr] = true
				mu.Unlock()
			}
			return nil
		})
		if len(masters) < 2 {
			t.Fatalf("60 hash tags landed on %d master(s); the cluster has one master?", len(masters))
		}
	})
	if !strings.HasPrefix(prefix, "conqtest-TestUniquePrefixCluster") {
		t.Fatalf("prefix %q", prefix)
	}
	// The subtest's cleanup has run: nothing is left on any master.
	err := c.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
		var cursor uint64
		for {
			keys, next, err := n.Scan(ctx, cursor, prefix+":*", 1000).Result()
			if err != nil {
				return err
			}
			if len(keys) > 0 {
				return fmt.Errorf("%s still holds %d keys, e.g. %s", n.Options().Addr, len(keys), keys[0])
			}
			if cursor = next; cursor == 0 {
				return nil
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUniquePrefixStandalone is the same on the single test Redis.
func TestUniquePrefixStandalone(t *testing.T) {
	c := testenv.RedisClient(t)
	ctx := context.Background()
	var prefix string
	t.Run("write", func(t *testing.T) {
		prefix = testenv.UniquePrefix(t, c)
		for i := range 10 {
			if err := c.Set(ctx, fmt.Sprintf("%s:{q%d}:k", prefix, i), "v", 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
	})
	keys, _, err := c.Scan(ctx, 0, prefix+":*", 1000).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) > 0 {
		t.Fatalf("%d keys left, e.g. %s", len(keys), keys[0])
	}
}
