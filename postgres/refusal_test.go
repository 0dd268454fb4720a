package postgres

import (
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/storetest"
)

// TestRefusalConformance runs the refused-record contract with every insert
// strategy: the direct COPY (the default), the staged COPY (its fallback) and
// unnest each meet the refusal first and must isolate it.
func TestRefusalConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode insertMode
	}{{"Direct", insertCopy}, {"Staged", insertStaged}, {"Unnest", insertUnnest}} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.RunRefusals(t, func(t *testing.T) audit.EventStore {
				s := openTest(t, tc.mode)
				if _, err := s.pool.Exec(t.Context(), storetest.PostgresRefusalSQL); err != nil {
					t.Fatalf("install the refusing trigger: %v", err)
				}
				return s
			})
		})
	}
}
