package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/pipeline"
)

type demoOptions struct {
	dataDir   string
	events    int
	perBatch  int
	clients   int
	badEveryN int
}

func newDemoCommand() *cobra.Command {
	var o demoOptions
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start an embedded worker, push a realistic event stream through its HTTP API, report",
		Long: `Starts the embedded worker (SQLite, in a new directory unless --data-dir is given)
on a free local port, sends a realistic stream of audit events through the real
HTTP API — mostly valid, some invalid, some tampered after hashing, and some
batches sent twice — then prints what happened: stored, duplicates, rejected by
reason, events per second, and a re-verification of every stored row.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDemo(cmd.Context(), cmd.OutOrStdout(), o)
		},
	}
	cmd.Flags().StringVar(&o.dataDir, "data-dir", "", "where the demo's SQLite database goes (default: a new temporary directory)")
	cmd.Flags().IntVar(&o.events, "events", 20000, "events to send")
	cmd.Flags().IntVar(&o.perBatch, "batch", 200, "events per HTTP request (NDJSON)")
	cmd.Flags().IntVar(&o.clients, "clients", 4, "concurrent HTTP clients")
	cmd.Flags().IntVar(&o.badEveryN, "bad-every", 20, "one in N events is invalid and one in N is tampered")
	return cmd
}

// demoRequest is one HTTP request of the demo, prepared before the clock starts.
type demoRequest struct {
	body           []byte
	idempotencyKey string
}

func runDemo(ctx context.Context, out io.Writer, o demoOptions) error {
	if o.events < 1 || o.perBatch < 1 || o.clients < 1 || o.badEveryN < 2 {
		return fmt.Errorf("--events, --batch and --clients must be positive and --bad-every at least 2")
	}
	if o.dataDir == "" {
		dir, err := os.MkdirTemp("", "audit-demo-*")
		if err != nil {
			return fmt.Errorf("create demo directory: %w", err)
		}
		o.dataDir = dir
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	cfg := config.Default()
	cfg.Storage.DataDir = o.dataDir
	cfg.HTTP.Address = "127.0.0.1:0"
	cfg.Security.EncryptionKey = hex.EncodeToString(secret) // producers sign with it; the worker verifies
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	w, err := startWorker(ctx, loadedConfig{cfg: cfg, embedded: true}, log, nil)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "embedded worker on %s, store %s\n", w.URL(), w.storeDesc)

	requests, resent, sent := prepareDemo(o, []byte(cfg.Security.EncryptionKey))
	fmt.Fprintf(out, "sending %d events (%d requests of up to %d, %d clients; 1 in %d invalid, 1 in %d tampered; %d requests sent twice)\n",
		sent, len(requests), o.perBatch, o.clients, o.badEveryN, o.badEveryN, resent)

	start := time.Now()
	tally, err := sendDemo(ctx, w.URL(), w.bootKey, requests, o.clients)
	elapsed := time.Since(start)
	if err != nil {
		w.shutdown(10 * time.Second)
		return err
	}
	stored, dead, err := reverify(ctx, w)
	if errShut := w.shutdown(10 * time.Second); err == nil {
		err = errShut
	}
	if err != nil {
		return err
	}

	fmt.Fprintf(out, "\nresults (%s, %.0f events/s through HTTP, validation, hashing and SQLite):\n",
		elapsed.Round(time.Millisecond), float64(tally.total)/elapsed.Seconds())
	fmt.Fprintf(out, "  stored      %6d\n  duplicates  %6d   (re-sent requests, same Idempotency-Key)\n  rejected    %6d\n",
		tally.byStatus[pipeline.StatusStored], tally.byStatus[pipeline.StatusDuplicate], tally.byStatus[pipeline.StatusRejected])
	reasons := make([]string, 0, len(tally.byReason))
	for r := range tally.byReason {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(out, "    %-58s %6d\n", r, tally.byReason[r])
	}
	fmt.Fprintf(out, "re-verified %d stored rows: producer hash and record hash recomputed from the store, all match\n", stored)
	fmt.Fprintf(out, "%d distinct rejected events kept as dead letters with their reason; everything is in %s\n", dead, cfg.SQLitePath())
	return nil
}

// prepareDemo builds every request body up front so that only the worker is timed.
func prepareDemo(o demoOptions, hmacKey []byte) (requests []demoRequest, resent, events int) {
	g := eventgen.New(uint64(time.Now().UnixNano()))
	g.HMACKey = hmacKey
	for i := 0; events < o.events; i++ {
		var body bytes.Buffer
		for j := 0; j < o.perBatch && events < o.events; j++ {
			var payload []byte
			switch events % o.badEveryN {
			case 1:
				payload, _ = g.Invalid()
			case 2:
				payload = g.Tampered()
			default:
				payload = g.Valid()
			}
			body.Write(payload)
			body.WriteByte('\n')
			events++
		}
		requests = append(requests, demoRequest{body: body.Bytes(), idempotencyKey: fmt.Sprintf("demo-%d-%d", time.Now().UnixNano(), i)})
	}
	// Every tenth request is sent again, as a client retrying after a timeout would.
	n := len(requests)
	for i := 0; i < n; i += 10 {
		requests = append(requests, requests[i])
		events += bytes.Count(requests[i].body, []byte("\n"))
		resent++
	}
	return requests, resent, events
}

type demoTally struct {
	mu       sync.Mutex
	total    int
	byStatus map[pipeline.Status]int
	byReason map[string]int
}

// sendDemo posts the requests from clients concurrent clients. The first
// failure stops the others and the feeder; every goroutine is waited for.
func sendDemo(ctx context.Context, baseURL, apiKey string, requests []demoRequest, clients int) (*demoTally, error) {
	tally := &demoTally{byStatus: map[pipeline.Status]int{}, byReason: map[string]int{}}
	work := make(chan demoRequest)
	client := &http.Client{Timeout: time.Minute}
	defer client.CloseIdleConnections()
	g, gctx := errgroup.WithContext(ctx)
	for range clients {
		g.Go(func() error {
			for req := range work {
				if err := postDemo(gctx, client, baseURL, apiKey, req, tally); err != nil {
					return err
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(work)
		// Originals first, re-sends last, so a re-send always follows its original.
		for _, r := range requests {
			select {
			case work <- r:
			case <-gctx.Done():
				return nil // a client failed (its error is the group's) or ctx ended
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return tally, ctx.Err()
}

func postDemo(ctx context.Context, client *http.Client, baseURL, apiKey string, r demoRequest, tally *demoTally) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/v1/events", bytes.NewReader(r.body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/x-ndjson")
	req.Header.Set("Idempotency-Key", r.idempotencyKey)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("POST /v1/events: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("POST /v1/events: %s: %s", resp.Status, msg)
	}
	var body struct {
		Results []pipeline.Outcome `json:"results"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("decode ingest response: %w", err)
	}
	tally.mu.Lock()
	defer tally.mu.Unlock()
	for _, o := range body.Results {
		tally.total++
		tally.byStatus[o.Status]++
		if o.Status == pipeline.StatusRejected {
			reason := o.Reason
			if len(o.Errors) > 0 {
				reason += " " + o.Errors[0].Code + " (" + o.Errors[0].Field + ")"
			}
			tally.byReason[reason]++
		}
	}
	return nil
}

// reverify reads every stored row back and recomputes both hashes from it, and
// counts the dead letters.
func reverify(ctx context.Context, w *worker) (stored, dead int, err error) {
	var after int64
	for {
		page, err := w.store.ListEvents(ctx, after, 5000)
		if err != nil {
			return 0, 0, fmt.Errorf("read back stored events: %w", err)
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			if got := e.ComputeRecordHash(); got != e.RecordHash {
				return 0, 0, fmt.Errorf("row %d: record hash %s, recomputed %s", e.Seq, e.RecordHash, got)
			}
			if e.Hash != "" && e.ComputeHash() != e.Hash {
				return 0, 0, fmt.Errorf("row %d: producer hash does not verify", e.Seq)
			}
			after = e.Seq
			stored++
		}
	}
	for after = 0; ; {
		page, err := w.store.ListDeadLetters(ctx, after, 5000)
		if err != nil {
			return 0, 0, fmt.Errorf("read back dead letters: %w", err)
		}
		if len(page) == 0 {
			return stored, dead, nil
		}
		dead += len(page)
		after = page[len(page)-1].ID
	}
}
