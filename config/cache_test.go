package config

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestWriteCacheIsAtomicAndPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	path := CachePath(dir)
	// A cache left world-readable by something else must end up 0600.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, "old")
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}

	doc := []byte("{\"security\":{\"encryptionKey\":\"0123456789abcdef0123456789abcdef\"}}\n")
	in := CachedDocument{Source: "s3://b/k", Version: `"etag-1"`, SavedAt: time.Now().UTC().Truncate(time.Second), Document: doc}
	if err := WriteCache(path, in); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("cache mode %v, want 0600", fi.Mode().Perm())
	}
	out, err := ReadCache(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(out.Document) != string(doc) || out.Source != in.Source || out.Version != in.Version || !out.SavedAt.Equal(in.SavedAt) {
		t.Errorf("read back %+v, want %+v", out, in)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only the cache (no temporary files left)", len(entries))
	}

	// The data directory is created (private) when missing.
	fresh := CachePath(filepath.Join(t.TempDir(), "new", "dir"))
	if err := WriteCache(fresh, in); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Dir(fresh)); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("created data dir: %v, %v", fi.Mode(), err)
	}
}

func TestReadCacheErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadCache(filepath.Join(dir, "none.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing cache: %v", err)
	}
	bad := filepath.Join(dir, "bad.json")
	writeFile(t, bad, `{"source":`)
	if _, err := ReadCache(bad); err == nil {
		t.Error("malformed cache accepted")
	}
	empty := filepath.Join(dir, "empty.json")
	writeFile(t, empty, `{"source":"x","version":"v"}`)
	if _, err := ReadCache(empty); err == nil || !strings.Contains(err.Error(), "no document") {
		t.Errorf("cache without document: %v", err)
	}
}

func TestLoadInitialFromFileWritesCache(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "worker.json")
	writeFile(t, path, `{"logging":{"level":"warn"}}`)
	src := NewFileSource(path, SourceOptions{})
	cache := CachePath(filepath.Join(dir, "data"))
	l, err := LoadInitial(context.Background(), src, cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Degraded || l.CacheErr != nil || l.Config.Logging.Level != "warn" || l.Meta.FromCache || l.Meta.Source != src.String() {
		t.Errorf("LoadInitial = %+v", l)
	}
	c, err := ReadCache(cache)
	if err != nil || c.Version != l.Meta.Version || string(c.Document) != `{"logging":{"level":"warn"}}` {
		t.Errorf("cache = %+v, %v", c, err)
	}

	// An invalid document is an error, not a reason to use the cache.
	writeFile(t, path, `{"worker":{"port":70000}}`)
	if _, err := LoadInitial(context.Background(), src, cache, nil); err == nil || !strings.Contains(err.Error(), "worker.port") {
		t.Errorf("invalid document: %v", err)
	}
	// So is a missing file.
	if _, err := LoadInitial(context.Background(), NewFileSource(filepath.Join(dir, "gone.json"), SourceOptions{}), cache, nil); !errors.Is(err, ErrSourceNotFound) {
		t.Errorf("missing file: %v", err)
	}
}

// downSource is a source that is always unreachable; the S3 tests exercise the
// real thing, this one the cache rules without a server.
type downSource struct{ name string }

func (d downSource) Fetch(context.Context, string) ([]byte, string, error) {
	return nil, "", fmt.Errorf("get %s: %w: connection refused", d.name, ErrSourceUnavailable)
}
func (d downSource) String() string { return d.name }

func TestLoadInitialFallbackRules(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cache := CachePath(dir)
	src := downSource{"s3://configs/worker.json"}

	_, err := LoadInitial(ctx, src, cache, nil)
	if err == nil || !strings.Contains(err.Error(), "configuration source s3://configs/worker.json unreachable and no cached copy at "+cache) {
		t.Errorf("no cache: %v", err)
	}
	if _, err := LoadInitial(ctx, src, "", nil); err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Errorf("no cache path: %v", err)
	}

	saved := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	if err := WriteCache(cache, CachedDocument{Source: src.name, Version: `"v1"`, SavedAt: saved, Document: []byte(`{"logging":{"level":"error"}}`)}); err != nil {
		t.Fatal(err)
	}
	l, err := LoadInitial(ctx, src, cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !l.Degraded || !strings.Contains(l.Reason, "connection refused") || l.Config.Logging.Level != "error" ||
		!l.Meta.FromCache || l.Meta.Version != `"v1"` || !l.Meta.Time.Equal(saved) {
		t.Errorf("from cache: %+v", l)
	}

	// A cache of another source is not used.
	other := downSource{"s3://configs/other.json"}
	if _, err := LoadInitial(ctx, other, cache, nil); err == nil || !strings.Contains(err.Error(), "from another source") {
		t.Errorf("cache of another source: %v", err)
	}
	// Nor is a cached document the current rules refuse.
	if err := WriteCache(cache, CachedDocument{Source: src.name, Version: `"v0"`, Document: []byte(`{"worker":{"port":70000}}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadInitial(ctx, src, cache, nil); err == nil || !strings.Contains(err.Error(), "cached copy at "+cache+` (version "v0") is invalid`) {
		t.Errorf("invalid cache: %v", err)
	}
}
