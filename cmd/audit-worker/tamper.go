package main

import (
	"context"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/httpapi"
	"github.com/smartlogs/audit-worker/report"
	"github.com/smartlogs/audit-worker/transparency"
	"golang.org/x/mod/sumdb/note"
)

// checkpointOrigin is the checkpoints' first line: the configured origin, or
// audit-worker.local/<hostname>.
func checkpointOrigin(cfg config.Config) string {
	if o := cfg.Security.Checkpoint.Origin; o != "" {
		return o
	}
	host, err := os.Hostname()
	if err != nil || host == "" || strings.ContainsAny(host, "+ \t\n") {
		host = "worker"
	}
	return "audit-worker.local/" + host
}

// checkpointKeyPath is where the key made on first start is kept.
func checkpointKeyPath(cfg config.Config) string {
	return filepath.Join(cfg.Storage.DataDir, "checkpoint.key")
}

// checkpointKey reads the signing key: the configured one (inline, after
// ${NAME} resolution, or file:<path>), else the data directory's, created
// on first start. The private key is never logged.
func checkpointKey(cfg config.Config, log *slog.Logger) (transparency.Key, error) {
	sk := cfg.Security.Checkpoint.SigningKey
	switch {
	case strings.HasPrefix(sk, "file:"):
		b, err := os.ReadFile(strings.TrimPrefix(sk, "file:"))
		if err != nil {
			return transparency.Key{}, fmt.Errorf("security.checkpoint.signingKey: %w", err)
		}
		k, err := transparency.ParseKey(string(b))
		if err != nil {
			return transparency.Key{}, fmt.Errorf("security.checkpoint.signingKey %s: %w", sk, config.RedactError(err))
		}
		return k, nil
	case sk != "":
		k, err := transparency.ParseKey(sk)
		if err != nil {
			return transparency.Key{}, fmt.Errorf("security.checkpoint.signingKey: %w", config.RedactError(err))
		}
		return k, nil
	}
	path := checkpointKeyPath(cfg)
	k, created, err := transparency.LoadOrCreateKey(path, checkpointOrigin(cfg))
	if err != nil {
		return transparency.Key{}, config.RedactError(err)
	}
	if created {
		log.Warn("checkpoint signing key created: keep a copy of the verifier key outside this machine",
			"file", path, "verifierKey", k.VerifierKey)
	}
	return k, nil
}

// checkpointPublishers are where checkpoints go besides the database.
func checkpointPublishers(cfg config.Config) ([]transparency.Publisher, error) {
	p := cfg.Security.Checkpoint.Publish
	file := p.File
	if file == "" {
		file = filepath.Join(cfg.Storage.DataDir, "checkpoints.log")
	}
	out := []transparency.Publisher{&transparency.FilePublisher{Path: file}}
	if p.S3 != "" {
		bucket, prefix, _ := strings.Cut(strings.TrimPrefix(p.S3, "s3://"), "/")
		if prefix != "" && !strings.HasSuffix(prefix, "/") {
			prefix += "/"
		}
		dest, err := newS3Destination(bucket, prefix)
		if err != nil {
			return nil, err
		}
		out = append(out, &transparency.S3Publisher{Client: dest.client, Bucket: bucket, Prefix: prefix})
	}
	return out, nil
}

// startIntegrator runs the tree integrator and serves the proofs, when
// security.checkpoint.enabled. Integration reads rows already stored and
// takes no lock ingest waits for.
func (w *worker) startIntegrator(cfg config.Config, opts *httpapi.Options) error {
	cp := cfg.Security.Checkpoint
	if !cp.Enabled {
		w.log.Info("tamper evidence is off (security.checkpoint.enabled: false): stored rows are not integrated into the tree")
		return nil
	}
	tree, ok := w.store.(audit.TreeStore)
	if !ok {
		return fmt.Errorf("the store keeps no Merkle tree")
	}
	key, err := checkpointKey(cfg, w.log)
	if err != nil {
		return err
	}
	pubs, err := checkpointPublishers(cfg)
	if err != nil {
		return err
	}
	names := make([]string, len(pubs))
	for i, p := range pubs {
		names[i] = p.String()
	}
	w.log.Info("tamper evidence: signing checkpoints", "origin", checkpointOrigin(cfg), "verifierKey", key.VerifierKey,
		"publish", strings.Join(names, ", "))
	in := transparency.NewIntegrator(tree, transparency.Config{
		Origin: checkpointOrigin(cfg), Key: key, Publishers: pubs, Logger: w.log,
		Interval: time.Duration(cp.IntervalMs) * time.Millisecond, MaxRows: int64(cp.MaxRows),
		OnCheckpoint: func(size int64, lag time.Duration) {
			if m := w.obs.metrics; m != nil {
				m.CheckpointSigned(size, lag)
			}
		},
		OnRefused: func(error) {
			if m := w.obs.metrics; m != nil {
				m.CheckpointRefused()
			}
		},
	})
	w.integrator = in
	w.spawn("tree integrator", func() error { return in.Run(w.running) })
	opts.Proofs = httpapi.ProofOptions{Tree: tree, VerifierKey: key.VerifierKey}
	return nil
}

// checkpointSource gives reports the latest signed checkpoint and each row's
// inclusion check against it.
type checkpointSource struct {
	tree     audit.TreeStore
	verifier note.Verifier
}

func (c checkpointSource) Latest(ctx context.Context) (report.Checkpoint, error) {
	cp, err := c.tree.LatestCheckpoint(ctx)
	if err != nil {
		return report.Checkpoint{}, err
	}
	t, err := transparency.Open(cp.Note, c.verifier)
	if err != nil {
		return report.Checkpoint{}, audit.Wrap(audit.CodeIntegrity, "the latest checkpoint", err)
	}
	return report.Checkpoint{Origin: t.Origin, Size: t.Size, RootHash: base64.StdEncoding.EncodeToString(t.Root[:]),
		SignedAt: cp.CreatedAt, Note: cp.Note}, nil
}

func (c checkpointSource) Inclusion(ctx context.Context, cp report.Checkpoint, e *audit.StoredEvent) (audit.Check, bool, error) {
	return transparency.CheckRow(ctx, c.tree, c.verifier, e, cp.Size)
}

// reportCheckpoints is the reports' checkpoint source: the store's tree
// checked with the configured key, when tamper evidence is on and the key
// can be read (nil otherwise: reports then say no checkpoint was checked).
func reportCheckpoints(cfg config.Config, store any) report.CheckpointSource {
	tree, ok := store.(audit.TreeStore)
	if !ok || !cfg.Security.Checkpoint.Enabled {
		return nil
	}
	v, err := verifierFor(cfg, "")
	if err != nil {
		return nil
	}
	return checkpointSource{tree: tree, verifier: v}
}
