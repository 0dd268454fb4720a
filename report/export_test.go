package report

import "time"

// PeriodsForTest is the latest full period of a schedule at now.
func PeriodsForTest(s *Schedule, now time.Time) [][2]time.Time {
	if err := s.prepare(); err != nil {
		panic(err)
	}
	return s.Periods(s.lastEnd(now).Add(-time.Nanosecond), now)
}
