package migrations

import (
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	audit "github.com/smartlogs/audit-worker"
)

func files(names ...string) fstest.MapFS {
	fsys := fstest.MapFS{"m": &fstest.MapFile{Mode: fs.ModeDir}}
	for _, n := range names {
		fsys["m/"+n] = &fstest.MapFile{Data: []byte("-- " + n)}
	}
	return fsys
}

func TestLoadOrdersByVersion(t *testing.T) {
	for _, c := range []struct {
		name  string
		files []string
		want  []string // ID of each, in order
	}{
		{"up.sql", []string{"002_b.up.sql", "001_a.up.sql"}, []string{"001_a", "002_b"}},
		{"plain .sql", []string{"002_alerts.sql", "001_initial_schema.sql"}, []string{"001_initial_schema", "002_alerts"}},
		{"numbers wider than three digits", []string{"0001_a.sql", "2_b.up.sql"}, []string{"001_a", "002_b"}},
		{"none", nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			ms, err := Load(files(c.files...), "m")
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range ms {
				got = append(got, m.ID())
				if m.SQL != "-- "+m.File {
					t.Errorf("%s: SQL %q, want the file's text", m.File, m.SQL)
				}
			}
			if strings.Join(got, ",") != strings.Join(c.want, ",") {
				t.Fatalf("loaded %v, want %v", got, c.want)
			}
		})
	}
}

func TestLoadRefusesBadSets(t *testing.T) {
	for _, c := range []struct {
		name  string
		files []string
		want  string // in the error
	}{
		{"gap", []string{"001_a.sql", "003_c.sql"}, "003_c.sql: expected number 002"},
		{"repeat", []string{"001_a.sql", "001_b.up.sql"}, "expected number 002"},
		{"starts above 1", []string{"002_a.sql"}, "002_a.sql: expected number 001"},
		{"zero", []string{"000_a.sql"}, "000_a.sql: the number must be 1 or more"},
		{"no number", []string{"a_b.sql"}, "a_b.sql: name must be"},
		{"no name", []string{"001.sql"}, "001.sql: name must be"},
		{"down migration", []string{"001_a.down.sql"}, "001_a.down.sql: name must be"},
		{"not SQL", []string{"001_a.txt"}, "001_a.txt: name must be"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Load(files(c.files...), "m")
			if audit.ErrorCode(err) != audit.CodeInvalid || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Load(%v) = %v, want %s error containing %q", c.files, err, audit.CodeInvalid, c.want)
			}
		})
	}
}

func TestLoadMissingDirectory(t *testing.T) {
	if _, err := Load(files(), "nowhere"); audit.ErrorCode(err) != audit.CodeInvalid {
		t.Fatalf("Load of a missing directory = %v, want %s", err, audit.CodeInvalid)
	}
}
