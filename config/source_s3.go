package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Source reads the configuration from one S3 object. Its version is the
// object's ETag, and Fetch is a conditional GET (If-None-Match), so polling an
// unchanged object costs a 304 and no body.
type S3Source struct {
	client   *s3.Client
	bucket   string
	key      string
	endpoint string // for String only; redacted
	maxBytes int64
	timeout  time.Duration
}

func newS3Source(bucket, key string, opts SourceOptions) (*S3Source, error) {
	var loadOpts []func(*awsconfig.LoadOptions) error
	if opts.Region != "" {
		loadOpts = append(loadOpts, awsconfig.WithRegion(opts.Region))
	}
	if opts.Credentials != nil {
		loadOpts = append(loadOpts, awsconfig.WithCredentialsProvider(opts.Credentials))
	}
	// Two attempts, not the SDK's three: the watcher polls again anyway, and an
	// unreachable endpoint should fail within Timeout rather than spend it on
	// back-off.
	loadOpts = append(loadOpts, awsconfig.WithRetryMaxAttempts(2))
	// LoadDefaultConfig only reads the environment and the shared config files
	// here; credentials are resolved lazily by the first request, so a
	// background context does not hide any network I/O.
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("s3://%s/%s: load AWS configuration: %w", bucket, key, err)
	}
	if cfg.Region == "" {
		// The SDK reads AWS_REGION only; the AWS CLI's AWS_DEFAULT_REGION is
		// what many deployments set. Failing both, us-east-1: S3-compatible
		// stores (versitygw, MinIO) sign with it, and it is AWS's default too.
		cfg.Region = os.Getenv("AWS_DEFAULT_REGION")
		if cfg.Region == "" {
			cfg.Region = DefaultS3Region
		}
	}
	endpoint := opts.Endpoint
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL_S3")
	}
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("s3://%s/%s: endpoint %q must be an http:// or https:// URL", bucket, key, Redact(endpoint))
		}
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			// S3-compatible stores rarely have wildcard DNS for bucket.host names.
			o.UsePathStyle = true
		}
	})
	return &S3Source{
		client:   client,
		bucket:   bucket,
		key:      key,
		endpoint: Redact(endpoint),
		maxBytes: opts.MaxBytes,
		timeout:  opts.Timeout,
	}, nil
}

func (s *S3Source) String() string {
	if s.endpoint != "" {
		return fmt.Sprintf("s3://%s/%s (endpoint %s)", s.bucket, s.key, s.endpoint)
	}
	return fmt.Sprintf("s3://%s/%s", s.bucket, s.key)
}

// Fetch GETs the object, with If-None-Match: ifVersion when ifVersion is set.
func (s *S3Source) Fetch(ctx context.Context, ifVersion string) ([]byte, string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.key)}
	if ifVersion != "" {
		in.IfNoneMatch = aws.String(ifVersion)
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		if httpStatus(err) == http.StatusNotModified {
			return nil, ifVersion, ErrNotModified
		}
		return nil, "", s.classify(ctx, err)
	}
	defer out.Body.Close()
	version := aws.ToString(out.ETag)
	if n := aws.ToInt64(out.ContentLength); n > s.maxBytes {
		return nil, "", fmt.Errorf("get %s: %w (%d bytes, limit %d)", s, ErrDocumentTooLarge, n, s.maxBytes)
	}
	// The length header can be absent (chunked responses), so the read is
	// bounded as well.
	doc, err := io.ReadAll(io.LimitReader(out.Body, s.maxBytes+1))
	if err != nil {
		return nil, "", s.classify(ctx, fmt.Errorf("read body: %w", err))
	}
	if int64(len(doc)) > s.maxBytes {
		return nil, "", fmt.Errorf("get %s: %w (more than %d bytes)", s, ErrDocumentTooLarge, s.maxBytes)
	}
	if version == "" {
		// Without an ETag conditional GETs cannot work; fall back to the
		// content hash so changes are still detected.
		version = contentVersion(doc)
	}
	if version == ifVersion {
		return nil, version, ErrNotModified
	}
	return doc, version, nil
}

// classify wraps an SDK error with one of the package's sentinel kinds and a
// message an operator can act on.
func (s *S3Source) classify(ctx context.Context, err error) error {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		switch apiErr.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("get %s: %w: bucket %q does not exist: %w", s, ErrSourceNotFound, s.bucket, err)
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("get %s: %w: no object %q in bucket %q: %w", s, ErrSourceNotFound, s.key, s.bucket, err)
		case "AccessDenied", "SignatureDoesNotMatch", "InvalidAccessKeyId", "ExpiredToken",
			"InvalidToken", "InvalidClientTokenId", "AuthorizationHeaderMalformed",
			"XAdminUserNotFound": // versitygw's answer (with a 404) to an unknown access key
			return fmt.Errorf("get %s: %w (%s): check the access key and secret, or the role's permission to read the object: %w",
				s, ErrCredentialsRejected, apiErr.ErrorCode(), err)
		}
	}
	switch status := httpStatus(err); {
	case status == http.StatusForbidden:
		return fmt.Errorf("get %s: %w (HTTP 403): %w", s, ErrCredentialsRejected, err)
	case status == http.StatusNotFound:
		return fmt.Errorf("get %s: %w: %w", s, ErrSourceNotFound, err)
	case status >= 500 || status == http.StatusTooManyRequests:
		return fmt.Errorf("get %s: %w (HTTP %d): %w", s, ErrSourceUnavailable, status, err)
	}
	var sendErr *smithyhttp.RequestSendError
	if errors.As(err, &sendErr) {
		return fmt.Errorf("get %s: %w: endpoint unreachable: %w", s, ErrSourceUnavailable, err)
	}
	// Our own timeout (not the caller's cancellation) means the endpoint did not answer in time.
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || strings.Contains(err.Error(), "retry quota exceeded") {
		return fmt.Errorf("get %s: %w: no answer within %s: %w", s, ErrSourceUnavailable, s.timeout, err)
	}
	return fmt.Errorf("get %s: %w", s, err)
}

// httpStatus is the HTTP status of a failed SDK call, or 0 if there was no response.
func httpStatus(err error) int {
	var respErr *awshttp.ResponseError
	if errors.As(err, &respErr) {
		return respErr.HTTPStatusCode()
	}
	return 0
}
