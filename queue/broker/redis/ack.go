package redis

import (
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/conqhq/conq/queue/broker"
)

// Complete finishes tasks: one script call per shard (and chunk), pipelined.
func (b *Broker) Complete(ctx context.Context, acks ...broker.Ack) error {
	if err := b.check(); err != nil {
		return err
	}
	if len(acks) == 0 {
		return nil
	}
	now := b.cfg.Clock.Now()
	refs := make([]broker.LeaseRef, len(acks))
	for i := range acks {
		refs[i] = acks[i].LeaseRef
	}
	head := []any{strconv.FormatInt(nanos(now), 10), strconv.FormatInt(millis(now), 10)}
	calls, idx, err := b.groupLeases(ctx, refs, scriptComplete, now, head, func(i int) []any {
		return []any{acks[i].ID, strconv.FormatUint(acks[i].Token, 10), acks[i].Result, resultForms(acks[i].Result)}
	})
	if err != nil {
		return wrapErr("complete", err)
	}
	if err := b.runScripts(ctx, calls, nil); err != nil {
		return wrapErr("complete", err)
	}
	b.crossSlot(ctx, crossTags(b.cfg.Prefix, calls))
	return itemResults("complete", refs, calls, idx)
}

// Fail ends attempts with errors.
func (b *Broker) Fail(ctx context.Context, failures ...broker.Failure) error {
	if err := b.check(); err != nil {
		return err
	}
	if len(failures) == 0 {
		return nil
	}
	now := b.cfg.Clock.Now()
	refs := make([]broker.LeaseRef, len(failures))
	for i := range failures {
		refs[i] = failures[i].LeaseRef
	}
	head := []any{strconv.FormatInt(millis(now), 10), cancelRecord(now, "cancelled while running"), strconv.FormatInt(nanos(now), 10)}
	calls, idx, err := b.groupLeases(ctx, refs, scriptFail, now, head, func(i int) []any {
		f := &failures[i]
		at := int64(0)
		if !f.RetryAt.IsZero() {
			at = millis(f.RetryAt)
		}
		dead := "0"
		if f.Dead {
			dead = "1"
		}
		return []any{f.ID, strconv.FormatUint(f.Token, 10), encodeError(f.Error, now), strconv.FormatInt(at, 10), dead}
	})
	if err != nil {
		return wrapErr("fail", err)
	}
	if err := b.runScripts(ctx, calls, nil); err != nil {
		return wrapErr("fail", err)
	}
	b.crossSlot(ctx, crossTags(b.cfg.Prefix, calls))
	return itemResults("fail", refs, calls, idx)
}

// Requeue gives active tasks back to pending, behind those waiting.
func (b *Broker) Requeue(ctx context.Context, leases ...broker.LeaseRef) error {
	if err := b.check(); err != nil {
		return err
	}
	if len(leases) == 0 {
		return nil
	}
	now := b.cfg.Clock.Now()
	head := []any{strconv.FormatInt(millis(now), 10), cancelRecord(now, "cancelled while running; the worker gave the task back"), strconv.FormatInt(nanos(now), 10)}
	calls, idx, err := b.groupLeases(ctx, leases, scriptRequeue, now, head, func(i int) []any {
		return []any{leases[i].ID, strconv.FormatUint(leases[i].Token, 10)}
	})
	if err != nil {
		return wrapErr("requeue", err)
	}
	if err := b.runScripts(ctx, calls, nil); err != nil {
		return wrapErr("requeue", err)
	}
	b.crossSlot(ctx, crossTags(b.cfg.Prefix, calls))
	return itemResults("requeue", leases, calls, idx)
}

// crossTags returns the shards of settle calls whose reply has a 2 (the
// script left an order or an event for the mover, xslot.go): a cheap scan
// of replies already read.
func crossTags(prefix string, calls []*scriptCall) []string {
	var tags []string
	for _, c := range calls {
		res, _ := c.cmd.Val().([]any) // read in place: no copy per call
		if len(c.keys) == 0 || !slices.ContainsFunc(res, func(v any) bool { n, _ := v.(int64); return n == 2 }) {
			continue
		}
		tags = append(tags, keyTag(prefix, c.keys[0]))
	}
	return tags
}

// keyTag is the hash tag of a shard key "<prefix>:{<tag>}:<suffix>" (the
// prefix and tags hold no '}').
func keyTag(prefix, key string) string {
	rest := key[min(len(prefix)+2, len(key)):]
	tag, _, _ := strings.Cut(rest, "}")
	return tag
}
