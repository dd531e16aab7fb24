package redis

import (
	"context"
	"errors"
	"sync"

	"github.com/conqhq/conq/queue/broker"
)

// wfTagCacheSize bounds the workflow shard cache: two generations of at
// most this many entries each.
const wfTagCacheSize = 8192

// wfTags caches workflow ID -> shard tag, from CreateWorkflow and from the
// global index, so that reading or waiting for a workflow this process
// created or read before costs its script alone, not an HGET of the index
// first (a chord's POST and then its result wait: one round trip of two).
// A workflow never changes shard, so an entry is only stale when its
// workflow was removed (Cleanup) and the ID created again elsewhere:
// withWorkflowTag then finds nothing in the cached shard and asks the
// index. Two generations: a full current map becomes the old one, and an
// old entry read is brought forward, so the recently used stay. The zero
// value is ready.
type wfTags struct {
	mu       sync.Mutex
	cur, old map[string]string
}

func (c *wfTags) get(id string) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t, ok := c.cur[id]; ok {
		return t, true
	}
	t, ok := c.old[id]
	if ok {
		c.putLocked(id, t)
	}
	return t, ok
}

func (c *wfTags) put(id, tag string) {
	c.mu.Lock()
	c.putLocked(id, tag)
	c.mu.Unlock()
}

func (c *wfTags) putLocked(id, tag string) {
	if c.cur == nil || len(c.cur) >= wfTagCacheSize {
		c.old, c.cur = c.cur, make(map[string]string, 64)
	}
	c.cur[id] = tag
}

func (c *wfTags) drop(id string) {
	c.mu.Lock()
	delete(c.cur, id)
	delete(c.old, id)
	c.mu.Unlock()
}

// withWorkflowTag runs fn with the tag of workflow id's shard: the cached
// one if any, and if fn then finds no such workflow there (ErrTaskNotFound),
// once more with the index's (the cache was stale), as it would have
// without the cache.
func (b *Broker) withWorkflowTag(ctx context.Context, id string, fn func(tag string) error) error {
	if tag, ok := b.wfTags.get(id); ok {
		err := fn(tag)
		if !errors.Is(err, broker.ErrTaskNotFound) {
			return err
		}
		b.wfTags.drop(id)
	}
	tag, err := b.workflowTag(ctx, id)
	if err != nil {
		return err
	}
	return fn(tag)
}
