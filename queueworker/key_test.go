package queueworker

import (
	"strings"
	"testing"

	"github.com/smartlogs/audit-worker/bullmq"
)

func TestIdempotencyKey(t *testing.T) {
	long := strings.Repeat("x", 3000)
	cases := []struct {
		job  bullmq.Job
		want string
	}{
		{bullmq.Job{ID: "42", Timestamp: 1700000000000}, "bullmq:audit:42:1700000000000"},
		{bullmq.Job{ID: "order-7", Timestamp: 1700000000000}, "bullmq:audit:order-7"},
		{bullmq.Job{ID: strings.Repeat("y", maxKeyedJobID)}, "bullmq:audit:" + strings.Repeat("y", maxKeyedJobID)},
	}
	for _, tc := range cases {
		if got := IdempotencyKey("audit", &tc.job); got != tc.want {
			t.Errorf("IdempotencyKey(%q) = %q, want %q", tc.job.ID, got, tc.want)
		}
	}
	a := IdempotencyKey("audit", &bullmq.Job{ID: long})
	b := IdempotencyKey("audit", &bullmq.Job{ID: long + "z"})
	if len(a) > 100 || !strings.HasPrefix(a, "bullmq:audit:sha256:") || a == b {
		t.Errorf("a 3,000-byte id must stand as a short, distinct digest: %q, %q", a, b)
	}
	if a != IdempotencyKey("audit", &bullmq.Job{ID: long}) {
		t.Error("the digest of an id must not change from call to call")
	}
}
