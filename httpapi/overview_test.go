package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/health"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/sqlite"
	"github.com/smartlogs/audit-worker/telemetry"
)

// settable is a clock for the metrics' windows.
type settable struct {
	mu  sync.Mutex
	now time.Time
}

func (c *settable) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *settable) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// busyMetrics are metrics that saw 20,000 events a second, in batches of
// 1,000, for the last 15 minutes up to now.
func busyMetrics(now time.Time) *telemetry.Metrics {
	clk := &settable{now: now.Add(-15 * time.Minute)}
	m := telemetry.NewMetrics(telemetry.MetricsOptions{Now: clk.Now})
	inputs := make([]pipeline.Input, 1000)
	accepted := make([]pipeline.AcceptedEvent, 1000)
	for i := range inputs {
		accepted[i] = pipeline.AcceptedEvent{Input: i, Stored: true, Seq: int64(i + 1)}
	}
	for sec := 15 * 60; sec > 0; sec-- {
		at := now.Add(-time.Duration(sec) * time.Second)
		for b := range 20 {
			t := at.Add(time.Duration(b) * 50 * time.Millisecond)
			clk.set(t)
			for i := range inputs {
				inputs[i] = pipeline.Input{Source: "http", ReceivedAt: t.Add(-time.Duration(5+i%40) * time.Millisecond)}
			}
			m.ObserveBatch(context.Background(), &pipeline.BatchReport{Inputs: inputs, Accepted: accepted, CommittedAt: t,
				Stages: pipeline.StageTimes{Validate: 3 * time.Millisecond, Verify: 2 * time.Millisecond, Store: 20 * time.Millisecond}})
		}
	}
	clk.set(now)
	return m
}

// BenchmarkOverviewMessage is what one open console costs the worker each
// second: the overview computed afresh (dashboard over a full window, health
// checks run, the scope's open alerts counted in the store, the dead letters
// counted every fifth time as the 5 s cache does) and encoded. One message a
// second at N ns/op is N/1e7 % of a core.
func BenchmarkOverviewMessage(b *testing.B) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "audit.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	for i := range 200 {
		_, err := store.RaiseAlert(ctx, audit.AlertCondition{OrganizationID: fmt.Sprintf("org-%d", i%5), Type: audit.AlertSecurity,
			Severity: audit.Severities[i%len(audit.Severities)], DedupKey: fmt.Sprint("bench:", i), Title: "t", Source: "bench", ObservedAt: time.Now()})
		if err != nil {
			b.Fatal(err)
		}
	}
	m := busyMetrics(time.Now())
	checker := health.NewChecker(health.Options{TTL: -1})
	checker.Add("database", health.Database(store))
	d := telemetry.NewDashboard(telemetry.DashboardOptions{Metrics: m,
		Alerts: func(ctx context.Context) (audit.AlertStatistics, error) {
			return store.AlertStatistics(ctx, audit.AlertFilter{})
		}})
	s := New(Options{Auth: sessionAuth(), Health: HealthOptions{Checker: checker}, Alerts: AlertOptions{Store: store},
		Metrics: MetricsOptions{Dashboard: d}, Console: ConsoleOptions{Overview: m, DeadLetterUsage: store}})
	defer s.Close()
	p := audit.Principal{ID: "key:bench", Role: audit.RoleOperator, Organizations: []string{audit.AllOrganizations}}
	first := s.overviewFor(ctx, p, new(int64))
	if first.Series == nil || len(first.Series.Received) != seriesSeconds || first.Latency.Samples == 0 {
		b.Fatalf("the metrics are not full: %+v", first.Latency)
	}
	bytes := 0
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		s.streams.sharedAt, s.streams.alerts = time.Time{}, map[string]cachedAlerts{}
		if i%5 == 0 {
			s.streams.deadAt = time.Time{}
		}
		sent := first.Series.End - 1
		data, err := json.Marshal(s.overviewFor(ctx, p, &sent))
		if err != nil {
			b.Fatal(err)
		}
		bytes = len(data)
	}
	b.ReportMetric(float64(bytes), "bytes/msg")
}
