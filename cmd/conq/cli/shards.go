package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker"
)

func init() { addCommand(newShardsCmd) }

func newShardsCmd() *cobra.Command {
	var url string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "shards QUEUE [N]",
		Short: "Show a queue's shards, or spread it over N shards",
		Long: `Shards spreads one queue over N shards, each a hash slot of its own, so that
a hot queue uses every master of a Redis Cluster instead of one (the shards
are placed on different masters). Producers place each task by its ID
(unique tasks by their key), workers fetch from every shard in turn, and
conq inspect and the dashboard show the queue as one, with the per-shard
detail. FIFO order holds per shard only.

Without N it prints the shards. The count only grows; other processes
follow within 10 seconds. See docs/scaling.md for choosing N.`,
		Example: `  conq shards --broker redis://node1:6379?addr=node2:6379 default 3
  conq shards --broker redis://node1:6379 default`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			n := 0
			if len(args) == 2 {
				v, err := strconv.Atoi(args[1])
				if err != nil || v < 1 || v > broker.MaxShards {
					return usageError("shard count %q: want a number in 1..%d", args[1], broker.MaxShards)
				}
				n = v
			}
			ctx := cmd.Context()
			return withInspector(ctx, "shards", url, cmd.ErrOrStderr(), func(in *queue.Inspector) error {
				if n > 0 {
					if err := in.SetShards(ctx, name, n); err != nil {
						return err
					}
				}
				q, err := in.Queue(ctx, name)
				if err != nil {
					return err
				}
				if jsonOut {
					return writeJSON(cmd.OutOrStdout(), map[string]any{"queue": q.Name, "count": max(1, len(q.Shards)), "shards": shardList(q)})
				}
				return printShards(cmd.OutOrStdout(), q)
			})
		},
	}
	addBrokerFlag(cmd, &url)
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print JSON")
	return cmd
}

func shardList(q queue.QueueInfo) []queue.ShardInfo {
	if q.Shards == nil {
		return []queue.ShardInfo{}
	}
	return q.Shards
}

// printShards prints a queue's shards as a table: one line per shard, or
// a line saying it has one.
func printShards(w io.Writer, q queue.QueueInfo) error {
	if len(q.Shards) == 0 {
		_, err := fmt.Fprintf(w, "queue %s has 1 shard (unsharded): its keys share the hash tag {%s}\n", q.Name, q.Name)
		return err
	}
	fmt.Fprintf(w, "queue %s has %d shards\n", q.Name, len(q.Shards))
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	writeShardRows(tw, q, "")
	return tw.Flush()
}

// writeShardRows writes a header and one row per shard of q, each row
// starting with indent.
func writeShardRows(tw io.Writer, q queue.QueueInfo, indent string) {
	fmt.Fprint(tw, indent+"SHARD\tTAG\tSLOT\tNODE\tSTATE")
	for _, st := range broker.States {
		fmt.Fprintf(tw, "\t%s", strings.ToUpper(string(st)))
	}
	fmt.Fprintln(tw)
	for _, sh := range q.Shards {
		state := "running"
		if sh.Paused {
			state = "paused"
		}
		node := sh.Node
		if node == "" {
			node = "-"
		}
		fmt.Fprintf(tw, "%s%d\t{%s}\t%d\t%s\t%s", indent, sh.Index, sh.Tag, sh.Slot, node, state)
		for _, st := range broker.States {
			fmt.Fprintf(tw, "\t%d", sh.Counts[st])
		}
		fmt.Fprintln(tw)
	}
}
