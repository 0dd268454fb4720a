package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// FileSource reads the configuration from a local file. Its version is the
// SHA-256 of the content, not the modification time, so touching the file or
// rewriting it with the same bytes is not a change.
type FileSource struct {
	path     string
	maxBytes int64
}

// NewFileSource returns a source for the file at path.
func NewFileSource(path string, opts SourceOptions) *FileSource {
	opts = opts.withDefaults()
	return &FileSource{path: path, maxBytes: opts.MaxBytes}
}

// Path is the file's path; the watcher watches its directory.
func (s *FileSource) Path() string { return s.path }

func (s *FileSource) String() string { return "file://" + s.path }

// Fetch reads the file. The whole file is hashed even when it is unchanged:
// a configuration file is small and a hash is the only change test that is not
// fooled by touch or by a same-second rewrite.
func (s *FileSource) Fetch(ctx context.Context, ifVersion string) ([]byte, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", fmt.Errorf("read %s: %w", s, err)
	}
	f, err := os.Open(s.path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, "", fmt.Errorf("read %s: %w: %w", s, ErrSourceNotFound, err)
		}
		return nil, "", fmt.Errorf("read %s: %w", s, err)
	}
	defer f.Close()
	doc, err := io.ReadAll(io.LimitReader(f, s.maxBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", s, err)
	}
	if int64(len(doc)) > s.maxBytes {
		return nil, "", fmt.Errorf("read %s: %w (more than %d bytes)", s, ErrDocumentTooLarge, s.maxBytes)
	}
	version := contentVersion(doc)
	if version == ifVersion {
		return nil, version, ErrNotModified
	}
	return doc, version, nil
}

// contentVersion is a file document's version: "sha256:" and the hex digest.
func contentVersion(doc []byte) string {
	sum := sha256.Sum256(doc)
	return "sha256:" + hex.EncodeToString(sum[:])
}
