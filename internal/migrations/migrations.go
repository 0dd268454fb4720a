// Package migrations reads the numbered schema migrations a store embeds.
// Each store applies them its own way (PostgreSQL records them in a table
// under an advisory lock, SQLite in the file's user_version); what they share
// is the naming rule and the order.
package migrations

import (
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"

	audit "github.com/smartlogs/audit-worker"
)

// Migration is one schema change, read from a file named NNN_name.sql or
// NNN_name.up.sql.
type Migration struct {
	Version int    // NNN: 1 for the first, then one more for each
	Name    string // the file name between "NNN_" and ".sql" or ".up.sql"
	File    string // the file name, e.g. "001_audit_log.up.sql"
	SQL     string
}

// ID is the migration as logs and errors name it, e.g. "001_audit_log".
func (m Migration) ID() string { return fmt.Sprintf("%03d_%s", m.Version, m.Name) }

var fileName = regexp.MustCompile(`^([0-9]+)_([A-Za-z0-9_-]+?)(\.up)?\.sql$`)

// Load reads every file of dir in fsys as a migration and returns them in
// version order. Versions are 1, 2, 3, ... without gaps or repeats: a store
// that records only the latest version applied (SQLite) would otherwise skip
// a migration added below it. A file whose name breaks the rule is CodeInvalid.
func Load(fsys fs.FS, dir string) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, audit.Errorf(audit.CodeInvalid, "read migrations: %w", err)
	}
	out := make([]Migration, 0, len(entries))
	for _, e := range entries {
		m, err := parseName(e.Name())
		if err != nil {
			return nil, err
		}
		text, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, audit.Errorf(audit.CodeInvalid, "read migration %s: %w", e.Name(), err)
		}
		m.SQL = string(text)
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Migration) int { return a.Version - b.Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, audit.Errorf(audit.CodeInvalid,
				"migration %s: expected number %03d (numbers must be 1, 2, 3, ... without gaps or repeats)", m.File, i+1)
		}
	}
	return out, nil
}

func parseName(file string) (Migration, error) {
	parts := fileName.FindStringSubmatch(file)
	if parts == nil {
		return Migration{}, audit.Errorf(audit.CodeInvalid, "migration %s: name must be NNN_name.sql or NNN_name.up.sql", file)
	}
	v, err := strconv.Atoi(parts[1])
	if err != nil || v <= 0 {
		return Migration{}, audit.Errorf(audit.CodeInvalid, "migration %s: the number must be 1 or more", file)
	}
	return Migration{Version: v, Name: parts[2], File: file}, nil
}
