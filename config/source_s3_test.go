package config

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// These tests run against a real S3-compatible server (versitygw, see
// internal/testenv), never a mock of S3.

func putObject(t *testing.T, client *s3.Client, bucket, key, body string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader([]byte(body))})
	if err != nil {
		t.Fatalf("put s3://%s/%s: %v", bucket, key, err)
	}
	return aws.ToString(out.ETag)
}

func openS3(t *testing.T, endpoint, bucket, key, ak, sk string, opts SourceOptions) Source {
	t.Helper()
	opts.Endpoint, opts.Credentials = endpoint, staticCreds(ak, sk)
	src, err := OpenSource("s3://"+bucket+"/"+key, opts)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// Load from S3, conditional GET, a change delivered by polling, an invalid
// version refused while the old one stays and the refusal is counted.
func TestS3LoadWatchAndRefuse(t *testing.T) {
	t.Parallel()
	endpoint, bucket, ak, sk := testenv.S3(t)
	client := testenv.NewS3Client(endpoint, ak, sk)
	etag1 := putObject(t, client, bucket, "worker.json", `{"logging":{"level":"info"},"reliableProcessor":{"concurrency":3}}`)
	src := openS3(t, endpoint, bucket, "worker.json", ak, sk, SourceOptions{})
	ctx := context.Background()

	cache := CachePath(t.TempDir())
	start, err := LoadInitial(ctx, src, cache, nil)
	if err != nil {
		t.Fatal(err)
	}
	if start.Degraded || start.Meta.Version != etag1 || start.Config.ReliableProcessor.Concurrency != 3 || start.CacheErr != nil {
		t.Fatalf("LoadInitial = %+v (ETag %s)", start, etag1)
	}
	// The conditional GET: the same ETag answers 304, mapped to ErrNotModified.
	if doc, v, err := src.Fetch(ctx, etag1); !errors.Is(err, ErrNotModified) || v != etag1 || doc != nil {
		t.Fatalf("Fetch(If-None-Match current ETag) = %q, %q, %v; want ErrNotModified", doc, v, err)
	}

	const interval = 200 * time.Millisecond
	log, logs := testLogger()
	w, got := startWatcher(t, src, WatcherOptions{Interval: interval, Start: start, CachePath: cache, Logger: log})
	testenv.Eventually(t, 5*time.Second, "first check", func() bool { return !w.Status().LastCheck.IsZero() })
	noDelivery(t, got, 2*interval, "unchanged object")

	changed := time.Now()
	etag2 := putObject(t, client, bucket, "worker.json", `{"logging":{"level":"debug"},"reliableProcessor":{"concurrency":8}}`)
	d := waitDelivery(t, got, 10*time.Second, "changed object")
	t.Logf("change delivered %s after the upload (poll interval %s)", time.Since(changed).Round(time.Millisecond), interval)
	if d.meta.Version != etag2 || d.cfg.Logging.Level != "debug" || d.cfg.ReliableProcessor.Concurrency != 8 || d.meta.Source != src.String() {
		t.Errorf("delivered %+v, want version %s", d, etag2)
	}
	if c, err := ReadCache(cache); err != nil || c.Version != etag2 {
		t.Errorf("cache = %+v, %v; want version %s", c, err, etag2)
	}

	putObject(t, client, bucket, "worker.json", `{"reliableProcessor":{"concurrency":500}}`)
	testenv.Eventually(t, 10*time.Second, "refusal", func() bool { return w.Rejected() == 1 })
	noDelivery(t, got, 3*interval, "invalid object")
	st := w.Status()
	if st.Version != etag2 || st.Rejected != 1 || !strings.Contains(st.LastError, "reliableProcessor.concurrency") {
		t.Errorf("status after refusal: %+v", st)
	}
	if n := w.Rejected(); n != 1 {
		t.Errorf("Rejected() = %d after several polls of one invalid version, want 1", n)
	}
	if !strings.Contains(logs.String(), "reliableProcessor.concurrency: must be between 1 and 50") {
		t.Errorf("log lacks the field error:\n%s", logs)
	}
	if c, err := ReadCache(cache); err != nil || c.Version != etag2 {
		t.Errorf("cache after refusal = %+v, %v; want the last good version %s", c, err, etag2)
	}
}

// S3 down at start-up: the worker starts from the cache (degraded); the
// watcher keeps polling and recovers, and applies a change, once S3 is back.
func TestS3DownStartsFromCacheAndRecovers(t *testing.T) {
	t.Parallel()
	srv := testenv.StartVersityGW(t)
	bucket := srv.NewBucket(t)
	client := srv.Client()
	etag1 := putObject(t, client, bucket, "worker.json", `{"logging":{"level":"warn"}}`)
	src := openS3(t, srv.Endpoint, bucket, "worker.json", srv.AccessKey, srv.SecretKey, SourceOptions{Timeout: 3 * time.Second})
	ctx := context.Background()
	cache := CachePath(t.TempDir())
	if _, err := LoadInitial(ctx, src, cache, nil); err != nil {
		t.Fatal(err)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	start, err := LoadInitial(ctx, src, cache, nil)
	if err != nil {
		t.Fatalf("LoadInitial with S3 down and a cache: %v", err)
	}
	if !start.Degraded || !start.Meta.FromCache || start.Meta.Version != etag1 || start.Config.Logging.Level != "warn" ||
		!strings.Contains(start.Reason, "configuration source unavailable") {
		t.Fatalf("LoadInitial = %+v", start)
	}
	noCache := CachePath(t.TempDir())
	if _, err := LoadInitial(ctx, src, noCache, nil); err == nil ||
		!strings.Contains(err.Error(), "configuration source s3://"+bucket+"/worker.json (endpoint "+srv.Endpoint+") unreachable and no cached copy at "+noCache) {
		t.Errorf("LoadInitial with S3 down and no cache: %v", err)
	}

	log, _ := testLogger()
	w, got := startWatcher(t, src, WatcherOptions{Interval: 100 * time.Millisecond, Start: start, CachePath: cache, Logger: log})
	firstCheck := time.Now()
	testenv.Eventually(t, 10*time.Second, "a failed poll while down", func() bool { return w.Status().LastCheck.After(firstCheck) })
	if st := w.Status(); !st.Degraded || st.Version != etag1 || !strings.Contains(st.LastError, "unreachable") {
		t.Errorf("status while S3 is down: %+v", st)
	}
	noDelivery(t, got, 300*time.Millisecond, "S3 down")

	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, "recovery", func() bool { st := w.Status(); return !st.Degraded && st.LastError == "" })
	noDelivery(t, got, 200*time.Millisecond, "S3 back with the cached version")

	etag2 := putObject(t, client, bucket, "worker.json", `{"logging":{"level":"error"}}`)
	d := waitDelivery(t, got, 10*time.Second, "change after recovery")
	if d.meta.Version != etag2 || d.cfg.Logging.Level != "error" || d.meta.FromCache {
		t.Errorf("delivered %+v", d)
	}
}

// Wrong credentials give a clear error, also with a cache present: a
// credentials problem is the operator's to fix, not an outage to ride out.
func TestS3WrongCredentials(t *testing.T) {
	t.Parallel()
	endpoint, bucket, ak, sk := testenv.S3(t)
	putObject(t, testenv.NewS3Client(endpoint, ak, sk), bucket, "worker.json", `{}`)
	ctx := context.Background()
	cache := CachePath(t.TempDir())
	if err := WriteCache(cache, CachedDocument{Source: "s3://" + bucket + "/worker.json (endpoint " + endpoint + ")", Version: `"x"`, Document: []byte(`{}`)}); err != nil {
		t.Fatal(err)
	}
	for name, creds := range map[string][2]string{
		"wrong secret":       {ak, sk + "-wrong"},
		"unknown access key": {"no-such-key", sk},
	} {
		src := openS3(t, endpoint, bucket, "worker.json", creds[0], creds[1], SourceOptions{})
		_, _, err := src.Fetch(ctx, "")
		if !errors.Is(err, ErrCredentialsRejected) || !strings.Contains(err.Error(), "S3 credentials rejected") {
			t.Errorf("%s: Fetch = %v; want ErrCredentialsRejected", name, err)
		} else {
			t.Logf("%s: %v", name, err)
		}
		if _, err := LoadInitial(ctx, src, cache, nil); !errors.Is(err, ErrCredentialsRejected) {
			t.Errorf("%s: LoadInitial = %v; want ErrCredentialsRejected, not the cache", name, err)
		}
	}
}

func TestS3MissingBucketKeyAndOversizedObject(t *testing.T) {
	t.Parallel()
	endpoint, bucket, ak, sk := testenv.S3(t)
	ctx := context.Background()
	src := openS3(t, endpoint, bucket, "absent.json", ak, sk, SourceOptions{})
	if _, _, err := src.Fetch(ctx, ""); !errors.Is(err, ErrSourceNotFound) || !strings.Contains(err.Error(), `no object "absent.json"`) {
		t.Errorf("missing key: %v", err)
	}
	src = openS3(t, endpoint, "no-such-bucket-here", "worker.json", ak, sk, SourceOptions{})
	if _, _, err := src.Fetch(ctx, ""); !errors.Is(err, ErrSourceNotFound) || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing bucket: %v", err)
	}
	putObject(t, testenv.NewS3Client(endpoint, ak, sk), bucket, "big.json", `{"pad":"`+strings.Repeat("x", 4096)+`"}`)
	src = openS3(t, endpoint, bucket, "big.json", ak, sk, SourceOptions{MaxBytes: 1024})
	if _, _, err := src.Fetch(ctx, ""); !errors.Is(err, ErrDocumentTooLarge) {
		t.Errorf("oversized object: %v", err)
	}
}

// The production path: endpoint from AWS_ENDPOINT_URL_S3, credentials from
// the standard chain (here its environment step), region defaulting to us-east-1.
func TestS3EndpointAndCredentialsFromEnvironment(t *testing.T) {
	endpoint, bucket, ak, sk := testenv.S3(t)
	putObject(t, testenv.NewS3Client(endpoint, ak, sk), bucket, "worker.json", `{"logging":{"level":"warn"}}`)
	dir := t.TempDir()
	// Keep a developer's own AWS setup out of the test.
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", ak)
	t.Setenv("AWS_SECRET_ACCESS_KEY", sk)
	t.Setenv("AWS_SESSION_TOKEN", "")
	src, err := OpenSource("s3://"+bucket+"/worker.json", SourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l, err := LoadInitial(context.Background(), src, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if l.Config.Logging.Level != "warn" || !strings.Contains(src.String(), endpoint) {
		t.Errorf("loaded %+v from %s", l.Config.Logging, src)
	}
}
