package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"go/build"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// VersityGWInstall is how to get the S3-compatible server the tests start.
const VersityGWInstall = "go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// S3Region is the region the test clients sign with; versitygw's default.
const S3Region = "us-east-1"

// S3 returns an S3-compatible endpoint with a fresh bucket for this test, and
// the access key and secret that work on it. The server is the one named by
// AUDIT_TEST_S3_ENDPOINT (with AUDIT_TEST_S3_ACCESS_KEY, AUDIT_TEST_S3_SECRET_KEY),
// else a versitygw started for this test (see StartVersityGW). The bucket is
// emptied and removed when the test ends.
func S3(tb testing.TB) (endpoint, bucket, accessKey, secretKey string) {
	tb.Helper()
	if ep := os.Getenv("AUDIT_TEST_S3_ENDPOINT"); ep != "" {
		ak, sk := os.Getenv("AUDIT_TEST_S3_ACCESS_KEY"), os.Getenv("AUDIT_TEST_S3_SECRET_KEY")
		client := NewS3Client(ep, ak, sk)
		bucket := newBucket(tb, client, true)
		return ep, bucket, ak, sk
	}
	srv := StartVersityGW(tb)
	return srv.Endpoint, srv.NewBucket(tb), srv.AccessKey, srv.SecretKey
}

// NewS3Client returns a client for an S3-compatible endpoint: static
// credentials, region us-east-1, path-style addressing. No environment or
// shared-file settings are read, so a developer's AWS setup cannot leak in.
func NewS3Client(endpoint, accessKey, secretKey string) *s3.Client {
	creds := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey, Source: "testenv"}, nil
	})
	return s3.New(s3.Options{
		Region:       S3Region,
		Credentials:  creds,
		BaseEndpoint: aws.String(endpoint),
		UsePathStyle: true,
	})
}

// S3Server is a versitygw process this test started; unlike a shared server it
// can be stopped and started again (its data directory survives), for tests of
// what happens while S3 is down.
type S3Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string

	bin  string
	addr string
	root string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has exited
	output *bytes.Buffer
}

// StartVersityGW starts versitygw (from PATH or $(go env GOPATH)/bin) on a free
// port of 127.0.0.1 with its posix backend in a temporary directory, waits
// until it answers, and stops it when the test ends. Without the binary the
// test is skipped or failed (see Unavailable).
func StartVersityGW(tb testing.TB) *S3Server {
	tb.Helper()
	bin, err := findVersityGW()
	if err != nil {
		Unavailable(tb, "S3 (versitygw)", VersityGWInstall, err)
	}
	s := &S3Server{
		AccessKey: "test-access-" + randomSuffix(),
		SecretKey: "test-secret-" + randomSuffix() + randomSuffix(),
		bin:       bin,
		root:      tb.TempDir(),
	}
	// A port picked by listening on :0 can be taken by someone else before
	// versitygw binds it; a few tries make that race harmless.
	for attempt := 0; ; attempt++ {
		s.addr, err = freeAddr()
		if err != nil {
			tb.Fatalf("versitygw: %v", err)
		}
		s.Endpoint = "http://" + s.addr
		if err = s.Start(); err == nil {
			break
		}
		if attempt == 2 {
			Unavailable(tb, "S3 (versitygw)", VersityGWInstall, err)
		}
	}
	tb.Cleanup(func() {
		if err := s.Stop(); err != nil {
			tb.Logf("stop versitygw: %v", err)
		}
	})
	return s
}

// Start starts the server (again) on its address and data directory and waits
// until it answers. Starting a running server is a no-op.
func (s *S3Server) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return nil
	}
	s.output = new(bytes.Buffer)
	cmd := exec.Command(s.bin, "--port", s.addr, "--quiet", "posix", s.root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+s.AccessKey, "ROOT_SECRET_KEY="+s.SecretKey)
	cmd.Stdout, cmd.Stderr = s.output, s.output
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	s.cmd, s.done = cmd, done
	if err := waitForHTTP(s.Endpoint, done, 20*time.Second); err != nil {
		s.stopLocked()
		return fmt.Errorf("versitygw on %s: %w; output:\n%s", s.addr, err, s.output)
	}
	return nil
}

// Stop stops the server; its data stays for a later Start. Stopping a
// stopped server is a no-op.
func (s *S3Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

func (s *S3Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	defer func() { s.cmd, s.done = nil, nil }()
	// Kill, not a graceful signal: the tests want S3 gone, and a posix
	// backend has nothing to flush that the tests rely on.
	if err := s.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill versitygw: %w", err)
	}
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		return errors.New("versitygw did not exit within 10 s of being killed")
	}
	// The port must be free again before a restart can bind it.
	return nil
}

// Client returns an S3 client for this server.
func (s *S3Server) Client() *s3.Client { return NewS3Client(s.Endpoint, s.AccessKey, s.SecretKey) }

// NewBucket creates a bucket for this test. It is not removed at cleanup:
// the whole data directory goes with the test's temporary directory.
func (s *S3Server) NewBucket(tb testing.TB) string {
	tb.Helper()
	return newBucket(tb, s.Client(), false)
}

func newBucket(tb testing.TB, client *s3.Client, removeAtCleanup bool) string {
	tb.Helper()
	name := "audit-test-" + randomSuffix()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		Unavailable(tb, "S3", "set AUDIT_TEST_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY to a working server, or "+VersityGWInstall, fmt.Errorf("create bucket %s: %w", name, err))
	}
	if removeAtCleanup {
		tb.Cleanup(func() { removeBucket(tb, client, name) })
	}
	return name
}

func removeBucket(tb testing.TB, client *s3.Client, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(name)})
	if err != nil {
		tb.Logf("remove test bucket %s: %v", name, err)
		return
	}
	if len(list.Contents) > 0 {
		var ids []s3types.ObjectIdentifier
		for _, o := range list.Contents {
			ids = append(ids, s3types.ObjectIdentifier{Key: o.Key})
		}
		if _, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(name), Delete: &s3types.Delete{Objects: ids}}); err != nil {
			tb.Logf("remove test bucket %s: %v", name, err)
		}
	}
	if _, err := client.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
		tb.Logf("remove test bucket %s: %v", name, err)
	}
}

// findVersityGW looks on PATH, then in every GOPATH's bin, where `go install` puts it.
func findVersityGW() (string, error) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, nil
	}
	var tried []string
	for _, dir := range filepath.SplitList(build.Default.GOPATH) {
		p := filepath.Join(dir, "bin", "versitygw")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
		tried = append(tried, p)
	}
	return "", fmt.Errorf("versitygw is not on PATH nor at %v", tried)
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return "127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// waitForHTTP waits until endpoint answers any HTTP request (an anonymous
// request gets 403, which proves the server is up), the process exits, or the
// timeout passes.
func waitForHTTP(endpoint string, exited <-chan struct{}, timeout time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	var lastErr error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("exited before answering")
		default:
		}
		resp, err := client.Get(endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return nil
		}
		lastErr = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no answer within %s: %w", timeout, lastErr)
}
