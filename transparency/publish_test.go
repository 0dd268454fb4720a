package transparency_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/transparency"
)

// TestS3PublisherWritesEachCheckpointOnce publishes to an S3-compatible
// store (versitygw): one object per checkpoint, named by its size; the same
// checkpoint again is a harmless retry, another one of that size is refused.
func TestS3PublisherWritesEachCheckpointOnce(t *testing.T) {
	endpoint, bucket, ak, sk := testenv.S3(t)
	client := testenv.NewS3Client(endpoint, ak, sk)
	p := &transparency.S3Publisher{Client: client, Bucket: bucket, Prefix: "audit/checkpoints/"}
	ctx := context.Background()
	for _, c := range []struct {
		size int64
		note string
	}{{5, "note of 5\n"}, {12, "note of 12\n"}, {5, "note of 5\n"}} {
		if err := p.Publish(ctx, c.size, c.note); err != nil {
			t.Fatalf("publish %d: %v", c.size, err)
		}
	}
	if err := p.Publish(ctx, 12, "another note of 12\n"); err == nil {
		t.Fatal("a second checkpoint of size 12 replaced the first")
	}
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("audit/checkpoints/00000000000000000012")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	if b, _ := io.ReadAll(out.Body); string(b) != "note of 12\n" {
		t.Fatalf("object of size 12 holds %q", b)
	}
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("audit/")})
	if err != nil || len(list.Contents) != 2 {
		t.Fatalf("%d objects, %v; want 2", len(list.Contents), err)
	}
}

// TestFilePublisherAppendsAndSplits: notes appended one after the other
// read back one by one, and a retry of the last one is not written twice.
func TestFilePublisherAppendsAndSplits(t *testing.T) {
	key := newKey(t, testOrigin)
	path := filepath.Join(t.TempDir(), "checkpoints.log")
	var notes []string
	for size := int64(1); size <= 3; size++ {
		n, err := transparency.Sign(transparency.Tree{Origin: testOrigin, Size: size}, key.Signer)
		if err != nil {
			t.Fatal(err)
		}
		notes = append(notes, n)
		if err := (&transparency.FilePublisher{Path: path}).Publish(context.Background(), size, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := (&transparency.FilePublisher{Path: path}).Publish(context.Background(), 3, notes[2]); err != nil {
		t.Fatal(err)
	}
	got, err := transparency.ReadNotes(path)
	if err != nil || strings.Join(got, "|") != strings.Join(notes, "|") {
		t.Fatalf("read back %q, %v; want %q", got, err, notes)
	}
	for i, n := range got {
		if tree, err := transparency.Open(n, key.Verifier); err != nil || tree.Size != int64(i+1) {
			t.Fatalf("note %d: %+v, %v", i, tree, err)
		}
	}
	if info, _ := os.Stat(path); info.Mode().Perm()&0o022 != 0 {
		t.Fatalf("published file mode %v is writable by others", info.Mode())
	}
}
