package queue_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/conqhq/conq/internal/testenv"
	"github.com/conqhq/conq/queue"
	redisbroker "github.com/conqhq/conq/queue/broker/redis"
)

// The Go options check the same ranges (repro: absurd retry counts).
func TestOptionRanges(t *testing.T) {
	e := newEnv(t)
	task := queue.NewTask("k", nil)
	for _, c := range []struct {
		opt  queue.Option
		want string
	}{
		{queue.MaxRetries(1<<63 - 1), "MaxRetries(9223372036854775807): must be in 0..1000000"},
		{queue.MaxRetries(-1), "must be in 0..1000000"},
		{queue.Timeout(-time.Second), "must not be negative"},
		{queue.Timeout(queue.MaxDuration + 1), "over the maximum of 100 years"},
		{queue.ProcessIn(1<<63 - 1), "over the maximum"},
		{queue.Retention(queue.MaxDuration + 1), "over the maximum"},
		{queue.Unique(queue.MaxDuration + 1), "over the maximum"},
		{queue.Deadline(time.Date(2300, 1, 1, 0, 0, 0, 0, time.UTC)), "outside 1970-01-01 to 2200-01-01"},
		{queue.ProcessAt(time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)), "outside 1970-01-01 to 2200-01-01"},
	} {
		_, err := e.client.Enqueue(e.ctx, task, c.opt)
		if !errors.Is(err, queue.ErrInvalidOption) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want ErrInvalidOption mentioning %q", err, c.want)
		}
	}
	if _, err := e.client.Enqueue(e.ctx, task, queue.MaxRetries(queue.MaxRetriesLimit), queue.Timeout(queue.MaxDuration)); err != nil {
		t.Fatalf("the largest values: %v", err)
	}
}

// Repro (issue 8, item 3): a retry count at the top of the range is
// stored in Redis as given; beyond it the task is refused before Redis.
func TestRetriesRangeRedis(t *testing.T) {
	url := testenv.RedisURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	prefix := testenv.UniquePrefix(t, testenv.RedisClient(t))
	b, err := redisbroker.Open(ctx, url, redisbroker.Config{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c, _ := queue.NewClient(b, queue.ClientConfig{})
	info, err := c.Enqueue(ctx, queue.NewTask("k", nil), queue.MaxRetries(queue.MaxRetriesLimit))
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.GetTask(ctx, "", info.ID)
	if err != nil || got.MaxRetries != queue.MaxRetriesLimit {
		t.Fatalf("stored max retries %d, %v", got.MaxRetries, err)
	}
	if _, err := c.Enqueue(ctx, queue.NewTask("k", nil), queue.MaxRetries(1<<63-1)); !errors.Is(err, queue.ErrInvalidOption) {
		t.Fatalf("MaxRetries(MaxInt64): %v", err)
	}
}
