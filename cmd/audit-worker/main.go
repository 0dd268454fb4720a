// Command audit-worker takes audit events from producers, checks them, and stores
// them durably. Run with no configuration it uses the embedded default: SQLite in
// ./audit-data and HTTP on 127.0.0.1:3001.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel"

	"github.com/smartlogs/audit-worker/config"
)

// defaultGCPercent is the garbage collector's target when GOGC is not set.
// The worker's heap is mostly the batches in flight: made and dropped every
// few milliseconds, over a live set of about 20 MB. At 150 and above a
// drain's peak RSS passes 100 MB (up to 96–103 MiB on the benchmark's
// synthetic events); at 120 it stays at 80–89 MiB, for a few per cent of the
// worker's CPU against 150 (docs/BENCHMARKS.md, "Garbage collector target").
// GOGC and GOMEMLIMIT in the environment still decide.
const defaultGCPercent = 120

// gcPercent is the target main set: defaultGCPercent, or -1 when GOGC decides.
var gcPercent = -1

// gcTarget is the target to set given the environment, -1 for none.
func gcTarget(lookupEnv func(string) (string, bool)) int {
	if _, set := lookupEnv("GOGC"); set {
		return -1
	}
	return defaultGCPercent
}

func main() {
	if gcPercent = gcTarget(os.LookupEnv); gcPercent > 0 {
		debug.SetGCPercent(gcPercent)
	}
	routeLibraryLogs()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "audit-worker:", config.Redact(err.Error()))
		os.Exit(1)
	}
}

// routeLibraryLogs sends what OpenTelemetry and go-redis would print to
// stderr themselves through slog's default logger instead, which the worker
// points at its redacting logger: their messages can quote endpoints and
// connection strings.
func routeLibraryLogs() {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		slog.Default().Warn("OpenTelemetry error", "err", err)
	}))
	redis.SetLogger(redisLogger{})
}

// redisLogger is go-redis's logger on slog's default logger.
type redisLogger struct{}

func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	slog.Default().WarnContext(ctx, "go-redis: "+fmt.Sprintf(format, v...))
}

func newRootCommand() *cobra.Command {
	var configPath string
	root := &cobra.Command{
		Use:   "audit-worker",
		Short: "Store audit events durably, with their integrity verified",
		Long: `audit-worker takes audit events from the producers' BullMQ queue on Redis and
from HTTP (POST /v1/events), validates them, verifies their producer hash and
signature, and stores them exactly once, in batches, in PostgreSQL or, by
default, in an embedded SQLite database.

With no configuration (no --config and no CONFIG_PATH) it runs the embedded
default: SQLite in ./audit-data and HTTP on 127.0.0.1:3001.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorker(cmd.Context(), configPath, cmd.ErrOrStderr())
		},
	}
	root.PersistentFlags().StringVar(&configPath, "config", os.Getenv("CONFIG_PATH"),
		"configuration file (JSON, the original worker's shape); default $CONFIG_PATH")
	run := &cobra.Command{
		Use:   "run",
		Short: "Run the worker (the default command)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runWorker(cmd.Context(), configPath, cmd.ErrOrStderr())
		},
	}
	root.AddCommand(run, newMigrateCommand(&configPath), newEventsCommand(&configPath), newDemoCommand(), newDLQCommand(&configPath), newConfigCommand(&configPath))
	root.AddCommand(newAlertsCommand(&configPath), newKeysCommand(&configPath), newReportCommand(&configPath), newVerifyCommand(&configPath))
	return root
}
