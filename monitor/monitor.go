package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/pipeline"
)

// Monitor runs the suspicious-pattern detectors on every batch the pipeline
// made durable. It is a pipeline.Observer and safe for concurrent batches.
type Monitor struct {
	cfg          atomic.Pointer[settings]
	state        State
	raiser       raiser
	m            *metrics
	log          *slog.Logger
	now          func() time.Time
	stateTimeout time.Duration
	raiseTimeout time.Duration
}

// Options are a Monitor's collaborators.
type Options struct {
	State    State            // required: NewMemoryState or NewRedisState
	Alerts   audit.AlertStore // required
	Notifier Notifier         // optional: told of newly created alerts
	Logger   *slog.Logger     // nil: discard
	// Registerer receives the metrics; nil: not registered.
	Registerer prometheus.Registerer
	Now        func() time.Time // nil: time.Now; the clock late events are judged by
	// StateTimeout bounds the state call of one batch (default 1s), RaiseTimeout
	// all of its alerts together (default 2s): a slow Redis or alert store
	// delays a batch at most this long.
	StateTimeout, RaiseTimeout time.Duration
	// FoldInterval, when positive, bounds how often one key's repeats are
	// written to the alert store (see folder); Run writes the folded repeats.
	// Zero writes every repeat at once.
	FoldInterval time.Duration
}

var _ pipeline.EarlyObserver = (*Monitor)(nil)

// ObserveEarly is ObserveBatch started while the store writes the batch (see
// pipeline.EarlyObserver): the detectors need only the valid events and their
// idempotency keys, which are known before the commit, and counting by key
// makes a batch that is stored only on a later attempt count once. Overlapping
// the Redis call with the store keeps it off the batch's critical path.
func (m *Monitor) ObserveEarly(ctx context.Context, r *pipeline.BatchReport) { m.ObserveBatch(ctx, r) }

// New returns a Monitor with the given detector configuration.
func New(cfg Config, o Options) (*Monitor, error) {
	if o.State == nil || o.Alerts == nil {
		return nil, errors.New("monitor: State and Alerts are required")
	}
	s, err := compile(cfg)
	if err != nil {
		return nil, err
	}
	r, err := newRaiser(SourcePatternDetector, o.Alerts, o.Notifier, o.Logger, o.Registerer)
	if err != nil {
		return nil, err
	}
	m := &Monitor{
		state:        o.State,
		raiser:       r,
		m:            r.m,
		log:          r.log,
		now:          o.Now,
		stateTimeout: cmp.Or(o.StateTimeout, time.Second),
		raiseTimeout: cmp.Or(o.RaiseTimeout, 2*time.Second),
	}
	if m.now == nil {
		m.now = time.Now
	}
	if o.FoldInterval > 0 {
		m.raiser.fold, m.raiser.now = newFolder(o.FoldInterval), m.now
	}
	if rs, ok := o.State.(*RedisState); ok && o.Registerer != nil {
		if err := registerLogStats(o.Registerer, rs); err != nil {
			return nil, err
		}
	}
	m.cfg.Store(s)
	return m, nil
}

// Run writes folded alert repeats as they fall due until ctx ends, then writes
// what is still pending (within RaiseTimeout). Without FoldInterval it only
// waits for ctx.
func (m *Monitor) Run(ctx context.Context) {
	if m.raiser.fold == nil {
		<-ctx.Done()
		return
	}
	tick := time.NewTicker(max(m.raiser.fold.every/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			rctx, cancel := context.WithTimeout(ctx, m.raiseTimeout)
			m.raiser.flush(rctx, false)
			cancel()
		case <-ctx.Done():
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), m.raiseTimeout)
			m.raiser.flush(rctx, true)
			cancel()
			return
		}
	}
}

// SetConfig replaces the detectors' configuration (a config reload); an
// invalid one is refused and the running one kept. Windows already counted
// stay: a changed threshold or window applies from the next batch on.
func (m *Monitor) SetConfig(cfg Config) error {
	s, err := compile(cfg)
	if err != nil {
		return err
	}
	m.cfg.Store(s)
	return nil
}

// detection is a condition found in a batch; repeats of one DedupKey within a
// batch are merged into the latest (n counts them). It holds the op by value
// and what raising needs of the event, so that a folded repeat (see folder)
// can outlive the batch.
type detection struct {
	s   *settings
	op  op
	res result
	n   int
	// Of the event: its organization, correlation id, action and time.
	org, correlation, action string
	observed                 time.Time
}

func newDetection(s *settings, o *op, r result, n int) detection {
	return detection{s: s, op: *o, res: r, n: n,
		org: o.ev.OrganizationID, correlation: o.ev.CorrelationID, action: o.ev.Action, observed: o.ev.Time}
}

// ObserveBatch counts the batch's accepted events in the detectors' windows
// and raises an alert condition for every DedupKey whose window reached its
// threshold. Failures are logged and counted; the batch never fails.
func (m *Monitor) ObserveBatch(ctx context.Context, r *pipeline.BatchReport) {
	if r == nil || len(r.Accepted) == 0 {
		return
	}
	start := time.Now()
	defer func() { m.m.batch.Observe(time.Since(start).Seconds()) }()
	// The detectors are a bystander of the pipeline: a bug in them must not
	// take the worker (and so the storing of events) down. With the shared
	// log, a panic on some entry would otherwise stop every replica in turn.
	defer func() {
		if p := recover(); p != nil {
			m.m.panics.Inc()
			m.log.ErrorContext(ctx, "pattern detectors failed on a batch; its events are stored but not evaluated",
				"events", len(r.Accepted), "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		}
	}()

	s := m.cfg.Load()
	now := m.now()
	// Most events make at most one op (a failed login two): room for one
	// each spares the growing of a slice of large elements.
	mt := matcher{s: s, now: now, ops: make([]op, 0, len(r.Accepted))}
	for i := range r.Accepted {
		if a := &r.Accepted[i]; a.Event != nil {
			mt.match(a.Key, a.Event)
		}
	}
	m.m.evaluated.Add(float64(len(r.Accepted)))
	for p, n := range mt.late {
		m.m.late.WithLabelValues(string(p)).Add(float64(n))
	}
	if len(mt.ops) == 0 {
		return
	}
	// In event-time order a batch's bursts are seen as they happened.
	mt.ops = byEventTime(mt.ops)

	sctx, cancel := context.WithTimeout(ctx, m.stateTimeout)
	res, evicted, err := m.state.apply(sctx, now.UnixMilli(), s.MaxTrackedKeys, mt.ops)
	cancel()
	if err != nil {
		m.m.stateErrors.Inc()
		m.log.WarnContext(ctx, "pattern detectors skipped a batch", "events", len(r.Accepted), "err", err)
		return
	}
	if evicted > 0 {
		m.m.capHits.Add(float64(evicted))
		m.log.WarnContext(ctx, "pattern detectors dropped tracked keys at the cap",
			"dropped", evicted, "max_tracked_keys", s.MaxTrackedKeys)
	}

	var found []detection
	var byKey map[string]int
	for i := range res {
		o := &mt.ops[i]
		if !res[i].added || res[i].count < o.threshold {
			continue
		}
		m.m.detected.WithLabelValues(string(o.pattern)).Inc()
		if byKey == nil {
			byKey = make(map[string]int)
		}
		if j, ok := byKey[o.dedupKey]; ok {
			found[j] = newDetection(s, o, res[i], found[j].n+1)
			continue
		}
		byKey[o.dedupKey] = len(found)
		found = append(found, newDetection(s, o, res[i], 1))
	}
	if len(found) == 0 {
		return
	}
	conds := make([]audit.AlertCondition, 0, len(found))
	for i := range found {
		d, occurrences := &found[i], int64(1)
		if f := m.raiser.fold; f != nil {
			var held bool
			if d, occurrences, held = f.hold(d, m.now()); held {
				m.m.folded.Inc()
				continue
			}
		}
		c := condition(d)
		if occurrences > 1 {
			c.Occurrences = occurrences
		}
		conds = append(conds, c)
	}
	if len(conds) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, m.raiseTimeout)
	defer cancel()
	m.raiser.raiseAll(rctx, conds)
}

// byEventTime puts ops in event-time order, ops of one time in the order
// given (a stable sort), and returns them. It sorts small (time, position)
// pairs and moves each op once, in place: ops are large, and a stable sort
// of them moved each many times.
func byEventTime(ops []op) []op {
	sorted := true
	for i := 1; i < len(ops) && sorted; i++ {
		sorted = ops[i-1].at <= ops[i].at
	}
	if sorted {
		return ops
	}
	type place struct {
		at int64
		i  int
	}
	order := make([]place, len(ops))
	for i := range ops {
		order[i] = place{ops[i].at, i}
	}
	slices.SortFunc(order, func(a, b place) int { return cmp.Or(cmp.Compare(a.at, b.at), cmp.Compare(a.i, b.i)) })
	// Position j takes the op at order[j].i: follow each cycle of that
	// permutation with one op in hand, marking the places done.
	for start := range order {
		if order[start].i < 0 || order[start].i == start {
			continue
		}
		held, j := ops[start], start
		for {
			from := order[j].i
			order[j].i = -1
			if from == start {
				ops[j] = held
				break
			}
			ops[j], j = ops[from], from
		}
	}
	return ops
}
