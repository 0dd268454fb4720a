package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
)

// Every connection bounds what it keeps in memory: the writer's page cache,
// the readers' smaller ones, no memory-mapped reads, and a WAL file that a
// checkpoint truncates.
func TestConnectionsBoundTheirMemory(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cacheKiB    int
		writerCache int
	}{
		{"default", 0, DefaultCacheKiB},
		{"configured", 2048, 2048},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(context.Background(), Config{Path: filepath.Join(t.TempDir(), "audit.db"), CacheKiB: tc.cacheKiB})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			want := map[*sql.DB]map[string]int{
				s.writer: {"cache_size": -tc.writerCache, "mmap_size": 0, "journal_size_limit": walSizeLimit},
				s.reader: {"cache_size": -readerCacheKiB, "mmap_size": 0},
			}
			for db, pragmas := range want {
				// Hold every connection of the pool at once, so that each is checked.
				n := readers
				if db == s.writer {
					n = 1
				}
				var conns []*sql.Conn
				for range n {
					c, err := db.Conn(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					conns = append(conns, c)
				}
				for i, c := range conns {
					for pragma, v := range pragmas {
						var got int
						if err := c.QueryRowContext(context.Background(), "PRAGMA "+pragma).Scan(&got); err != nil {
							t.Fatal(err)
						}
						if got != v {
							t.Errorf("connection %d: %s = %d, want %d", i, pragma, got, v)
						}
					}
				}
				for _, c := range conns {
					c.Close()
				}
			}
		})
	}
}
