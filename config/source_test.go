package config

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

func TestOpenSourceRefs(t *testing.T) {
	tests := []struct {
		ref     string
		want    string // String() of the source, or a fragment of the error
		wantErr bool
	}{
		{ref: "s3://configs/prod/worker.json", want: "s3://configs/prod/worker.json (endpoint http://127.0.0.1:9)"},
		{ref: "file:///etc/audit/worker.json", want: "file:///etc/audit/worker.json"},
		{ref: "file://localhost/etc/audit/worker.json", want: "file:///etc/audit/worker.json"},
		{ref: "config/worker.json", want: "file://config/worker.json"},
		{ref: "/abs/worker.json", want: "file:///abs/worker.json"},
		{ref: "", want: "empty", wantErr: true},
		{ref: "s3://bucket-only", want: "want s3://bucket/key", wantErr: true},
		{ref: "s3://bucket/", want: "want s3://bucket/key", wantErr: true},
		{ref: "s3://bucket/dir/", want: "want s3://bucket/key", wantErr: true},
		{ref: "file://otherhost/x.json", want: "no host", wantErr: true},
		{ref: "https://example.invalid/x.json", want: "unsupported scheme", wantErr: true},
	}
	for _, tt := range tests {
		src, err := OpenSource(tt.ref, SourceOptions{Endpoint: "http://127.0.0.1:9", Credentials: staticCreds("a", "b")})
		if tt.wantErr {
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("OpenSource(%q) err = %v, want one containing %q", tt.ref, err, tt.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("OpenSource(%q): %v", tt.ref, err)
			continue
		}
		if got := src.String(); got != tt.want {
			t.Errorf("OpenSource(%q).String() = %q, want %q", tt.ref, got, tt.want)
		}
	}
}

func TestS3SourceStringHidesEndpointUserInfo(t *testing.T) {
	src, err := OpenSource("s3://b/k", SourceOptions{Endpoint: "http://user:hunter2@127.0.0.1:9", Credentials: staticCreds("a", "b")})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(src.String(), "hunter2") {
		t.Errorf("String() = %q shows the endpoint password", src)
	}
	if _, err := OpenSource("s3://b/k", SourceOptions{Endpoint: "ftp://127.0.0.1"}); err == nil {
		t.Error("an ftp:// endpoint was accepted")
	}
}

func TestFileSourceVersionIsContentHash(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "worker.json")
	writeFile(t, path, `{"logging":{"level":"info"}}`)
	src, err := OpenSource("file://"+path, SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	doc, v1, err := src.Fetch(ctx, "")
	if err != nil || string(doc) != `{"logging":{"level":"info"}}` || !strings.HasPrefix(v1, "sha256:") {
		t.Fatalf("Fetch = %q, %q, %v", doc, v1, err)
	}

	// Touching the file, or rewriting the same bytes, is not a change.
	later := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	if _, v, err := src.Fetch(ctx, v1); !errors.Is(err, ErrNotModified) || v != v1 {
		t.Errorf("after touch: version %q, err %v; want ErrNotModified", v, err)
	}
	writeFile(t, path, `{"logging":{"level":"info"}}`)
	if _, _, err := src.Fetch(ctx, v1); !errors.Is(err, ErrNotModified) {
		t.Errorf("after same-content rewrite: err %v; want ErrNotModified", err)
	}

	writeFile(t, path, `{"logging":{"level":"debug"}}`)
	doc, v2, err := src.Fetch(ctx, v1)
	if err != nil || v2 == v1 || string(doc) != `{"logging":{"level":"debug"}}` {
		t.Errorf("after change: %q, %q, %v", doc, v2, err)
	}
}

func TestFileSourceErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	missing := NewFileSource(filepath.Join(dir, "missing.json"), SourceOptions{})
	if _, _, err := missing.Fetch(ctx, ""); !errors.Is(err, ErrSourceNotFound) || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing file: %v", err)
	}
	big := filepath.Join(dir, "big.json")
	writeFile(t, big, `{"logging":{"level":"info"}, "pad": "`+strings.Repeat("x", 200)+`"}`)
	if _, _, err := NewFileSource(big, SourceOptions{MaxBytes: 100}).Fetch(ctx, ""); !errors.Is(err, ErrDocumentTooLarge) {
		t.Errorf("oversized file: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := NewFileSource(big, SourceOptions{}).Fetch(cancelled, ""); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: %v", err)
	}
}

// A refused connection is "unavailable", the kind that lets LoadInitial fall
// back to the cache. No S3 server is needed for this: nothing listens there.
func TestS3UnreachableEndpoint(t *testing.T) {
	ep := "http://" + closedAddr(t)
	src, err := OpenSource("s3://configs/worker.json", SourceOptions{Endpoint: ep, Credentials: staticCreds("a", "b"), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = src.Fetch(context.Background(), "")
	if !errors.Is(err, ErrSourceUnavailable) || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("Fetch from a closed port: %v; want ErrSourceUnavailable", err)
	}
	cache := filepath.Join(t.TempDir(), CacheFileName)
	_, err = LoadInitial(context.Background(), src, cache, nil)
	want := "configuration source s3://configs/worker.json (endpoint " + ep + ") unreachable and no cached copy at " + cache
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("LoadInitial = %v\nwant it to contain %q", err, want)
	}
}

func staticCreds(ak, sk string) aws.CredentialsProvider {
	return aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk, Source: "test"}, nil
	})
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	return addr
}
