package transparency

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Publisher keeps signed checkpoints outside the database, where someone who
// can rewrite the database cannot rewrite them too.
type Publisher interface {
	// Publish adds the checkpoint of a tree of size leaves. Publishing the
	// same checkpoint again is harmless.
	Publish(ctx context.Context, size int64, signed string) error
	String() string
}

// FilePublisher appends each checkpoint to a local file, one signed note
// after the other, and syncs the file before Publish returns.
type FilePublisher struct {
	Path string
	mu   sync.Mutex
	last string // the last note written, so that a retry does not repeat it
}

func (p *FilePublisher) String() string { return "file " + p.Path }

// Publish appends signed unless it is the file's last note already.
func (p *FilePublisher) Publish(_ context.Context, _ int64, signed string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == "" {
		notes, err := ReadNotes(p.Path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if len(notes) > 0 {
			p.last = notes[len(notes)-1]
		}
	}
	if p.last == signed {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p.Path), 0o750); err != nil {
		return fmt.Errorf("publish checkpoint: %w", err)
	}
	f, err := os.OpenFile(p.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("publish checkpoint: %w", err)
	}
	_, err = f.WriteString(signed)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("publish checkpoint to %s: %w", p.Path, err)
	}
	p.last = signed
	return nil
}

// ReadNotes reads a file of signed notes written one after the other.
func ReadNotes(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return SplitNotes(string(b)), nil
}

// SplitNotes splits concatenated signed notes: a note's text runs to its
// blank line, and its signature lines ("— name sig") follow; the next line
// that is not a signature starts the next note.
func SplitNotes(s string) []string {
	var notes []string
	var cur strings.Builder
	inSigs := false
	for line := range strings.Lines(s) {
		switch {
		case inSigs && !strings.HasPrefix(line, "— "):
			notes = append(notes, cur.String())
			cur.Reset()
			inSigs = false
		case !inSigs && line == "\n":
			inSigs = true
		}
		cur.WriteString(line)
	}
	if cur.Len() > 0 {
		notes = append(notes, cur.String())
	}
	return notes
}

// S3Publisher writes each checkpoint as its own object, prefix + the tree
// size zero-padded to 20 digits (so that names sort by size), and never
// overwrites one (If-None-Match: *).
type S3Publisher struct {
	Client *s3.Client
	Bucket string
	Prefix string
}

func (p *S3Publisher) String() string { return "s3://" + p.Bucket + "/" + p.Prefix }

// Key is the object name of the checkpoint of a tree of size leaves.
func (p *S3Publisher) Key(size int64) string { return p.Prefix + fmt.Sprintf("%020d", size) }

// Publish puts the object unless it exists; an existing object with the same
// content is a retry, one with other content is an error.
func (p *S3Publisher) Publish(ctx context.Context, size int64, signed string) error {
	key := p.Key(size)
	_, err := p.Client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(p.Bucket), Key: aws.String(key), Body: strings.NewReader(signed),
		ContentType: aws.String("text/plain; charset=utf-8"), IfNoneMatch: aws.String("*"),
	})
	if err == nil {
		return nil
	}
	got, gerr := p.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(p.Bucket), Key: aws.String(key)})
	if gerr != nil {
		return fmt.Errorf("publish checkpoint to s3://%s/%s: %w", p.Bucket, key, err)
	}
	defer got.Body.Close()
	body, rerr := io.ReadAll(io.LimitReader(got.Body, 1<<16))
	if rerr == nil && bytes.Equal(body, []byte(signed)) {
		return nil
	}
	return fmt.Errorf("publish checkpoint to s3://%s/%s: another checkpoint of that size is there: %w", p.Bucket, key, err)
}
