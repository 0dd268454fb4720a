package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/mod/sumdb/note"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/transparency"
)

func newVerifyCommand(configPath *string) *cobra.Command {
	var output, key, published string
	var checkpoints []string
	cmd := &cobra.Command{
		Use:   "verify [--key VERIFIER-KEY] [--checkpoint FILE ...] [--published FILE] [--output text|json]",
		Short: "Check the whole stored log against its Merkle tree and signed checkpoints",
		Long: `Reads every stored row in leaf order, in batches (memory does not grow with the
log), recomputes each row's record hash from its stored values, rebuilds the
Merkle tree and compares it with the stored tree hashes, with every stored
checkpoint (signature and root), with the published checkpoints
(security.checkpoint.publish.file, or --published) and with checkpoints kept
elsewhere (--checkpoint). Rows that no leaf names are reported too.

The verifier key is --key (name+id+key text, or file:PATH), else the one of the
configured signing key. Each problem names the row (id, leaf index) or the
checkpoint (size) and what differs. Exit status 0 only when everything holds.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("--output: text or json (is %q)", output)
			}
			return withStore(cmd, *configPath, func(ctx context.Context, env *cliEnv) error {
				return runVerify(ctx, env, verifyFlags{output: output, key: key, published: published, checkpoints: checkpoints},
					cmd.OutOrStdout(), cmd.ErrOrStderr())
			})
		},
	}
	cmd.Flags().StringVar(&output, "output", "text", "text or json")
	cmd.Flags().StringVar(&key, "key", "", "the checkpoint verifier key, or file:PATH of a file holding it (default: the configured signing key's)")
	cmd.Flags().StringVar(&published, "published", "", "the published checkpoints file (default: security.checkpoint.publish.file)")
	cmd.Flags().StringArrayVar(&checkpoints, "checkpoint", nil, "a file of signed checkpoints kept elsewhere; repeat it")
	return cmd
}

type verifyFlags struct {
	output, key, published string
	checkpoints            []string
}

// errVerifyFailed makes the command exit non-zero after its report.
var errVerifyFailed = errors.New("verification failed")

func runVerify(ctx context.Context, env *cliEnv, f verifyFlags, out, progressOut io.Writer) error {
	tree, ok := env.store.(audit.TreeStore)
	if !ok {
		return fmt.Errorf("the configured store keeps no Merkle tree")
	}
	verifier, err := verifierFor(env.cfg, f.key)
	if err != nil {
		return err
	}
	opts := transparency.VerifyOptions{Verifier: verifier, HMACKey: []byte(env.cfg.Security.EncryptionKey)}
	path := f.published
	if path == "" {
		path = env.cfg.Security.Checkpoint.Publish.File
		if path == "" {
			path = checkpointPublishedDefault(env.cfg)
		}
	}
	switch notes, err := transparency.ReadNotes(path); {
	case err == nil:
		opts.Published = notes
	case errors.Is(err, os.ErrNotExist) && f.published == "":
		fmt.Fprintf(progressOut, "no published checkpoints at %s: the stored ones are checked on their own\n", path)
	default:
		return fmt.Errorf("published checkpoints: %w", err)
	}
	for _, file := range f.checkpoints {
		notes, err := transparency.ReadNotes(file)
		if err != nil {
			return fmt.Errorf("--checkpoint: %w", err)
		}
		opts.External = append(opts.External, notes...)
	}
	start := time.Now()
	p := newExportProgress(progressOut, f.output == "text" && isTerminal(progressOut), func() int64 { return -1 })
	opts.Progress = p.update
	rep, err := transparency.Verify(ctx, tree, opts)
	p.done()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	elapsed := time.Since(start)
	if f.output == "json" {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, pr := range rep.Problems {
			fmt.Fprintln(out, pr.String())
		}
		if n := rep.ProblemsFound - int64(len(rep.Problems)); n > 0 {
			fmt.Fprintf(out, "... and %s more problems\n", groupDigits(n))
		}
		verdict := "OK"
		if !rep.OK {
			verdict = "FAILED: " + groupDigits(rep.ProblemsFound) + " problem"
			if rep.ProblemsFound > 1 {
				verdict += "s"
			}
		}
		fmt.Fprintf(out, "%s: %s leaves, %s stored checkpoints, %d published, in %s (%s rows/s)\n", verdict,
			groupDigits(rep.Leaves), groupDigits(rep.Checkpoints), rep.Published, elapsed.Round(time.Millisecond),
			groupDigits(int64(float64(rep.Leaves)/max(elapsed.Seconds(), 1e-3))))
	}
	if !rep.OK {
		return errVerifyFailed
	}
	return nil
}

func checkpointPublishedDefault(cfg config.Config) string {
	pubs, err := checkpointPublishers(config.Config{Storage: cfg.Storage})
	if err != nil || len(pubs) == 0 {
		return ""
	}
	return pubs[0].(*transparency.FilePublisher).Path
}

// verifierFor returns the verifier of --key, else of the configured signing
// key (the data directory's when none is configured; never created here).
func verifierFor(cfg config.Config, flag string) (note.Verifier, error) {
	if flag != "" {
		text := flag
		if path, ok := strings.CutPrefix(flag, "file:"); ok {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("--key: %w", err)
			}
			text = strings.TrimSpace(string(b))
		}
		v, err := note.NewVerifier(text)
		if err != nil {
			return nil, fmt.Errorf("--key: not a verifier key (name+id+key): %w", err)
		}
		return v, nil
	}
	sk := cfg.Security.Checkpoint.SigningKey
	if sk == "" {
		b, err := os.ReadFile(checkpointKeyPath(cfg))
		if err != nil {
			return nil, fmt.Errorf("no --key, and the checkpoint key of the data directory cannot be read: %w", err)
		}
		sk = string(b)
	} else if path, ok := strings.CutPrefix(sk, "file:"); ok {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("security.checkpoint.signingKey: %w", err)
		}
		sk = string(b)
	}
	k, err := transparency.ParseKey(sk)
	if err != nil {
		return nil, fmt.Errorf("security.checkpoint.signingKey: %w", config.RedactError(err))
	}
	return k.Verifier, nil
}
