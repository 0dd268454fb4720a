package main

import (
	"context"
	"log/slog"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/telemetry"
)

// deadLetterPruneInterval is how often the dead letters are brought back
// within their quota and retention. Each pass reads every dead letter's
// size, so it runs minutes apart, not per batch.
const deadLetterPruneInterval = 5 * time.Minute

// deadLetterPruner keeps the store's dead letters within the configured quota
// and retention, and reports them to the metrics.
type deadLetterPruner struct {
	store   audit.DeadLetterMaintainer
	limits  audit.DeadLetterLimits
	metrics *telemetry.Metrics // nil without metrics
	log     *slog.Logger
}

func deadLetterLimits(cfg config.Config) audit.DeadLetterLimits {
	dl := cfg.Storage.DeadLetters
	return audit.DeadLetterLimits{MaxEntries: int64(dl.MaxEntries), MaxBytes: dl.MaxBytes, Retention: cfg.DeadLetterRetention()}
}

// newDeadLetterPruner returns the pruner of store's dead letters, or nil when
// the store keeps no dead letters of its own.
func newDeadLetterPruner(cfg config.Config, store audit.EventStore, metrics *telemetry.Metrics, log *slog.Logger) *deadLetterPruner {
	m, ok := store.(audit.DeadLetterMaintainer)
	if !ok {
		return nil
	}
	return &deadLetterPruner{store: m, limits: deadLetterLimits(cfg), metrics: metrics, log: log}
}

// run runs a pass now and then every interval until ctx ends; a failed pass
// is logged and the next one tries again, so it only returns when ctx ends.
func (p *deadLetterPruner) run(ctx context.Context, interval time.Duration) error {
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		p.prune(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		}
	}
}

// prune runs one pass; a failure is logged and the next pass tries again.
func (p *deadLetterPruner) prune(ctx context.Context) {
	res, err := p.store.PruneDeadLetters(ctx, p.limits, time.Now())
	if err != nil {
		if ctx.Err() == nil {
			p.log.Warn("prune dead letters", "err", err)
		}
		return
	}
	if res.ByQuota+res.ByRetention > 0 {
		p.log.Warn("dead letters pruned", "byQuota", res.ByQuota, "byRetention", res.ByRetention,
			"left", res.Left.Entries, "leftBytes", res.Left.Bytes,
			"maxEntries", p.limits.MaxEntries, "maxBytes", p.limits.MaxBytes, "retention", p.limits.Retention.String())
	}
	if p.metrics != nil {
		p.metrics.DeadLettersPruned(res.ByQuota, res.ByRetention)
		p.metrics.SetDeadLetterUsage(res.Left.Entries, res.Left.Bytes)
	}
}
