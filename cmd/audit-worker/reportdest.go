package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/notify"
	"github.com/smartlogs/audit-worker/report"
)

// newDestination returns the destination a scheduled report names: a
// directory, an s3://bucket/prefix, or an http(s):// webhook.
func newDestination(name, dest, secret string) (report.Destination, error) {
	switch {
	case strings.HasPrefix(dest, "s3://"):
		u, err := url.Parse(dest)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("compliance report %s: destination must be s3://bucket/prefix", name)
		}
		return newS3Destination(u.Host, strings.TrimPrefix(u.Path, "/"))
	case strings.HasPrefix(dest, "http://") || strings.HasPrefix(dest, "https://"):
		return &webhookDestination{name: name, url: dest, secret: secret, client: &http.Client{Timeout: 30 * time.Second}}, nil
	}
	return dirDestination(dest), nil
}

// dirDestination writes each report to a file of the directory, atomically
// (a temporary file renamed into place), readable by its owner only.
type dirDestination string

func (d dirDestination) String() string { return "directory " + string(d) }

func (d dirDestination) Deliver(_ context.Context, del report.Delivery) (string, error) {
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return "", err
	}
	final := filepath.Join(string(d), del.Name)
	tmp, err := os.CreateTemp(string(d), ".report-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name()) // after the rename, nothing is left to remove
	if _, err := tmp.Write(del.Body); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return final, os.Rename(tmp.Name(), final)
}

// s3Destination puts each report under a prefix of a bucket, with its
// SHA-256 as object metadata. Credentials, region and endpoint come from the
// AWS environment (AWS_ENDPOINT_URL_S3 for an S3-compatible store), as for a
// configuration kept on S3.
type s3Destination struct {
	client         *s3.Client
	bucket, prefix string
}

func newS3Destination(bucket, prefix string) (*s3Destination, error) {
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), awsconfig.WithRetryMaxAttempts(2))
	if err != nil {
		return nil, fmt.Errorf("s3://%s: load AWS configuration: %w", bucket, err)
	}
	if cfg.Region == "" {
		cfg.Region = os.Getenv("AWS_DEFAULT_REGION")
		if cfg.Region == "" {
			cfg.Region = config.DefaultS3Region
		}
	}
	endpoint := os.Getenv("AWS_ENDPOINT_URL_S3")
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			o.UsePathStyle = true
		}
	})
	return &s3Destination{client: client, bucket: bucket, prefix: prefix}, nil
}

func (d *s3Destination) String() string { return "s3://" + d.bucket + "/" + d.prefix }

func (d *s3Destination) Deliver(ctx context.Context, del report.Delivery) (string, error) {
	key := path.Join(d.prefix, del.Name)
	_, err := d.client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(d.bucket), Key: aws.String(key),
		Body: bytes.NewReader(del.Body), ContentType: aws.String(del.ContentType),
		ContentLength: aws.Int64(int64(len(del.Body))),
		Metadata: map[string]string{"sha256": del.SHA256, "report-schedule": del.Run.Schedule,
			"period-start": del.Run.PeriodStart.Format(time.RFC3339), "period-end": del.Run.PeriodEnd.Format(time.RFC3339)}})
	if err != nil {
		return "", fmt.Errorf("put s3://%s/%s: %w", d.bucket, key, err)
	}
	return "s3://" + d.bucket + "/" + key, nil
}

// webhookDestination POSTs each report, signed like the alert webhooks
// (X-Audit-Timestamp, X-Audit-Signature over "<timestamp>.<body>",
// X-Audit-Delivery), so that receivers verify it with notify.Verify.
type webhookDestination struct {
	name, url, secret string
	client            *http.Client
}

func (d *webhookDestination) String() string { return "webhook " + d.name }

func (d *webhookDestination) Deliver(ctx context.Context, del report.Delivery) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.url, bytes.NewReader(del.Body))
	if err != nil {
		return "", fmt.Errorf("webhook %s: %w", d.name, err)
	}
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	req.Header.Set("Content-Type", del.ContentType)
	req.Header.Set("Content-Disposition", `attachment; filename="`+del.Name+`"`)
	req.Header.Set(notify.HeaderTimestamp, ts)
	req.Header.Set(notify.HeaderSignature, notify.Sign(d.secret, ts, del.Body))
	req.Header.Set(notify.HeaderDelivery, "rpt-"+hex.EncodeToString(id))
	req.Header.Set("X-Audit-Report-SHA256", del.SHA256)
	resp, err := d.client.Do(req)
	if err != nil {
		// The URL may hold a token: the error names the webhook only.
		return "", fmt.Errorf("webhook %s: the request failed", d.name)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("webhook %s answered %d", d.name, resp.StatusCode)
	}
	return d.String(), nil
}
