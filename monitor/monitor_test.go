package monitor

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/pipeline"
)

func TestFailedAuthThresholdAndBurst(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		h := newHarness(t, st, DefaultConfig())
		// Four failures, one batch each, a different IP each: below both thresholds.
		for i := range 4 {
			h.feed(failedLogin(fmt.Sprintf("k%d", i), "u-42", t0.Add(time.Duration(i)*time.Second)))
		}
		if got := h.alerts.conditions(); len(got) != 0 {
			t.Fatalf("threshold−1 failures raised %v", keysOf(got))
		}
		h.feed(failedLogin("k4", "u-42", t0.Add(4*time.Second)))
		got := h.alerts.conditions()
		if len(got) != 1 {
			t.Fatalf("at threshold: raised %v, want one", keysOf(got))
		}
		c := got[0]
		if c.DedupKey != "FAILED_AUTH:principal:u-42" || c.Type != audit.AlertSecurity || c.Severity != audit.SeverityHigh ||
			c.Title != "Suspicious pattern: FAILED_AUTH" || c.Source != SourcePatternDetector || c.OrganizationID != "org-1" ||
			c.DedupWindow != 5*time.Minute || !c.ObservedAt.Equal(t0.Add(4*time.Second)) || c.CorrelationID != "corr-k4" {
			t.Fatalf("condition %+v", c)
		}
		if !strings.Contains(c.Description, "5 failed authentication attempts") || !strings.Contains(c.Description, "u-42") {
			t.Errorf("description %q", c.Description)
		}
		e := metadata(t, c)
		if e.Pattern != PatternFailedAuth || e.Key != "principal:u-42" || e.Count != 5 || e.Threshold != 5 ||
			e.WindowMs != 300000 || !slices.Equal(e.EventKeys, []string{"k0", "k1", "k2", "k3", "k4"}) ||
			!e.FirstEventAt.Equal(t0) || !e.LastEventAt.Equal(t0.Add(4*time.Second)) || e.Detections != 1 {
			t.Fatalf("evidence %+v", e)
		}
		// The burst goes on: each further event raises the same condition again.
		h.feed(failedLogin("k5", "u-42", t0.Add(5*time.Second)))
		h.feed(failedLogin("k6", "u-42", t0.Add(6*time.Second)))
		got = h.alerts.conditions()
		if len(got) != 3 || got[1].DedupKey != c.DedupKey || got[2].DedupKey != c.DedupKey {
			t.Fatalf("continued burst raised %v", keysOf(got))
		}
		if n := metadata(t, got[2]).Count; n != 7 {
			t.Errorf("third raise counts %d, want 7", n)
		}
		if n := h.alerts.occurrences(c.DedupKey); n != 3 {
			t.Errorf("store merged into %d occurrences, want 3", n)
		}
		if len(h.notes.got) != 1 {
			t.Errorf("notifier told %d times, want once (for the created alert)", len(h.notes.got))
		}
		if v := testutil.ToFloat64(h.m.detected.WithLabelValues("FAILED_AUTH")); v != 3 {
			t.Errorf("patterns detected metric %v, want 3", v)
		}
		if v := testutil.ToFloat64(h.m.raised.WithLabelValues(SourcePatternDetector, "true")); v != 1 {
			t.Errorf("alerts created metric %v, want 1", v)
		}
	})
}

func TestFailedAuthPerSourceIP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		h := newHarness(t, st, DefaultConfig())
		var batch []ev
		for i := range 5 { // five principals, one IP: only the IP reaches the threshold
			e := failedLogin(fmt.Sprintf("k%d", i), fmt.Sprintf("u-%d", i), t0.Add(time.Duration(i)*time.Second))
			e.ip = "203.0.113.9"
			batch = append(batch, e)
		}
		h.feed(batch...)
		if got := keysOf(h.alerts.conditions()); !slices.Equal(got, []string{"FAILED_AUTH:ip:203.0.113.9"}) {
			t.Fatalf("raised %v", got)
		}
	})
}

func TestBurstInOneBatchIsOneRaise(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		h := newHarness(t, st, DefaultConfig())
		var batch []ev
		for i := range 7 {
			batch = append(batch, failedLogin(fmt.Sprintf("k%d", i), "u-1", t0.Add(time.Duration(i)*time.Second)))
		}
		// Out of order within the batch: the monitor sorts by event time.
		slices.Reverse(batch)
		h.feed(batch...)
		got := h.alerts.conditions()
		if len(got) != 1 {
			t.Fatalf("raised %v, want one merged condition", keysOf(got))
		}
		if e := metadata(t, got[0]); e.Count != 7 || e.Detections != 3 || len(e.EventKeys) != 7 {
			t.Fatalf("evidence %+v, want count 7 from 3 detections", e)
		}
	})
}

func TestRedeliveryCountsOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		h := newHarness(t, st, DefaultConfig())
		var first []ev
		for i := range 4 {
			first = append(first, failedLogin(fmt.Sprintf("job:%d", i), "u-7", t0.Add(time.Duration(i)*time.Second)))
		}
		h.feed(first...)
		h.feed(first...) // redelivered after a crash before the ack
		h.feed(first[1], first[3])
		if got := h.alerts.conditions(); len(got) != 0 {
			t.Fatalf("redeliveries counted again: raised %v", keysOf(got))
		}
		fifth := failedLogin("job:4", "u-7", t0.Add(4*time.Second))
		h.feed(fifth)
		h.feed(fifth)
		h.feed(append(first, fifth)...)
		got := h.alerts.conditions()
		if len(got) != 1 {
			t.Fatalf("raised %v, want exactly one", keysOf(got))
		}
		if e := metadata(t, got[0]); e.Count != 5 {
			t.Fatalf("count %d, want 5", e.Count)
		}
	})
}

func TestWindowBoundary(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		h := newHarness(t, st, DefaultConfig())
		h.clock.Set(t0.Add(6 * time.Minute))
		w := 5 * time.Minute
		// u-a: the first failure is exactly window before the fifth: counted.
		// u-b: one millisecond more: it has left the window.
		for i, p := range []string{"u-a", "u-b"} {
			extra := time.Duration(i) * time.Millisecond
			h.feed(failedLogin(p+"0", p, t0))
			for j := 1; j < 4; j++ {
				h.feed(failedLogin(fmt.Sprintf("%s%d", p, j), p, t0.Add(time.Duration(j)*time.Minute)))
			}
			h.feed(failedLogin(p+"4", p, t0.Add(w+extra)))
		}
		if got := keysOf(h.alerts.conditions()); !slices.Equal(got, []string{"FAILED_AUTH:principal:u-a"}) {
			t.Fatalf("raised %v, want only u-a", got)
		}
	})
}

func TestLateEvents(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		cfg := DefaultConfig()
		h := newHarness(t, st, cfg)
		now := t0.Add(time.Hour)
		h.clock.Set(now)
		oldest := now.Add(-cfg.FailedAuth.Window - cfg.LateTolerance) // still counted
		// u-in: all five inside the tolerance, the oldest exactly at its edge.
		for i := range 5 {
			h.feed(failedLogin(fmt.Sprintf("in%d", i), "u-in", oldest.Add(time.Duration(i)*time.Second)))
		}
		// u-out: the first is 1ms too old and is not counted.
		h.feed(failedLogin("out0", "u-out", oldest.Add(-time.Millisecond)))
		for i := 1; i < 5; i++ {
			h.feed(failedLogin(fmt.Sprintf("out%d", i), "u-out", oldest.Add(time.Duration(i)*time.Second)))
		}
		if got := keysOf(h.alerts.conditions()); !slices.Equal(got, []string{"FAILED_AUTH:principal:u-in"}) {
			t.Fatalf("raised %v, want only u-in", got)
		}
		if v := testutil.ToFloat64(h.m.late.WithLabelValues("FAILED_AUTH")); v != 1 {
			t.Errorf("late events metric %v, want 1", v)
		}
	})
}

func TestOutOfOrderArrivalCompletesTheBurst(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		h := newHarness(t, st, DefaultConfig())
		h.clock.Set(t0.Add(time.Minute))
		// The middle event arrives last, in its own batch: it completes a burst
		// that neither [t−w, t] (3 events) nor [t, t+w] (3 events) holds alone.
		// The event a minute after the window makes the span too wide for a
		// window around the middle one to hold it.
		w := 5 * time.Minute
		start := t0.Add(-w)
		times := []time.Duration{w + time.Minute, 0, time.Minute, 4 * time.Minute, 4*time.Minute + 30*time.Second, 2 * time.Minute}
		for i, d := range times {
			h.feed(failedLogin(fmt.Sprintf("k%d", i), "u-1", start.Add(d)))
		}
		got := h.alerts.conditions()
		if len(got) != 1 {
			t.Fatalf("raised %v, want one", keysOf(got))
		}
		e := metadata(t, got[0])
		if e.Count != 5 || !e.FirstEventAt.Equal(start) || !e.LastEventAt.Equal(start.Add(4*time.Minute+30*time.Second)) ||
			!slices.Equal(e.EventKeys, []string{"k1", "k2", "k5", "k3", "k4"}) {
			t.Fatalf("evidence %+v", e)
		}
	})
}

func TestDetectorThresholds(t *testing.T) {
	base := t0
	cases := []struct {
		name     string
		dedupKey string
		severity audit.Severity
		n        int // the threshold
		event    func(i int) ev
		ignored  ev // an event that must not count
	}{
		{
			name: "unauthorized access", dedupKey: "UNAUTHORIZED_ACCESS:principal:u-1", severity: audit.SeverityCritical, n: 3,
			event: func(i int) ev {
				outcomes := []string{"Unauthorized request", "403 FORBIDDEN", "Access denied to Patient/1"}
				return ev{key: fmt.Sprintf("ua%d", i), action: "fhir.patient.read", status: audit.StatusFailure,
					principal: "u-1", outcome: outcomes[i%3], at: base.Add(time.Duration(i) * time.Second)}
			},
			ignored: ev{key: "ua-x", action: "fhir.patient.read", status: audit.StatusFailure, principal: "u-1",
				outcome: "timeout talking to the FHIR server", at: base},
		},
		{
			name: "data velocity", dedupKey: "DATA_VELOCITY:principal:u-2", severity: audit.SeverityMedium, n: 50,
			event: func(i int) ev {
				action := "data.read"
				if i%2 == 1 {
					action = "fhir.observation.read"
				}
				return ev{key: fmt.Sprintf("dv%d", i), action: action, status: audit.StatusSuccess, principal: "u-2",
					at: base.Add(time.Duration(i) * time.Second)}
			},
			ignored: ev{key: "dv-x", action: "data.read", status: audit.StatusFailure, principal: "u-2", at: base},
		},
		{
			name: "bulk operation", dedupKey: "BULK_OPERATION:organization:org-9", severity: audit.SeverityMedium, n: 100,
			event: func(i int) ev {
				e := ev{key: fmt.Sprintf("bo%d", i), status: audit.StatusSuccess, principal: fmt.Sprintf("u-%d", i),
					org: "org-9", at: base.Add(time.Duration(i) * time.Second)}
				switch i % 4 {
				case 0:
					e.action = "data.export"
				case 1:
					e.action = "data.import"
				case 2:
					e.action = "patient.BulkUpdate"
				default:
					e.action, e.details = "data.update", `{"clinic":{"recordCount":1},"recordCount":11}`
				}
				return e
			},
			ignored: ev{key: "bo-x", action: "data.update", status: audit.StatusSuccess, principal: "u-x", org: "org-9",
				details: `{"recordCount":10}`, at: base},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			forEachBackend(t, func(t *testing.T, b backend) {
				st, _ := b.shared(t)
				cfg := DefaultConfig()
				cfg.OffHoursStart, cfg.OffHoursEnd = 0, 0 // these events are off hours for nobody anyway
				h := newHarness(t, st, cfg)
				h.clock.Set(base.Add(2 * time.Minute))
				var batch []ev
				for i := range tc.n - 1 {
					batch = append(batch, tc.event(i))
				}
				batch = append(batch, tc.ignored)
				h.feed(batch...)
				if got := h.alerts.conditions(); len(got) != 0 {
					t.Fatalf("threshold−1 events raised %v", keysOf(got))
				}
				h.feed(tc.event(tc.n - 1))
				got := h.alerts.conditions()
				if len(got) != 1 || got[0].DedupKey != tc.dedupKey || got[0].Severity != tc.severity {
					t.Fatalf("at threshold raised %+v", got)
				}
				if e := metadata(t, got[0]); e.Count != tc.n || e.Threshold != tc.n || len(e.EventKeys) != min(tc.n, maxEvidenceKeys) {
					t.Fatalf("evidence %+v", e)
				}
			})
		})
	}
}

func TestOffHoursInOrganizationTimeZone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		cfg := DefaultConfig()
		cfg.TimeZones = map[string]string{"org-ny": "America/New_York"}
		h := newHarness(t, st, cfg)
		read := func(key, org, principal string, at time.Time) ev {
			return ev{key: key, action: "fhir.patient.read", status: audit.StatusSuccess, org: org, principal: principal, at: at}
		}
		night := time.Date(2024, 3, 6, 4, 30, 0, 0, time.UTC) // 23:30 on 5 March in New York (EST)
		h.clock.Set(night.Add(time.Minute))
		h.feed(read("ny1", "org-ny", "u-ny", night))
		h.feed(read("utc1", "org-utc", "u-utc", time.Date(2024, 3, 6, 14, 0, 0, 0, time.UTC).Add(-24*time.Hour)))
		got := h.alerts.conditions()
		if len(got) != 1 || got[0].DedupKey != "OFF_HOURS:principal:u-ny" || got[0].Severity != audit.SeverityLow ||
			got[0].OrganizationID != "org-ny" {
			t.Fatalf("raised %+v, want one OFF_HOURS for u-ny", got)
		}
		e := metadata(t, got[0])
		if e.OffHours == nil || e.OffHours.TimeZone != "America/New_York" || e.OffHours.LocalTime != "2024-03-05T23:30:00-05:00" ||
			!slices.Equal(e.EventKeys, []string{"ny1"}) {
			t.Fatalf("evidence %+v", e)
		}
		// The same night (00:30 and 05:59 local): no second alert; a failure or a
		// login does not count at all.
		h.feed(read("ny2", "org-ny", "u-ny", night.Add(time.Hour)), read("ny3", "org-ny", "u-ny", night.Add(6*time.Hour+29*time.Minute)))
		if n := len(h.alerts.conditions()); n != 1 {
			t.Fatalf("same night raised again (%d conditions)", n)
		}
		// 04:30 UTC is off hours for a UTC organization too; 06:00 local is not.
		h.feed(read("utc2", "org-utc", "u-utc", night))
		h.feed(read("ny4", "org-ny", "u-ny2", night.Add(6*time.Hour+30*time.Minute))) // 06:30 EST
		// The next night raises again.
		h.clock.Set(night.Add(24*time.Hour + time.Minute))
		h.feed(read("ny5", "org-ny", "u-ny", night.Add(24*time.Hour)))
		want := []string{"OFF_HOURS:principal:u-ny", "OFF_HOURS:principal:u-utc", "OFF_HOURS:principal:u-ny"}
		if got := keysOf(h.alerts.conditions()); !slices.Equal(got, want) {
			t.Fatalf("raised %v, want %v", got, want)
		}
		if n := h.alerts.occurrences("OFF_HOURS:principal:u-ny"); n != 2 {
			t.Errorf("u-ny's open alert has %d occurrences, want 2 (two nights)", n)
		}
	})
}

func TestOffHoursLate(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		h := newHarness(t, st, DefaultConfig())
		at := time.Date(2024, 3, 6, 23, 0, 0, 0, time.UTC) // the night ends 06:00 on 7 March
		h.clock.Set(time.Date(2024, 3, 7, 6, 5, 0, 0, time.UTC))
		h.feed(ev{key: "a", action: "data.read", status: audit.StatusSuccess, principal: "u-a", at: at})
		h.clock.Set(time.Date(2024, 3, 7, 6, 5, 0, 1e6, time.UTC))
		h.feed(ev{key: "b", action: "data.read", status: audit.StatusSuccess, principal: "u-b", at: at})
		if got := keysOf(h.alerts.conditions()); !slices.Equal(got, []string{"OFF_HOURS:principal:u-a"}) {
			t.Fatalf("raised %v, want only u-a (u-b's night ended more than the tolerance ago)", got)
		}
		if v := testutil.ToFloat64(h.m.late.WithLabelValues("OFF_HOURS")); v != 1 {
			t.Errorf("late metric %v, want 1", v)
		}
	})
}

func TestTwoWorkersRaiseOnce(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		for round := range 20 {
			stA, stB := b.shared(t)
			alerts := newFakeAlerts()
			c := testenv.NewClock(t0)
			mk := func(st State) *Monitor {
				m, err := New(DefaultConfig(), Options{State: st, Alerts: alerts, Now: c.Now})
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			a, bm := mk(stA), mk(stB)
			var evs []pipeline.AcceptedEvent
			for i := range 5 {
				at := t0.Add(time.Duration((i*7+round)%5) * time.Second) // a different time order each round
				evs = append(evs, failedLogin(fmt.Sprintf("r%d:k%d", round, i), "u-shared", at).accepted())
			}
			var wg sync.WaitGroup
			wg.Go(func() {
				for _, e := range evs[:3] {
					a.ObserveBatch(context.Background(), &pipeline.BatchReport{Accepted: []pipeline.AcceptedEvent{e}})
				}
			})
			wg.Go(func() { bm.ObserveBatch(context.Background(), &pipeline.BatchReport{Accepted: evs[3:]}) })
			wg.Wait()
			if got := alerts.conditions(); len(got) != 1 || metadata(t, got[0]).Count != 5 {
				t.Fatalf("round %d: raised %v, want exactly one with count 5", round, keysOf(got))
			}
		}
	})
}

func TestTrackedKeyCap(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		cfg := DefaultConfig()
		cfg.MaxTrackedKeys = 3
		h := newHarness(t, st, cfg)
		for i := range 5 {
			h.feed(failedLogin(fmt.Sprintf("k%d", i), fmt.Sprintf("u-%d", i), t0.Add(time.Duration(i)*time.Second)))
		}
		if v := testutil.ToFloat64(h.m.capHits); v != 2 {
			t.Errorf("cap hits %v, want 2", v)
		}
		switch s := st.(type) {
		case *MemoryState:
			if n := s.Len(); n != 3 {
				t.Errorf("memory tracks %d keys, want 3", n)
			}
		case *RedisState:
			if n := s.Len(); n != 3 {
				t.Errorf("the replica tracks %d keys, want 3", n)
			}
		}
		// The newest keys are the ones kept: u-4 still counts.
		for i := 1; i < 5; i++ {
			h.feed(failedLogin(fmt.Sprintf("u4-%d", i), "u-4", t0.Add(time.Duration(4+i)*time.Second)))
		}
		if got := keysOf(h.alerts.conditions()); !slices.Equal(got, []string{"FAILED_AUTH:principal:u-4"}) {
			t.Fatalf("raised %v", got)
		}
	})
}

func TestExpiredStateIsDropped(t *testing.T) {
	st := NewMemoryState()
	h := newHarness(t, st, DefaultConfig())
	h.feed(failedLogin("k0", "u-1", t0))
	if st.Len() != 1 {
		t.Fatalf("tracking %d keys, want 1", st.Len())
	}
	// 2·5min + 5min tolerance later, plus the quarter of it a key is kept longer.
	h.clock.Set(t0.Add(15*time.Minute + 15*time.Minute/4))
	h.feed(failedLogin("k1", "u-2", t0.Add(19*time.Minute)))
	if st.Len() != 1 {
		t.Fatalf("tracking %d keys after u-1's expired, want 1", st.Len())
	}
}

// TestRedisLogTrimmed: a stream drops the entries older (by Redis's clock)
// than its ops' keep and the slack, when the next batch is logged.
func TestRedisLogTrimmed(t *testing.T) {
	st, _ := sharedRedis(t)
	st.slack = 0
	rdb := testRedis(t)
	ctx := context.Background()
	now := time.Now().UnixMilli()
	batch := func(i int, keep time.Duration) []op {
		return []op{{key: "FAILED_AUTH:principal:u-1", member: fmt.Sprintf("k%d", i), at: now, window: 1, threshold: 1000,
			expireAt: now + keep.Milliseconds(), keep: keep.Milliseconds()}}
	}
	// Redis trims whole nodes of 100 entries (the default
	// stream-node-max-entries): three of them, then a fourth after they aged.
	// Kept an hour, none of the 300 trims another, however slowly they are
	// appended (under -race on a busy host).
	for i := range 300 {
		if _, _, err := st.apply(ctx, now, 1000, batch(i, time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	name := st.streamOf("FAILED_AUTH:x")
	if n := rdb.XLen(ctx, name).Val(); n != 300 {
		t.Fatalf("the log holds %d entries, want 300", n)
	}
	// Ops kept for a short while (a window shortened by a reload) trim what
	// is older than that once the next batch is logged.
	const keep = time.Second
	time.Sleep(keep + 100*time.Millisecond)
	for i := 300; i < 302; i++ {
		if _, _, err := st.apply(ctx, now, 1000, batch(i, keep)); err != nil {
			t.Fatal(err)
		}
	}
	if n := rdb.XLen(ctx, name).Val(); n > 102 {
		t.Fatalf("the log still holds %d entries after they aged, want at most the last node's", n)
	}
	// Once no process appends, the stream itself goes after as long.
	if ttl := rdb.PTTL(ctx, name).Val(); ttl <= 0 || ttl > keep {
		t.Fatalf("the stream's TTL is %s, want its ops' keep (%s)", ttl, keep)
	}
}

// TestRedisNewProcessReadsTheLog: a process that starts (a new replica, a
// restart) applies what the others logged before its first batch, however
// many entries that is, and counts on from there.
func TestRedisNewProcessReadsTheLog(t *testing.T) {
	a, _ := sharedRedis(t)
	cfg := DefaultConfig()
	cfg.FailedAuth.Threshold = 2*replayChunk + 51
	h := newHarness(t, a, cfg)
	for i := range cfg.FailedAuth.Threshold - 1 { // one entry per event
		h.feed(failedLogin(fmt.Sprintf("k%d", i), "u-1", t0.Add(time.Duration(i)*time.Millisecond)))
	}
	if n := len(h.alerts.conditions()); n != 0 {
		t.Fatalf("%d conditions below the threshold", n)
	}
	restarted, err := NewRedisState(testRedis(t), strings.TrimSuffix(strings.TrimPrefix(a.base, "{"), "monitor}:"))
	if err != nil {
		t.Fatal(err)
	}
	h2 := newHarness(t, restarted, cfg)
	// A redelivery of the first event, and the last one needed.
	h2.feed(failedLogin("k0", "u-1", t0), failedLogin("last", "u-1", t0.Add(time.Second)))
	got := h2.alerts.conditions()
	if len(got) != 1 || metadata(t, got[0]).Count != cfg.FailedAuth.Threshold {
		t.Fatalf("raised %v, want one condition with count %d", keysOf(got), cfg.FailedAuth.Threshold)
	}
	if replayed, _ := restarted.LogStats(); replayed != int64(cfg.FailedAuth.Threshold-1) {
		t.Fatalf("replayed %d ops, want the %d logged before", replayed, cfg.FailedAuth.Threshold-1)
	}
}

// TestRedisConcurrentWorkersCountOnce: workers writing the same windows at
// the same time, each also redelivering the others' events, must count every
// event exactly once (the log orders them; the first to log an event counts it).
func TestRedisConcurrentWorkersCountOnce(t *testing.T) {
	a, b := sharedRedis(t)
	states := []State{a, b, a, b}
	const principals, perWorker = 5, 300
	var added [4]int
	var wg sync.WaitGroup
	for w, st := range states {
		wg.Go(func() {
			for n := 0; n < perWorker; n += 10 {
				var ops []op
				for i := n; i < n+10; i++ {
					// Events 0..599: each is sent by two workers.
					ev := (w%2)*perWorker + i
					if i%3 == 0 {
						ev = ((w+1)%2)*perWorker + i
					}
					at := t0.UnixMilli() + int64(ev)
					ops = append(ops, op{key: fmt.Sprintf("FAILED_AUTH:principal:u-%d", ev%principals),
						member: fmt.Sprintf("e%d", ev), at: at, window: 600_000, threshold: 1000,
						expireAt: at + 1_500_000})
				}
				res, _, err := st.apply(context.Background(), t0.UnixMilli()+1000, 10_000, ops)
				if err != nil {
					t.Error(err)
					return
				}
				for _, r := range res {
					if r.added {
						added[w]++
					}
				}
			}
		})
	}
	wg.Wait()
	// Every event sent was added by exactly one worker.
	distinct := map[int]bool{}
	for w := range states {
		for i := 0; i < perWorker; i++ {
			ev := (w%2)*perWorker + i
			if i%3 == 0 {
				ev = ((w+1)%2)*perWorker + i
			}
			distinct[ev] = true
		}
	}
	if total := added[0] + added[1] + added[2] + added[3]; total != len(distinct) {
		t.Fatalf("added %d times (per worker %v), want %d: each event once", total, added, len(distinct))
	}
	// And the windows hold each of them once.
	probe := make([]op, 0, principals)
	for p := range principals {
		at := t0.UnixMilli() + 2*perWorker + int64(p)
		probe = append(probe, op{key: fmt.Sprintf("FAILED_AUTH:principal:u-%d", p), member: fmt.Sprintf("probe%d", p),
			at: at, window: 600_000, threshold: 1, expireAt: at + 1_500_000})
	}
	res, _, err := a.apply(context.Background(), t0.UnixMilli()+1000, 10_000, probe)
	if err != nil {
		t.Fatal(err)
	}
	counted := 0
	for _, r := range res {
		counted += r.count - 1
	}
	if counted != len(distinct) {
		t.Fatalf("the windows hold %d events, want %d", counted, len(distinct))
	}
}

func TestSetConfig(t *testing.T) {
	h := newHarness(t, NewMemoryState(), DefaultConfig())
	cfg := DefaultConfig()
	cfg.FailedAuth.Threshold = 2
	if err := h.SetConfig(cfg); err != nil {
		t.Fatal(err)
	}
	h.feed(failedLogin("k0", "u-1", t0), failedLogin("k1", "u-1", t0.Add(time.Second)))
	if n := len(h.alerts.conditions()); n != 1 {
		t.Fatalf("lowered threshold: %d conditions, want 1", n)
	}
	bad := DefaultConfig()
	bad.TimeZones = map[string]string{"org-x": "Mars/Olympus"}
	if err := h.SetConfig(bad); err == nil {
		t.Fatal("unknown time zone accepted")
	}
	bad = DefaultConfig()
	bad.DataVelocity.Threshold = 0
	if err := h.SetConfig(bad); err == nil {
		t.Fatal("zero threshold accepted")
	}
	h.feed(failedLogin("k2", "u-2", t0), failedLogin("k3", "u-2", t0.Add(time.Second)))
	if n := len(h.alerts.conditions()); n != 2 {
		t.Fatalf("a refused config changed the running one: %d conditions, want 2", n)
	}
}

func TestFailuresNeverFailTheBatch(t *testing.T) {
	t.Run("alert store", func(t *testing.T) {
		h := newHarness(t, NewMemoryState(), DefaultConfig())
		h.alerts.fail = errors.New("database down")
		for i := range 5 {
			h.feed(failedLogin(fmt.Sprintf("k%d", i), "u-1", t0))
		}
		if v := testutil.ToFloat64(h.m.raiseFailures.WithLabelValues(SourcePatternDetector)); v != 1 {
			t.Fatalf("raise failures %v, want 1", v)
		}
	})
	t.Run("redis", func(t *testing.T) {
		rdb := redisAt(t, "127.0.0.1:1") // nothing listens there
		st, err := NewRedisState(rdb, "x:")
		if err != nil {
			t.Fatal(err)
		}
		h := newHarness(t, st, DefaultConfig())
		start := time.Now()
		h.feed(failedLogin("k0", "u-1", t0))
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("a dead Redis held the batch %s", d)
		}
		if v := testutil.ToFloat64(h.m.stateErrors); v != 1 {
			t.Fatalf("state errors %v, want 1", v)
		}
	})
}

func TestNewRedisStateRefusesBraces(t *testing.T) {
	if _, err := NewRedisState(nil, "a{b}:"); err == nil {
		t.Fatal("prefix with a hash tag accepted")
	}
}

func TestRecordCount(t *testing.T) {
	for in, want := range map[string]float64{
		``: 0, `{"a":1}`: 0, `{"recordCount":12}`: 12, `{"recordCount":"12"}`: 0,
		`{"x":{"recordCount":50}}`: 0, `{"recordCount":1.5e2}`: 150, `{"recordCount":null}`: 0,
	} {
		if got := recordCount([]byte(in)); got != want {
			t.Errorf("recordCount(%s) = %v, want %v", in, got, want)
		}
	}
	// The top-level walk reads what a decode into a struct reads: keys of any
	// case after the hint (the last one wins), values of every kind before and after,
	// nested objects and arrays, strings with escapes and braces, spaces,
	// escaped keys (decoded), and the production profile's details.
	cases := []string{
		`{"RecordCount": 40}`, `{"recordcount":40}`, `{"recordCount":3,"RECORDCOUNT":30}`,
		`{"a":"}\"recordCount\":99","recordCount":12}`, `{"x":[1,{"recordCount":77}],"recordCount" : 15 }`,
		` { "n":null , "t":true,"f":false,"s":"a,b","o":{"p":[[],{}]}, "recordCount":-2.5e1}`,
		`{"record\u0043ount":33}`, `{"a\"b":1,"recordCount":21}`, `{"recordCount":{"n":50}}`, `{"recordCount":[50]}`,
		`{"recordCount":"x"}`, `[{"recordCount":50}]`, `"recordCount"`, `{"recordCountX":50}`, `{}`,
	}
	g := eventgen.NewProfile(eventgen.Production, 3)
	for range 2000 {
		e, _, err := audit.ParseEvent(g.Valid(), audit.DefaultRules(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, string(e.Details))
	}
	counted := 0
	for _, in := range cases {
		want := decodedRecordCount([]byte(in))
		if want > 0 {
			counted++
		}
		if got := recordCount([]byte(in)); got != want {
			t.Errorf("recordCount(%s) = %v, a decode reads %v", in, got, want)
		}
	}
	if counted < 100 {
		t.Fatalf("only %d of the details had a recordCount; the test proves too little", counted)
	}
}

// decodedRecordCount is recordCount by decoding alone (after the same
// search for the hint, which a key spelt otherwise than "...Count" misses).
func decodedRecordCount(details []byte) float64 {
	if !bytes.Contains(details, recordCountHint) {
		return 0
	}
	var d struct {
		RecordCount json.RawMessage `json:"recordCount"`
	}
	if json.Unmarshal(details, &d) != nil {
		return 0
	}
	n, err := strconv.ParseFloat(string(d.RecordCount), 64)
	if err != nil {
		return 0
	}
	return n
}

// Organizations without a zone of their own use DefaultTimeZone.
func TestOffHoursDefaultTimeZone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		cfg := DefaultConfig()
		cfg.DefaultTimeZone = "Asia/Tokyo" // UTC+9, no daylight saving
		cfg.TimeZones = map[string]string{"org-utc": "UTC"}
		h := newHarness(t, st, cfg)
		read := func(key, org, principal string, at time.Time) ev {
			return ev{key: key, action: "data.read", status: audit.StatusSuccess, org: org, principal: principal, at: at}
		}
		at := time.Date(2024, 3, 6, 14, 0, 0, 0, time.UTC) // 23:00 in Tokyo, 14:00 in UTC
		h.clock.Set(at.Add(time.Minute))
		h.feed(read("jp1", "org-jp", "u-jp", at), read("utc1", "org-utc", "u-utc", at))
		got := h.alerts.conditions()
		if len(got) != 1 || got[0].DedupKey != "OFF_HOURS:principal:u-jp" {
			t.Fatalf("raised %v, want one OFF_HOURS for u-jp", keysOf(got))
		}
	})
	bad := DefaultConfig()
	bad.DefaultTimeZone = "Mars/Base"
	if _, err := New(bad, Options{State: NewMemoryState(), Alerts: newFakeAlerts()}); err == nil || !strings.Contains(err.Error(), "default time zone") {
		t.Errorf("an unknown default zone: err = %v", err)
	}
}

// TestRedisLogAppliedTwiceCountsOnce: an entry applied again (this
// process's own, when the reply that carried its id was lost) changes no
// count, and an entry no process can read is skipped and counted, never
// holding the log up.
func TestRedisLogAppliedTwiceCountsOnce(t *testing.T) {
	st, _ := sharedRedis(t)
	rdb := testRedis(t)
	ctx := context.Background()
	h := newHarness(t, st, DefaultConfig())
	h.feed(failedLogin("k0", "u-1", t0), failedLogin("k1", "u-1", t0.Add(time.Second)))
	h.feed(failedLogin("k2", "u-1", t0.Add(2*time.Second)), failedLogin("k3", "u-1", t0.Add(3*time.Second)))
	name := st.streamOf("FAILED_AUTH:x")
	clear(st.cursor) // as if no reply had come back: everything is read again
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: name, Values: []any{opsField, "not ops"}}).Err(); err != nil {
		t.Fatal(err)
	}
	h.feed(failedLogin("k4", "u-1", t0.Add(4*time.Second)))
	got := h.alerts.conditions()
	if len(got) != 1 || metadata(t, got[0]).Count != 5 {
		t.Fatalf("raised %v, want one condition with count 5", keysOf(got))
	}
	replayed, malformed := st.LogStats()
	if replayed != 4 || malformed != 1 {
		t.Fatalf("replayed %d ops and skipped %d entries, want 4 and 1", replayed, malformed)
	}
	families, err := h.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]float64{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "audit_monitor_state_") {
			exported[f.GetName()] = f.GetMetric()[0].GetCounter().GetValue()
		}
	}
	if exported["audit_monitor_state_replayed_ops_total"] != 4 || exported["audit_monitor_state_malformed_entries_total"] != 1 {
		t.Errorf("exported %v", exported)
	}
}

// batchAlerts is a fakeAlerts that also takes conditions in batches, and can
// refuse them.
type batchAlerts struct {
	*fakeAlerts
	batches   []int // the size of each RaiseAlerts call
	batchFail error
}

func (b *batchAlerts) RaiseAlerts(ctx context.Context, cs []audit.AlertCondition) ([]audit.AlertRaise, error) {
	b.batches = append(b.batches, len(cs))
	if b.batchFail != nil {
		return nil, b.batchFail
	}
	out := make([]audit.AlertRaise, len(cs))
	for i, c := range cs {
		r, err := b.RaiseAlert(ctx, c)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// A batch that raises many conditions (at night, an off-hours alert for each
// principal) hands them to a batch store in one call; when that call fails,
// each is raised on its own and none is lost. New alerts are notified either way.
func TestBatchOfConditionsRaisedTogether(t *testing.T) {
	night := time.Date(2024, 3, 6, 23, 0, 0, 0, time.UTC)
	reads := func(prefix string) []ev {
		var evs []ev
		for i := range 5 {
			p := fmt.Sprintf("%s-%d", prefix, i)
			evs = append(evs, ev{key: p, action: "data.read", status: audit.StatusSuccess, principal: p, at: night})
		}
		return evs
	}
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("batch fails %v", fail), func(t *testing.T) {
			store := &batchAlerts{fakeAlerts: newFakeAlerts()}
			if fail {
				store.batchFail = errors.New("serialization failure")
			}
			notes := &fakeNotifier{}
			clock := testenv.NewClock(night.Add(time.Minute))
			var logs bytes.Buffer
			m, err := New(DefaultConfig(), Options{State: NewMemoryState(), Alerts: store, Notifier: notes, Now: clock.Now,
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			h := &harness{Monitor: m, alerts: store.fakeAlerts, clock: clock, notes: notes}
			h.feed(reads("u")...)
			if !slices.Equal(store.batches, []int{5}) {
				t.Errorf("RaiseAlerts calls %v, want one of 5 conditions", store.batches)
			}
			if n := len(store.conditions()); n != 5 {
				t.Errorf("%d conditions recorded, want 5", n)
			}
			if n := len(notes.got); n != 5 {
				t.Errorf("%d alerts notified, want 5", n)
			}
			// LOW alerts raised together are summed up in one line; one by
			// one, each has its own.
			perAlert, summary := 5, 0
			if !fail {
				perAlert, summary = 0, 1
			}
			if n := strings.Count(logs.String(), `msg="alert raised"`); n != perAlert {
				t.Errorf("%d lines per alert, want %d:\n%s", n, perAlert, logs.String())
			}
			if n := strings.Count(logs.String(), `msg="low-severity alerts raised" alerts=5`); n != summary {
				t.Errorf("%d summary lines, want %d:\n%s", n, summary, logs.String())
			}
			// A batch raising a single condition goes the single way.
			h.feed(ev{key: "w", action: "data.read", status: audit.StatusSuccess, principal: "w", at: night})
			if len(store.batches) != 1 || len(store.conditions()) != 6 {
				t.Errorf("one condition: batches %v, %d conditions", store.batches, len(store.conditions()))
			}
		})
	}
}

// failFirstRead makes the first XRANGE sent on its own (not in a MULTI) fail.
type failFirstRead struct{ failed atomic.Bool }

func (f *failFirstRead) DialHook(next redis.DialHook) redis.DialHook { return next }
func (f *failFirstRead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}
func (f *failFirstRead) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() == "xrange" && f.failed.CompareAndSwap(false, true) {
			err := errors.New("connection reset (injected)")
			cmd.SetErr(err)
			return err
		}
		return next(ctx, cmd)
	}
}

// TestRedisFailedReadKeepsTheBatchsOwnOps: when reading a long backlog of one
// detector's log fails, the batch's ops already logged in another detector's
// stream are not lost to this process: it applies them with its next batch.
func TestRedisFailedReadKeepsTheBatchsOwnOps(t *testing.T) {
	a, b := sharedRedis(t)
	hook := &failFirstRead{}
	a.rdb.(*redis.Client).AddHook(hook)
	ctx := context.Background()
	// Another process logs more DATA_VELOCITY entries than one reply brings.
	for i := range replayChunk + 50 {
		at := t0.UnixMilli() + int64(i)
		if _, _, err := b.apply(ctx, t0.UnixMilli(), 10_000, []op{{key: "DATA_VELOCITY:principal:u-9", member: fmt.Sprintf("r%d", i),
			at: at, window: 60_000, threshold: 1000, expireAt: at + 120_000, keep: 120_000}}); err != nil {
			t.Fatal(err)
		}
	}
	h := newHarness(t, a, DefaultConfig())
	// One batch with a failed login and a read: its read of the backlog fails.
	h.feed(failedLogin("k0", "u-1", t0), ev{key: "read0", action: "data.read", status: audit.StatusSuccess, principal: "u-1", at: t0})
	if !hook.failed.Load() || testutil.ToFloat64(h.m.stateErrors) != 1 {
		t.Fatalf("the injected failure did not happen (state errors %v)", testutil.ToFloat64(h.m.stateErrors))
	}
	for i := 1; i < 5; i++ {
		h.feed(failedLogin(fmt.Sprintf("k%d", i), "u-1", t0.Add(time.Duration(i)*time.Second)))
	}
	got := h.alerts.conditions()
	if len(got) != 1 || metadata(t, got[0]).Count != 5 {
		t.Fatalf("raised %v, want one FAILED_AUTH with count 5: the first failure counts", keysOf(got))
	}
}

// TestEvidenceOfAKeyDroppedInItsBatch: a key that reached its threshold, was
// dropped at the cap later in the same batch and tracked again from a new
// event still gets the evidence of the window that reached the threshold
// (this crashed the worker: the new window held nothing in that range).
func TestEvidenceOfAKeyDroppedInItsBatch(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		base := t0.UnixMilli()
		failure := func(key, member string, at int64) op {
			return op{key: key, member: member, at: at, window: 10_000, threshold: 2, expireAt: at + 20_000, keep: 20_000}
		}
		ops := []op{
			failure("FAILED_AUTH:principal:a", "a1", base), failure("FAILED_AUTH:principal:a", "a2", base+1000),
			failure("FAILED_AUTH:principal:b", "b1", base+2000), failure("FAILED_AUTH:principal:c", "c1", base+3000),
			// After the window that reached 2 (which ends at a2).
			failure("FAILED_AUTH:principal:a", "a3", base+5000),
		}
		res, evicted, err := st.apply(context.Background(), base+10_000, 2, ops)
		if err != nil {
			t.Fatal(err)
		}
		if evicted == 0 {
			t.Fatal("no key dropped at the cap: the test proves nothing")
		}
		if r := res[1]; !r.added || r.count != 2 || r.first != base || r.last != base+1000 || !slices.Equal(r.keys, []string{"a1", "a2"}) {
			t.Fatalf("the detection's evidence: %+v", r)
		}
	})
}

// panickingState stands for a bug in a State.
type panickingState struct{}

func (panickingState) apply(context.Context, int64, int, []op) ([]result, int, error) {
	panic("a bug")
}

// A bug in the detectors costs the batch its evaluation, not the worker: the
// panic is recovered, logged with its stack and counted.
func TestDetectorPanicIsContained(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	m, err := New(DefaultConfig(), Options{State: panickingState{}, Alerts: newFakeAlerts(), Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveBatch(context.Background(), &pipeline.BatchReport{Accepted: []pipeline.AcceptedEvent{failedLogin("k0", "u-1", t0).accepted()}})
	if v := testutil.ToFloat64(m.m.panics); v != 1 {
		t.Fatalf("panics counted %v, want 1", v)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "a bug") || !strings.Contains(logs.String(), "panickingState") {
		t.Fatalf("log: %s", logs.String())
	}
}

// Off hours are at most once per principal and night: reads for several
// organizations of one time zone in one night are one occurrence; a night in
// another zone is another.
func TestOffHoursOncePerPrincipalAndNight(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		st, _ := b.shared(t)
		cfg := DefaultConfig()
		cfg.TimeZones = map[string]string{"org-ny": "America/New_York", "org-ny2": "America/New_York"}
		h := newHarness(t, st, cfg)
		read := func(key, org string, at time.Time) ev {
			return ev{key: key, action: "data.read", status: audit.StatusSuccess, org: org, principal: "u-1", at: at}
		}
		at := time.Date(2024, 3, 6, 4, 0, 0, 0, time.UTC) // 23:00 in New York, 04:00 in UTC
		h.clock.Set(at.Add(time.Minute))
		h.feed(read("ny", "org-ny", at))
		h.feed(read("ny2", "org-ny2", at.Add(time.Minute)))
		if got := keysOf(h.alerts.conditions()); len(got) != 1 {
			t.Fatalf("two organizations of one zone, one night: raised %v, want one", got)
		}
		h.feed(read("utc", "org-utc", at.Add(2*time.Minute)))
		if got := keysOf(h.alerts.conditions()); len(got) != 2 || h.alerts.occurrences("OFF_HOURS:principal:u-1") != 2 {
			t.Fatalf("a night in another zone: raised %v (%d occurrences), want a second occurrence", got,
				h.alerts.occurrences("OFF_HOURS:principal:u-1"))
		}
	})
}

// byEventTime orders ops as a stable sort by event time does.
func TestByEventTimeIsStable(t *testing.T) {
	var ops []op
	for i := range 300 {
		ops = append(ops, op{at: int64((i * 7919) % 37), member: strconv.Itoa(i)})
	}
	want := slices.Clone(ops)
	slices.SortStableFunc(want, func(a, b op) int { return cmp.Compare(a.at, b.at) })
	got := byEventTime(slices.Clone(ops))
	for i := range want {
		if got[i].at != want[i].at || got[i].member != want[i].member {
			t.Fatalf("position %d: %d/%s, want %d/%s", i, got[i].at, got[i].member, want[i].at, want[i].member)
		}
	}
	if in := ops[:50]; &byEventTime(in)[0] != &in[0] {
		t.Error("the ops were copied, not ordered in place")
	}
}
