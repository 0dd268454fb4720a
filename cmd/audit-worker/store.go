package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"time"

	"github.com/spf13/cobra"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/pipeline"
)

// cliStore is what both stores offer the operator commands.
type cliStore interface {
	audit.EventStore
	audit.EventReader
	audit.KeyStore
	audit.ExportStore
}

// cliEnv is what an operator command works with: the configured store, and
// a processor on it that records the command's own accesses.
type cliEnv struct {
	cfg   config.Config
	store cliStore
	log   *slog.Logger
	proc  *pipeline.Processor
}

// withStore opens the configured store (migrating it, as the worker would)
// for the length of fn.
func withStore(cmd *cobra.Command, configPath string, fn func(ctx context.Context, env *cliEnv) error) error {
	ctx := cmd.Context()
	lc, err := loadConfig(ctx, configPath)
	if err != nil {
		return err
	}
	quiet := lc.cfg // an operator's command says what it did, not every step of opening the store
	if quiet.Logging.Level == "info" || quiet.Logging.Level == "debug" {
		quiet.Logging.Level = "warn"
	}
	log, _, err := newLogger(quiet, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	opened, _, err := openStore(ctx, lc.cfg, log)
	if err != nil {
		return err
	}
	defer opened.Close()
	store, ok := opened.(cliStore)
	if !ok {
		return fmt.Errorf("the configured store cannot serve this command")
	}
	env := &cliEnv{cfg: lc.cfg, store: store, log: log,
		proc: pipeline.NewProcessor(store, pipeline.Config{Rules: lc.cfg.Rules(), HMACKey: []byte(lc.cfg.Security.EncryptionKey)})}
	return fn(ctx, env)
}

// cliPrincipal names the operator who runs a command, for access records:
// the OS user on this host.
func cliPrincipal() audit.Principal {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return audit.Principal{ID: "cli:" + name + "@" + host, Name: name, Role: audit.RoleAdmin,
		Organizations: []string{audit.AllOrganizations}}
}

// record stores an access record of the command now, through the pipeline;
// a failure to record is reported, not ignored.
func (env *cliEnv) record(ctx context.Context, a access.Access) error {
	a.Principal = cliPrincipal()
	if a.Details == nil {
		a.Details = map[string]any{}
	}
	a.Details["via"] = "audit-worker CLI"
	outcomes, err := env.proc.Process(ctx, access.Inputs(a, time.Now()))
	if err != nil {
		return fmt.Errorf("record the access: %w", err)
	}
	for _, o := range outcomes {
		if o.Status == pipeline.StatusRejected {
			return fmt.Errorf("record the access: refused: %s", o.Message)
		}
	}
	return nil
}
