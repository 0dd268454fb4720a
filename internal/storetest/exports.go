package storetest

import (
	"bytes"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// ExportSecretStore is what the export suite needs.
type ExportSecretStore interface {
	audit.ExportStore
	audit.SecretStore
}

// RunExports runs the ExportStore and SecretStore conformance tests.
func RunExports(t *testing.T, open func(t *testing.T) ExportSecretStore) {
	t.Run("ManifestRoundTrip", func(t *testing.T) { testManifestRoundTrip(t, open(t)) })
	t.Run("SecretIsCreatedOnceAndShared", func(t *testing.T) { testSecretShared(t, open(t)) })
}

func testManifestRoundTrip(t *testing.T, s ExportSecretStore) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	m := audit.ExportManifest{
		ID: "exp_1", Format: "csv", Gzip: true, Filters: map[string][]string{"action": {"auth.*"}},
		Organizations: []string{"org-a"}, From: &from, Caller: "key:abcdefghijklmnop",
		GeneratedAt: from.Add(time.Hour), CompletedAt: from.Add(2 * time.Hour), Complete: true,
		RowCount: 42, FirstID: 7, LastID: 99, Bytes: 1234, SHA256: "ab",
	}
	if err := s.SaveExport(ctxFor(t), m); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetExport(ctxFor(t), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.RowCount != 42 || got.SHA256 != "ab" || got.Filters["action"][0] != "auth.*" || !got.From.Equal(from) ||
		got.Organizations[0] != "org-a" || !got.Complete || !got.Gzip {
		t.Errorf("manifest read back as %+v", got)
	}
	_, err = s.GetExport(ctxFor(t), "exp_missing")
	wantCode(t, "get a missing export", err, audit.CodeNotFound)
}

func testSecretShared(t *testing.T, s ExportSecretStore) {
	var wg sync.WaitGroup
	values := make([][]byte, 8)
	for i := range values {
		wg.Go(func() {
			v, err := s.Secret(ctxFor(t), "cursor", 32)
			if err != nil {
				t.Error(err)
			}
			values[i] = v
		})
	}
	wg.Wait()
	for i, v := range values {
		if len(v) != 32 || !bytes.Equal(v, values[0]) {
			t.Fatalf("call %d got %x, call 0 got %x: every caller must get the same secret", i, v, values[0])
		}
	}
	other, err := s.Secret(ctxFor(t), "another", 16)
	if err != nil || len(other) != 16 || bytes.Equal(other, values[0][:16]) {
		t.Errorf("a second secret: %x, %v", other, err)
	}
}
