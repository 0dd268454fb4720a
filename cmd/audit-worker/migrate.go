package main

import (
	"log/slog"

	"github.com/spf13/cobra"
)

func newMigrateCommand(configPath *string) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database migrations and create the partitions ahead, then exit",
		Long: `Applies the embedded, versioned migrations to the configured store (PostgreSQL
when enhancedClient.connectionString is set, else the embedded SQLite database)
and, on PostgreSQL, creates the monthly partitions ahead. It is idempotent and
safe to run while workers start: an advisory lock serialises migrations. The
worker also migrates at start-up; this command lets a deploy do it first.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lc, err := loadConfig(cmd.Context(), *configPath)
			if err != nil {
				return err
			}
			cfg := lc.cfg
			log, _, err := newLogger(cfg, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			slog.SetDefault(log)
			ctx := cmd.Context()
			store, desc, err := openStore(ctx, cfg, log)
			if err != nil {
				return err
			}
			defer store.Close()
			log.Info("migrations applied", "store", desc)
			return nil
		},
	}
}
