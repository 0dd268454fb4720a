package main

import (
	"context"
	"log/slog"
	"sync"
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
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

func deadLetterLimits(cfg config.Config) audit.DeadLetterLimits {
	dl := cfg.Storage.DeadLetters
	return audit.DeadLetterLimits{MaxEntries: int64(dl.MaxEntries), MaxBytes: dl.MaxBytes, Retention: cfg.DeadLetterRetention()}
}

// startDeadLetterPruner runs a pass now and then every interval until stop or
// ctx ends; nil when the store keeps no dead letters of its own.
func startDeadLetterPruner(ctx context.Context, cfg config.Config, store audit.EventStore, metrics *telemetry.Metrics, log *slog.Logger) *deadLetterPruner {
	m, ok := store.(audit.DeadLetterMaintainer)
	if !ok {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &deadLetterPruner{store: m, limits: deadLetterLimits(cfg), metrics: metrics, log: log, cancel: cancel}
	p.wg.Add(1)
	go p.run(ctx, deadLetterPruneInterval)
	return p
}

func (p *deadLetterPruner) run(ctx context.Context, interval time.Duration) {
	defer p.wg.Done()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		p.prune(ctx)
		select {
		case <-ctx.Done():
			return
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

// stop ends the loop and waits for a pass in progress; nil-safe.
func (p *deadLetterPruner) stop() {
	if p == nil {
		return
	}
	p.cancel()
	p.wg.Wait()
}
