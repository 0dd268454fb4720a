package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// CacheFileName is the cache's file name inside the data directory.
const CacheFileName = "config-cache.json"

// CachePath is where the last good configuration document is cached for dataDir.
func CachePath(dataDir string) string { return filepath.Join(dataDir, CacheFileName) }

// CachedDocument is the cache file's content: the last configuration document
// that was fetched and accepted, and where it came from.
type CachedDocument struct {
	Source  string    `json:"source"`
	Version string    `json:"version"`
	SavedAt time.Time `json:"savedAt"`
	// Document is kept byte for byte (base64 in the file), so a document read
	// back from the cache is exactly the one that was accepted.
	Document []byte `json:"document"`
}

// Meta says which document a configuration came from.
type Meta struct {
	Version string    // the source's version: the S3 ETag or the file's "sha256:…"
	Source  string    // Source.String()
	Time    time.Time // when the document was fetched from its source
	// FromCache is true when the document was read from the local cache
	// because the source was unreachable.
	FromCache bool
}

// WriteCache replaces the cache file at path atomically (temporary file in the
// same directory, fsync, rename) with mode 0600, since the document can hold
// secrets. A crash leaves the old cache or the new one, never half of one.
func WriteCache(path string, c CachedDocument) (err error) {
	data, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return fmt.Errorf("write config cache: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write config cache: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".config-cache-*.tmp") // created with mode 0600
	if err != nil {
		return fmt.Errorf("write config cache: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("write config cache: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("write config cache: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write config cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write config cache: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write config cache: %w", err)
	}
	// Make the rename itself durable; best effort, as not every file system
	// supports syncing a directory.
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

// ReadCache reads the cache file at path. A missing file is fs.ErrNotExist.
func ReadCache(path string) (CachedDocument, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return CachedDocument{}, fmt.Errorf("read config cache: %w", err)
	}
	var c CachedDocument
	if err := json.Unmarshal(data, &c); err != nil {
		return CachedDocument{}, fmt.Errorf("read config cache %s: %w", path, err)
	}
	if len(c.Document) == 0 {
		return CachedDocument{}, fmt.Errorf("read config cache %s: no document in it", path)
	}
	return c, nil
}

// Loaded is the configuration the worker starts with.
type Loaded struct {
	Config Config
	Meta   Meta
	// Degraded is true when the source was unreachable and the configuration
	// came from the cache; Reason says why (the fetch error).
	Degraded bool
	Reason   string
	// CacheErr is set when the document came from the source but could not
	// be written to the cache; start-up goes on, and the caller logs it.
	CacheErr error
}

// LoadInitial loads the configuration to start with. It fetches src and parses
// the document (parse nil: Parse); on success the document is cached at
// cachePath (empty: no cache). Only when the source is unavailable
// (ErrSourceUnavailable: network, timeout, server error) does it start from the
// cache and report Degraded. A missing object, rejected credentials or an
// invalid document are errors even with a cache: they are the operator's to
// fix, and a restart is when they must be seen rather than masked by an old copy.
func LoadInitial(ctx context.Context, src Source, cachePath string, parse func([]byte) (Config, error)) (Loaded, error) {
	if parse == nil {
		parse = Parse
	}
	doc, version, err := src.Fetch(ctx, "")
	if err == nil {
		cfg, err := parse(doc)
		if err != nil {
			return Loaded{}, fmt.Errorf("configuration from %s (version %s): %w", src, version, err)
		}
		now := time.Now()
		l := Loaded{Config: cfg, Meta: Meta{Version: version, Source: src.String(), Time: now}}
		if cachePath != "" {
			l.CacheErr = WriteCache(cachePath, CachedDocument{Source: src.String(), Version: version, SavedAt: now, Document: doc})
		}
		return l, nil
	}
	if !errors.Is(err, ErrSourceUnavailable) || ctx.Err() != nil {
		return Loaded{}, fmt.Errorf("load configuration: %w", err)
	}
	fetchErr := err
	if cachePath == "" {
		return Loaded{}, fmt.Errorf("configuration source %s unreachable and no cache configured: %w", src, fetchErr)
	}
	cached, err := ReadCache(cachePath)
	if errors.Is(err, fs.ErrNotExist) {
		return Loaded{}, fmt.Errorf("configuration source %s unreachable and no cached copy at %s: %w", src, cachePath, fetchErr)
	}
	if err != nil {
		return Loaded{}, fmt.Errorf("configuration source %s unreachable and the cached copy is unusable: %w (source: %w)", src, err, fetchErr)
	}
	// A cache written for another source (CONFIG_PATH changed) is a different
	// configuration altogether; starting from it would be a silent surprise.
	if cached.Source != src.String() {
		return Loaded{}, fmt.Errorf("configuration source %s unreachable and the cached copy at %s is from another source (%s): %w",
			src, cachePath, cached.Source, fetchErr)
	}
	cfg, err := parse(cached.Document)
	if err != nil {
		return Loaded{}, fmt.Errorf("configuration source %s unreachable and the cached copy at %s (version %s) is invalid: %w",
			src, cachePath, cached.Version, err)
	}
	return Loaded{
		Config:   cfg,
		Meta:     Meta{Version: cached.Version, Source: cached.Source, Time: cached.SavedAt, FromCache: true},
		Degraded: true,
		Reason:   fetchErr.Error(),
	}, nil
}
