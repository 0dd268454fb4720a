package report_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/teststores"
	"github.com/smartlogs/audit-worker/report"
)

// memoryDestination keeps what it is given; it fails while failing is set.
type memoryDestination struct {
	mu        sync.Mutex
	delivered []report.Delivery
	failing   bool
}

func (d *memoryDestination) Deliver(_ context.Context, del report.Delivery) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.failing {
		return "", errors.New("destination down")
	}
	d.delivered = append(d.delivered, del)
	return "memory:" + del.Name, nil
}

func (d *memoryDestination) String() string { return "memory" }

// names are the files delivered, sorted: two replicas may finish their
// periods in either order.
func (d *memoryDestination) names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, del := range d.delivered {
		out = append(out, del.Name)
	}
	slices.Sort(out)
	return out
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.now = t }

// Two replicas share the runs table. A daily report runs once per period;
// while the worker is down two periods pass, and when it comes back each is
// run exactly once, however often and by however many replicas the
// scheduler ticks. A failed delivery is retried after its delay.
func TestScheduledRunMissedIsCaughtUpOnce(t *testing.T) {
	for _, kind := range []struct {
		name string
		open func(t *testing.T) storetest.ReportStore
	}{
		{"sqlite", func(t *testing.T) storetest.ReportStore { s, _ := teststores.SQLite(t); return s }},
		{"postgres", func(t *testing.T) storetest.ReportStore { s, _ := teststores.Postgres(t); return s }},
	} {
		t.Run(kind.name, func(t *testing.T) {
			s := kind.open(t)
			runs := s.(report.RunStore)
			f := storetest.LoadFixture(t)
			f.Store(t, s)
			dest := &memoryDestination{}
			clk := &clock{now: time.Date(2024, 3, 5, 9, 0, 0, 0, time.UTC)} // 04:00 in New York
			newScheduler := func() *report.Scheduler {
				sc, err := report.NewScheduler(report.SchedulerOptions{Generator: f.Generator(s), Runs: runs,
					Schedules: []report.Schedule{{Name: "daily-hipaa", Type: report.HIPAA, Organizations: []string{"org-a"},
						Frequency: "daily", TimeZone: "America/New_York", Format: report.JSON, Destination: dest}},
					Now: clk.Now, RetryDelay: time.Minute})
				if err != nil {
					t.Fatal(err)
				}
				return sc
			}
			a, b := newScheduler(), newScheduler()
			tickBoth := func() {
				t.Helper()
				var wg sync.WaitGroup
				for _, sc := range []*report.Scheduler{a, b} {
					wg.Go(func() {
						if err := sc.Tick(context.Background()); err != nil {
							t.Error(err)
						}
					})
				}
				wg.Wait()
			}
			tickBoth()
			tickBoth()
			want := []string{"daily-hipaa-hipaa-20240304T0000-20240305T0000.json"}
			if got := dest.names(); !equal(got, want) {
				t.Fatalf("first day: delivered %v, want %v", got, want)
			}
			// Down from 03-05 until 03-07 09:00 New York: 03-05 and 03-06 were missed.
			clk.Set(time.Date(2024, 3, 7, 14, 0, 0, 0, time.UTC))
			tickBoth()
			tickBoth()
			want = append(want, "daily-hipaa-hipaa-20240305T0000-20240306T0000.json", "daily-hipaa-hipaa-20240306T0000-20240307T0000.json")
			if got := dest.names(); !equal(got, want) {
				t.Fatalf("after the outage: delivered %v, want %v", got, want)
			}
			// The 03-07 report fails to deliver, then succeeds on retry.
			dest.failing = true
			clk.Set(time.Date(2024, 3, 8, 6, 0, 0, 0, time.UTC))
			tickBoth()
			dest.failing = false
			tickBoth() // the retry is not due yet
			if got := dest.names(); len(got) != 3 {
				t.Fatalf("retried before its delay: %v", got)
			}
			clk.Set(time.Date(2024, 3, 8, 6, 2, 0, 0, time.UTC))
			tickBoth()
			want = append(want, "daily-hipaa-hipaa-20240307T0000-20240308T0000.json")
			if got := dest.names(); !equal(got, want) {
				t.Fatalf("after the retry: delivered %v, want %v", got, want)
			}
			list, err := runs.ListRuns(context.Background(), report.RunQuery{Limit: 10})
			if err != nil || len(list) != 4 {
				t.Fatalf("runs %v, %v", list, err)
			}
			newest := list[0]
			if newest.Status != report.RunSucceeded || newest.Attempts != 2 || newest.SHA256 == "" || newest.SizeBytes == nil ||
				newest.Location != "memory:"+want[3] || !newest.PeriodStart.Equal(time.Date(2024, 3, 7, 5, 0, 0, 0, time.UTC)) {
				t.Errorf("the retried run is recorded as %+v", newest)
			}
			for _, r := range list[1:] {
				if r.Status != report.RunSucceeded || r.Attempts != 1 {
					t.Errorf("run %+v", r)
				}
			}
		})
	}
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestPeriodsFollowTheZoneAndTheFrequency(t *testing.T) {
	ny, _ := time.LoadLocation("America/New_York")
	for _, tc := range []struct {
		freq, cron string
		now        time.Time
		start, end time.Time
	}{
		{"daily", "", time.Date(2024, 3, 10, 12, 0, 0, 0, ny), time.Date(2024, 3, 9, 0, 0, 0, 0, ny), time.Date(2024, 3, 10, 0, 0, 0, 0, ny)},
		{"daily", "", time.Date(2024, 3, 11, 1, 0, 0, 0, ny), time.Date(2024, 3, 10, 0, 0, 0, 0, ny), time.Date(2024, 3, 11, 0, 0, 0, 0, ny)}, // 23 hours
		{"weekly", "", time.Date(2024, 3, 13, 12, 0, 0, 0, ny), time.Date(2024, 3, 4, 0, 0, 0, 0, ny), time.Date(2024, 3, 11, 0, 0, 0, 0, ny)},
		{"monthly", "", time.Date(2024, 4, 2, 0, 0, 0, 0, ny), time.Date(2024, 3, 1, 0, 0, 0, 0, ny), time.Date(2024, 4, 1, 0, 0, 0, 0, ny)},
		{"", "0 6 * * 1", time.Date(2024, 3, 13, 12, 0, 0, 0, ny), time.Date(2024, 3, 4, 6, 0, 0, 0, ny), time.Date(2024, 3, 11, 6, 0, 0, 0, ny)},
	} {
		sc := report.Schedule{Name: "s", Frequency: tc.freq, Cron: tc.cron, TimeZone: "America/New_York"}
		got := report.PeriodsForTest(&sc, tc.now)
		if len(got) != 1 || !got[0][0].Equal(tc.start) || !got[0][1].Equal(tc.end) {
			t.Errorf("%s%s at %s: periods %v, want [%s, %s)", tc.freq, tc.cron, tc.now, got, tc.start, tc.end)
		}
	}
}
