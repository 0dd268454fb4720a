package transparency_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/smartlogs/audit-worker/transparency"
)

// TestLoadOrCreateKey: the key is made once, private (0600), and read back
// by every process sharing the directory, even when they start together.
func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "checkpoint.key")
	keys := make([]string, 8)
	created := make([]bool, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() {
			k, c, err := transparency.LoadOrCreateKey(path, "audit.test/key")
			if err != nil {
				t.Error(err)
				return
			}
			keys[i], created[i] = k.VerifierKey, c
		})
	}
	wg.Wait()
	n := 0
	for i := range keys {
		if keys[i] != keys[0] {
			t.Fatalf("two keys: %q and %q", keys[0], keys[i])
		}
		if created[i] {
			n++
		}
	}
	info, err := os.Stat(path)
	if err != nil || n != 1 || info.Mode().Perm() != 0o600 {
		t.Fatalf("created %d times, mode %v, %v", n, info.Mode(), err)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Fatalf("left behind: %v", entries)
	}
}
