package config

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// ErrNotModified is returned by Source.Fetch when the document's version equals
// the version the caller already has, so nothing was (or had to be) read.
var ErrNotModified = errors.New("configuration document not modified")

// The kinds of fetch failure. Callers tell them apart with errors.Is: only an
// unavailable source justifies starting from the cached copy, while a missing
// object or rejected credentials is an operator error that must be seen.
var (
	// ErrSourceUnavailable: the source could not be reached (network, timeout,
	// server error). Transient; the cache may stand in.
	ErrSourceUnavailable = errors.New("configuration source unavailable")
	// ErrSourceNotFound: the bucket, key or file does not exist.
	ErrSourceNotFound = errors.New("configuration document not found")
	// ErrCredentialsRejected: the S3 server refused the credentials or the access.
	ErrCredentialsRejected = errors.New("S3 credentials rejected")
	// ErrDocumentTooLarge: the document exceeds SourceOptions.MaxBytes.
	ErrDocumentTooLarge = errors.New("configuration document too large")
)

// Defaults for SourceOptions.
const (
	DefaultMaxDocumentBytes = 1 << 20
	DefaultFetchTimeout     = 10 * time.Second
	DefaultS3Region         = "us-east-1"
)

// Source is where the configuration document lives: a local file or an S3 object.
type Source interface {
	// Fetch returns the document and its version (a content hash for files, the
	// ETag for S3). When the current version equals ifVersion it returns
	// ErrNotModified instead, so polling an unchanged document is cheap.
	Fetch(ctx context.Context, ifVersion string) (doc []byte, version string, err error)
	// String names the source for logs and status; it never contains secrets.
	String() string
}

// SourceOptions tune OpenSource. The zero value is right for production: the
// standard AWS credential chain, region and endpoint from the environment.
type SourceOptions struct {
	// Endpoint of an S3-compatible store (e.g. http://127.0.0.1:7070). Empty:
	// AWS_ENDPOINT_URL_S3, else AWS itself. A custom endpoint implies path-style
	// addressing, which S3-compatible stores need.
	Endpoint string
	// Region; empty: the SDK's (AWS_REGION, shared config), else us-east-1.
	Region string
	// Credentials replaces the standard chain (environment, shared files,
	// instance and IRSA roles) when set; tests use it.
	Credentials aws.CredentialsProvider
	// MaxBytes bounds the document size (default 1 MiB): a configuration file
	// is small, and a bigger object is a mistake we refuse rather than buffer.
	MaxBytes int64
	// Timeout bounds one fetch, retries included (default 10 s), so a hung
	// endpoint cannot stall start-up or the watcher.
	Timeout time.Duration
}

func (o SourceOptions) withDefaults() SourceOptions {
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultMaxDocumentBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultFetchTimeout
	}
	return o
}

// OpenSource returns the Source that ref names: "s3://bucket/key",
// "file:///abs/path" or a plain (relative or absolute) path. Opening does no
// network I/O; errors about reachability come from Fetch.
func OpenSource(ref string, opts SourceOptions) (Source, error) {
	opts = opts.withDefaults()
	switch {
	case ref == "":
		return nil, errors.New("configuration source: empty reference")
	case strings.HasPrefix(ref, "s3://"):
		u, err := url.Parse(ref)
		if err != nil {
			return nil, fmt.Errorf("configuration source %q: %w", ref, err)
		}
		bucket, key := u.Host, strings.TrimPrefix(u.Path, "/")
		if bucket == "" || key == "" || strings.HasSuffix(key, "/") {
			return nil, fmt.Errorf("configuration source %q: want s3://bucket/key", ref)
		}
		return newS3Source(bucket, key, opts)
	case strings.HasPrefix(ref, "file://"):
		u, err := url.Parse(ref)
		if err != nil {
			return nil, fmt.Errorf("configuration source %q: %w", ref, err)
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("configuration source %q: file URLs must be file:///path (no host)", ref)
		}
		if u.Path == "" {
			return nil, fmt.Errorf("configuration source %q: no path", ref)
		}
		return NewFileSource(u.Path, opts), nil
	case strings.Contains(ref, "://"):
		return nil, fmt.Errorf("configuration source %q: unsupported scheme (want s3://, file:// or a path)", ref)
	default:
		return NewFileSource(ref, opts), nil
	}
}
