package audit

import (
	"context"
	"slices"
	"time"
)

// ExportManifest describes one export: what was asked, by whom, and what was
// sent, down to the SHA-256 of the bytes, so that whoever receives the file
// can check that it is whole and unchanged.
type ExportManifest struct {
	ID     string `json:"exportId"`
	Format string `json:"format"`
	Gzip   bool   `json:"gzip"`
	// Filters are the search filters as the caller gave them.
	Filters map[string][]string `json:"filters"`
	// Organizations is the scope the export covered: the organisations
	// searched, or [AllOrganizations].
	Organizations []string   `json:"organizations"`
	From          *time.Time `json:"from,omitempty"` // event time range, [from, to)
	To            *time.Time `json:"to,omitempty"`
	Caller        string     `json:"caller"`
	GeneratedAt   time.Time  `json:"generatedAt"`
	CompletedAt   time.Time  `json:"completedAt"`
	// Complete is false when the stream stopped early (the client went away,
	// the store failed): then the file is not the whole result.
	Complete bool   `json:"complete"`
	Error    string `json:"error,omitempty"`
	RowCount int64  `json:"rowCount"`
	FirstID  int64  `json:"firstId,omitempty"`
	LastID   int64  `json:"lastId,omitempty"`
	Bytes    int64  `json:"bytes"`
	SHA256   string `json:"sha256"`
}

// VisibleTo reports whether p may read the manifest: its organisations must
// all be in p's scope.
func (m *ExportManifest) VisibleTo(p Principal) bool {
	if p.AllOrgs() {
		return true
	}
	return len(m.Organizations) > 0 && !slices.Contains(m.Organizations, AllOrganizations) &&
		!slices.ContainsFunc(m.Organizations, func(o string) bool { return !p.InScope(o) })
}

// ExportStore keeps export manifests, so that any replica can serve them.
type ExportStore interface {
	SaveExport(ctx context.Context, m ExportManifest) error
	// GetExport returns the manifest with this id (CodeNotFound if none).
	GetExport(ctx context.Context, id string) (ExportManifest, error)
}

// SecretStore keeps secrets that every replica must share and that need not
// be configured: the key that signs search cursors.
type SecretStore interface {
	// Secret returns the secret called name, creating it from size random
	// bytes the first time; every replica gets the same bytes.
	Secret(ctx context.Context, name string, size int) ([]byte, error)
}
