package monitor

import (
	"context"
	"log/slog"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	audit "github.com/smartlogs/audit-worker"
)

// Notifier pushes a newly created alert out (a webhook, a chat). It is called
// only when RaiseAlert created the alert, not for repeats that updated it.
// Notify runs on the caller's path with a short deadline: it must return
// quickly, queueing the delivery if that takes longer (and then not using ctx).
type Notifier interface {
	Notify(ctx context.Context, a audit.Alert)
}

// raiser hands conditions to the alert store and new alerts to the notifier.
type raiser struct {
	store    audit.AlertStore
	notifier Notifier
	source   string
	log      *slog.Logger
	m        *metrics
	fold     *folder          // nil: every condition is written at once
	now      func() time.Time // for fold
}

// newRaiser builds the raiser of one source with its metrics, on reg when set,
// and its logger (discarding when nil).
func newRaiser(source string, store audit.AlertStore, n Notifier, log *slog.Logger, reg prometheus.Registerer) (raiser, error) {
	met, err := newMetrics(reg)
	if err != nil {
		return raiser{}, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return raiser{store: store, notifier: n, source: source, log: log, m: met}, nil
}

// raise reports whether the store took the condition; a failure is logged
// and counted, never returned: alerting must not fail the work that observed
// it.
func (r *raiser) raise(ctx context.Context, c audit.AlertCondition) bool {
	c.Source = r.source
	return r.raiseHeld(ctx, c)
}

// raiseAll raises the conditions of one batch (see writeAll); the folding of
// repeats is the caller's (see folder).
func (r *raiser) raiseAll(ctx context.Context, cs []audit.AlertCondition) {
	for i := range cs {
		cs[i].Source = r.source
	}
	r.writeAll(ctx, cs)
}

// maxRaiseBatch bounds the conditions of one store transaction: PostgreSQL
// takes a lock per key, and its lock table is shared and finite.
const maxRaiseBatch = 256

// writeAll writes conditions whose Source is set. A store that takes
// them in one transaction gets them so (in chunks of maxRaiseBatch): at night
// a batch raises an off-hours alert for each principal, and the folded
// repeats of thousands of them fall due together; a transaction each cost
// more than storing the events. If a transaction fails, each of its
// conditions is written on its own, so one the store refuses does not cost
// the others.
func (r *raiser) writeAll(ctx context.Context, todo []audit.AlertCondition) {
	bs, ok := r.store.(audit.AlertBatchStore)
	if !ok || len(todo) < 2 {
		for _, c := range todo {
			r.raiseHeld(ctx, c)
		}
		return
	}
	for len(todo) > 0 {
		chunk := todo[:min(len(todo), maxRaiseBatch)]
		todo = todo[len(chunk):]
		res, err := bs.RaiseAlerts(ctx, chunk)
		if err != nil {
			r.log.WarnContext(ctx, "raising alerts together failed; raising them one by one",
				"conditions", len(chunk), "err", err)
			for _, c := range chunk {
				r.raiseHeld(ctx, c)
			}
			continue
		}
		low := 0
		for i, c := range chunk {
			if r.recorded(ctx, c, res[i], true) {
				low++
			}
			r.wrote(c)
		}
		if low > 0 {
			r.log.InfoContext(ctx, "low-severity alerts raised", "alerts", low, "source", r.source)
		}
	}
}

// raiseHeld writes a condition whose Source is set.
func (r *raiser) raiseHeld(ctx context.Context, c audit.AlertCondition) bool {
	if !r.write(ctx, c) {
		return false
	}
	r.wrote(c)
	return true
}

func (r *raiser) wrote(c audit.AlertCondition) {
	if r.fold != nil {
		r.fold.wrote(c.DedupKey, r.now())
	}
}

// flush writes the folded repeats that are due (all of them when all is set).
func (r *raiser) flush(ctx context.Context, all bool) {
	if r.fold == nil {
		return
	}
	r.raiseAll(ctx, r.fold.due(r.now(), all))
}

func (r *raiser) write(ctx context.Context, c audit.AlertCondition) bool {
	res, err := r.store.RaiseAlert(ctx, c)
	if err != nil {
		r.m.raiseFailures.WithLabelValues(r.source).Inc()
		r.log.WarnContext(ctx, "raise alert failed", "dedup_key", c.DedupKey, "severity", c.Severity, "err", err)
		return false
	}
	r.recorded(ctx, c, res, false)
	return true
}

// recorded counts and logs what the store did with c, and notifies a new
// alert. With batched set, a new LOW alert is logged at debug level only, and
// reported (true) for the batch's one summary line: at night every
// principal's first read opens an off-hours alert, thousands a second, and
// a line each would flood the log (the alerts are in the store and its API).
func (r *raiser) recorded(ctx context.Context, c audit.AlertCondition, res audit.AlertRaise, batched bool) (quiet bool) {
	r.m.raised.WithLabelValues(r.source, strconv.FormatBool(res.Created)).Inc()
	if !res.Created {
		return false
	}
	level := slog.LevelInfo
	if batched && c.Severity == audit.SeverityLow {
		level, quiet = slog.LevelDebug, true
	}
	r.log.Log(ctx, level, "alert raised", "alert_id", res.Alert.ID, "dedup_key", c.DedupKey,
		"severity", c.Severity, "title", c.Title)
	if r.notifier != nil {
		r.notifier.Notify(ctx, res.Alert)
	}
	return quiet
}
