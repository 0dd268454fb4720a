package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/queueworker"
)

func newDLQCommand(configPath *string) *cobra.Command {
	dlq := &cobra.Command{
		Use:   "dlq",
		Short: "Inspect the dead-letter queue and redrive its entries",
		Long: `The dead-letter queue (reliableProcessor.deadLetterConfig.queueName on Redis) holds
every event that was refused, as a "dead-letter-event" job with the original's
payload shape plus a reasonCode (validation_failed, integrity_violation) and the
field errors. After the producer or the configuration is fixed, redrive moves
entries back to the main queue; each redriven event is stored exactly once.`,
	}
	var reason string
	var limit int
	withQueues := func(cmd *cobra.Command, fn func(ctx context.Context, out io.Writer, main, dead *bullmq.Queue) error) error {
		lc, err := loadConfig(cmd.Context(), *configPath)
		if err != nil {
			return err
		}
		cfg := lc.cfg
		if !cfg.UsesRedis() {
			return fmt.Errorf("no Redis configured (redis.host, redis.url or redis.clusterNodes): the dead-letter queue lives there")
		}
		rdb, err := newRedisClient(cfg)
		if err != nil {
			return err
		}
		defer rdb.Close()
		main, dead := queues(rdb, cfg)
		return fn(cmd.Context(), cmd.OutOrStdout(), main, dead)
	}

	list := &cobra.Command{
		Use:   "list",
		Short: "List waiting dead-letter entries, oldest first",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withQueues(cmd, func(ctx context.Context, out io.Writer, _, dead *bullmq.Queue) error {
				entries, err := queueworker.ListDeadLetters(ctx, dead, reason, limit)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tDEAD-LETTERED\tREASON\tORIGINAL JOB\tFAILURE")
				for _, e := range entries {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s:%s\t%s\n", e.JobID, time.UnixMilli(e.Timestamp).UTC().Format(time.RFC3339),
						e.Payload.ReasonCode, e.Payload.OriginalQueueName, e.Payload.OriginalJobID, truncate(e.Payload.FailureReason, 100))
				}
				return tw.Flush()
			})
		},
	}
	show := &cobra.Command{
		Use:   "show ID",
		Short: "Print one dead-letter entry as JSON",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withQueues(cmd, func(ctx context.Context, out io.Writer, _, dead *bullmq.Queue) error {
				e, err := queueworker.GetDeadLetter(ctx, dead, args[0])
				if err != nil {
					return err
				}
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(e.Payload)
			})
		},
	}
	redrive := &cobra.Command{
		Use:   "redrive",
		Short: "Move dead-letter entries back to the main queue (after a fix)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withQueues(cmd, func(ctx context.Context, out io.Writer, main, dead *bullmq.Queue) error {
				entries, err := queueworker.ListDeadLetters(ctx, dead, reason, limit)
				if err != nil {
					return err
				}
				n, err := queueworker.Redrive(ctx, dead, main, entries)
				fmt.Fprintf(out, "redrove %d of %d entries to %s\n", n, len(entries), main.Keys().Base())
				return err
			})
		},
	}
	for _, c := range []*cobra.Command{list, redrive} {
		c.Flags().StringVar(&reason, "reason", "", "only entries with this reason code (validation_failed, integrity_violation)")
		c.Flags().IntVar(&limit, "limit", 100, "at most this many entries (0: all)")
	}
	dlq.AddCommand(list, show, redrive)
	return dlq
}

func truncate(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n]) + "…"
	}
	return s
}
