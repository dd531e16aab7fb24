package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/conqhq/conq/queue"
	"github.com/conqhq/conq/queue/broker/memory"
	"github.com/conqhq/conq/queue/spec"
)

func init() { addCommand(newSchedulerCmd) }

type schedulerOptions struct {
	broker   string
	config   string
	missed   string
	timezone string
	check    bool
	logJSON  bool
	logLevel string
}

func newSchedulerCmd() *cobra.Command {
	var o schedulerOptions
	cmd := &cobra.Command{
		Use:   "scheduler --broker URL --config FILE",
		Short: "Enqueue periodic tasks from a schedule file (cron specs, @every intervals)",
		Long: `Scheduler enqueues the periodic tasks listed in --config (YAML or JSON)
into the broker's queues at every tick of their specs:

  timezone: Europe/Berlin        # of specs without CRON_TZ=; default UTC
  missed: skip                   # or run_once (see below)
  entries:
    - name: nightly-report       # identifies the entry; default derived
      spec: "0 30 2 * * *"       # sec min hour dom month dow (sec optional)
      kind: report.nightly
      queue: reports
      json: {day: yesterday}     # or payload: raw text
      max_retries: 3
      timeout: 10m
      retention: 1h
    - spec: "@every 30s"
      kind: heartbeat

Specs are cron expressions of 5 fields, or 6 with seconds first, with an
optional CRON_TZ=Zone prefix; @hourly, @daily, @weekly, @monthly, @yearly;
or "@every DURATION" (at least 1s, aligned to the Unix epoch).

Run as many schedulers as you like for availability: every tick is
enqueued exactly once, claimed atomically in the broker. With missed:
skip, ticks that passed while no scheduler ran are dropped; with
run_once, a scheduler that starts after missed ticks enqueues the entry
once. A bad spec or field is reported at start, naming the entry.

SIGTERM or SIGINT stop it. Logs go to stderr.`,
		Example: `  conq scheduler --broker redis://localhost:6379/0 --config schedule.yaml
  conq scheduler --config schedule.yaml --check   # validate and list next ticks`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runScheduler(cmd.Context(), o, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	addBrokerFlag(cmd, &o.broker)
	f.StringVar(&o.config, "config", "", "schedule file (YAML or JSON)")
	f.StringVar(&o.missed, "missed", "", "missed-tick policy, overriding the file's: skip or run_once")
	f.StringVar(&o.timezone, "tz", "", "time zone of specs without CRON_TZ=, overriding the file's (e.g. Europe/Paris)")
	f.BoolVar(&o.check, "check", false, "validate the file, print the entries and their next ticks, and exit")
	f.BoolVar(&o.logJSON, "log-json", false, "log JSON lines instead of text")
	f.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

func runScheduler(ctx context.Context, o schedulerOptions, stdout, stderr io.Writer) error {
	logger, err := newLogger(stderr, o.logLevel, o.logJSON)
	if err != nil {
		return err
	}
	file, err := spec.LoadSchedule(o.config)
	if err != nil {
		return usageError("--config: %v", err)
	}
	cfg, err := file.Config(queue.SchedulerConfig{Logger: logger})
	if err != nil {
		return usageError("--config %s: %v", o.config, err)
	}
	if o.missed != "" {
		if cfg.Missed, err = queue.ParseMissedPolicy(o.missed); err != nil {
			return usageError("--missed: %v", err)
		}
	}
	if o.timezone != "" {
		if cfg.Location, err = time.LoadLocation(o.timezone); err != nil {
			return usageError("--tz %q: %v", o.timezone, err)
		}
	}

	// Validate the file before connecting, against the embedded broker,
	// so a bad entry is reported as such whatever the broker's state.
	check, err := checkSchedule(file, cfg)
	if err != nil {
		return usageError("--config %s: %v", o.config, err)
	}
	if o.check {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSPEC\tKIND\tQUEUE\tNEXT")
		for _, e := range check.Entries() {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.Spec, e.Kind, e.Queue, e.Next.In(cfg.Location).Format(time.RFC3339))
		}
		return tw.Flush()
	}

	b, err := openSharedBroker(ctx, "scheduler", o.broker, logger)
	if err != nil {
		return err
	}
	defer b.Close()
	s, err := queue.NewScheduler(b, cfg)
	if err != nil {
		return failure(err)
	}
	if err := file.Register(s); err != nil {
		return usageError("--config %s: %v", o.config, err)
	}
	for _, e := range s.Entries() {
		logger.Info("conq scheduler: entry", "name", e.Name, "spec", e.Spec, "kind", e.Kind, "queue", e.Queue, "next", e.Next)
	}
	logger.Info("conq scheduler: running", "broker", redactedURL(o.broker), "entries", len(s.Entries()), "missed", cfg.Missed.String(), "timezone", cfg.Location.String())
	if err := s.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return failure(fmt.Errorf("scheduler shutdown: %w", err))
	}
	return nil
}

// checkSchedule registers the file's entries with a scheduler on a
// throwaway embedded broker, which reports any bad entry.
func checkSchedule(file *spec.Schedule, cfg queue.SchedulerConfig) (*queue.Scheduler, error) {
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := queue.NewScheduler(memory.New(memory.Config{}), cfg)
	if err != nil {
		return nil, err
	}
	if err := file.Register(s); err != nil {
		return nil, err
	}
	return s, nil
}
