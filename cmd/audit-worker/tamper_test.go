package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"

	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/transparency"
)

// TestTamperEvidenceEndToEnd: events in over HTTP -> a checkpoint signed and
// published -> each event's proof from the API, checked with
// transparency-dev/merkle against the signed checkpoint and the key the API
// serves -> `audit-worker verify` passes, then fails naming the row once a
// stored value is changed in SQL.
func TestTamperEvidenceEndToEnd(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			t.Setenv("CONFIG_PATH", "")
			dir := t.TempDir()
			t.Setenv("AUDIT_CONFIG_CACHE", filepath.Join(dir, "cache.json"))
			doc := map[string]any{
				"storage":  map[string]any{"dataDir": filepath.Join(dir, "data")},
				"http":     map[string]any{"address": "127.0.0.1:0"},
				"logging":  map[string]any{"level": "warn"},
				"security": map[string]any{"checkpoint": map[string]any{"intervalMs": 200, "origin": "audit.test/e2e"}},
			}
			var exec func(t *testing.T, query string, args ...any)
			if kind == "postgres" {
				url := testenv.PostgresDatabase(t)
				doc["enhancedClient"] = map[string]any{"connectionString": url}
				exec = func(t *testing.T, query string, args ...any) {
					conn, err := pgx.Connect(t.Context(), url)
					if err != nil {
						t.Fatal(err)
					}
					defer conn.Close(context.Background())
					if _, err := conn.Exec(t.Context(), query, args...); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				exec = func(t *testing.T, query string, args ...any) {
					db, err := sql.Open("sqlite", filepath.Join(dir, "data", "audit.db"))
					if err != nil {
						t.Fatal(err)
					}
					defer db.Close()
					if _, err := db.Exec(strings.ReplaceAll(query, "$1", "?"), args...); err != nil {
						t.Fatal(err)
					}
				}
			}
			path := filepath.Join(dir, "worker.json")
			writeJSONFile(t, path, doc)
			ctx := context.Background()
			lc, err := loadConfig(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			w, err := startWorker(ctx, lc, slog.New(slog.DiscardHandler), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer w.shutdown(5 * time.Second)
			call := func(method, target, accept string, body []byte) (int, string) {
				t.Helper()
				req, _ := http.NewRequest(method, w.URL()+target, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+w.bootKey)
				if accept != "" {
					req.Header.Set("Accept", accept)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, string(b)
			}
			g := eventgen.New(77)
			for range 12 {
				if code, body := call("POST", "/v1/events", "", g.Valid()); code != 200 {
					t.Fatalf("ingest: %d %s", code, body)
				}
			}
			code, vkey := call("GET", "/v1/checkpoints/key", "", nil)
			verifier, err := note.NewVerifier(strings.TrimSpace(vkey))
			if code != 200 || err != nil {
				t.Fatalf("GET /v1/checkpoints/key: %d %q: %v", code, vkey, err)
			}
			events, err := w.store.ListEvents(ctx, 0, 100)
			if err != nil || len(events) < 12 {
				t.Fatalf("%d events stored, %v", len(events), err)
			}
			last := events[len(events)-1].Seq
			// The proof of the last event comes within seconds.
			var p transparency.InclusionProof
			testenv.Eventually(t, 10*time.Second, "the last event's proof", func() bool {
				code, body := call("GET", "/v1/events/"+strconv.FormatInt(last, 10)+"/proof", "", nil)
				if code == http.StatusConflict {
					return false
				}
				if code != 200 || json.Unmarshal([]byte(body), &p) != nil {
					t.Fatalf("proof: %d %s", code, body)
				}
				return true
			})
			hasher := rfc6962.DefaultHasher
			for _, e := range events {
				code, body := call("GET", "/v1/events/"+strconv.FormatInt(e.Seq, 10)+"/proof", "", nil)
				if code != 200 || json.Unmarshal([]byte(body), &p) != nil {
					t.Fatalf("proof of %d: %d %s", e.Seq, code, body)
				}
				n, err := note.Open([]byte(p.Checkpoint), note.VerifierList(verifier))
				if err != nil {
					t.Fatalf("the proof's checkpoint does not verify with the served key: %v", err)
				}
				tree, err := transparency.ParseTree(n.Text)
				if err != nil || tree.Size != p.Size || tree.Origin != "audit.test/e2e" {
					t.Fatalf("checkpoint %+v, %v", tree, err)
				}
				hashes := make([][]byte, len(p.Hashes))
				for i, h := range p.Hashes {
					hashes[i], _ = base64.StdEncoding.DecodeString(h)
				}
				leaf, _ := hex.DecodeString(e.RecordHash)
				if err := proof.VerifyInclusion(hasher, uint64(p.Index), uint64(p.Size), hasher.HashLeaf(leaf), hashes, tree.Root[:]); err != nil {
					t.Fatalf("transparency-dev/merkle refuses the proof of event %d: %v", e.Seq, err)
				}
			}
			code, text := call("GET", "/v1/events/"+strconv.FormatInt(last, 10)+"/proof", "text/plain", nil)
			if code != 200 || !strings.HasPrefix(text, "c2sp.org/tlog-proof@v1\nindex ") {
				t.Fatalf("proof as text: %d %q", code, text)
			}
			code, body := call("GET", "/v1/events/"+strconv.FormatInt(last, 10)+"/verify", "", nil)
			if code != 200 || !strings.Contains(body, `"name":"inclusion","ok":true`) {
				t.Fatalf("verify: %d %s", code, body)
			}
			code, latest := call("GET", "/v1/checkpoints/latest", "", nil)
			if code != 200 || !strings.HasPrefix(latest, "audit.test/e2e\n") {
				t.Fatalf("latest: %d %q", code, latest)
			}
			if code, body := call("GET", "/v1/checkpoints/consistency?from=1", "", nil); code != 200 || !strings.Contains(body, `"from":1`) {
				t.Fatalf("consistency: %d %s", code, body)
			}
			// The integrity report names the checkpoint and checks each row's
			// inclusion in it.
			from := time.Now().UTC().Add(-48 * time.Hour).Format(time.RFC3339)
			to := time.Now().UTC().Add(48 * time.Hour).Format(time.RFC3339)
			code, body = call("POST", "/v1/reports/integrity", "", []byte(`{"criteria":{"from":"`+from+`","to":"`+to+`"}}`))
			var ir struct {
				Metadata struct {
					Checkpoint *struct {
						Origin string `json:"origin"`
						Size   int64  `json:"size"`
					} `json:"checkpoint"`
				} `json:"metadata"`
				Results struct {
					Checks map[string]struct{ Checked, Passed, Failed int64 } `json:"checks"`
				} `json:"results"`
			}
			if code != 200 || json.Unmarshal([]byte(body), &ir) != nil || ir.Metadata.Checkpoint == nil ||
				ir.Metadata.Checkpoint.Origin != "audit.test/e2e" || ir.Metadata.Checkpoint.Size < int64(len(events)) {
				t.Fatalf("integrity report: %d %.600s", code, body)
			}
			if inc := ir.Results.Checks["inclusion"]; inc.Checked < int64(len(events)) || inc.Failed != 0 || inc.Passed != inc.Checked {
				t.Fatalf("integrity report's inclusion checks: %+v (%d events)", inc, len(events))
			}
			if err := w.shutdown(5 * time.Second); err != nil {
				t.Fatal(err)
			}
			published, err := transparency.ReadNotes(filepath.Join(dir, "data", "checkpoints.log"))
			if err != nil || len(published) == 0 {
				t.Fatalf("published file: %d notes, %v", len(published), err)
			}

			run := func(args ...string) (string, error) {
				var out, errOut bytes.Buffer
				cmd := newRootCommand()
				cmd.SetArgs(append(args, "--config", path))
				cmd.SetOut(&out)
				cmd.SetErr(&errOut)
				err := cmd.ExecuteContext(t.Context())
				return out.String() + errOut.String(), err
			}
			out, err := run("verify")
			if err != nil || !strings.HasPrefix(out, "OK: ") {
				t.Fatalf("verify of an untouched log: %v\n%s", err, out)
			}
			exec(t, `UPDATE audit_log SET details = '{"edited":true}' WHERE id = $1`, events[3].Seq)
			out, err = run("verify", "--output", "json")
			var rep transparency.Report
			if err == nil || json.Unmarshal([]byte(out[:strings.LastIndex(out, "}")+1]), &rep) != nil || rep.OK ||
				len(rep.Problems) == 0 || rep.Problems[0].Seq != events[3].Seq || rep.Problems[0].Kind != transparency.ProblemModifiedRow {
				t.Fatalf("verify after tampering: %v\n%s", err, out)
			}
			out, _ = run("verify")
			if !strings.Contains(out, "modified_row id="+strconv.FormatInt(events[3].Seq, 10)+" leaf=") || !strings.Contains(out, "FAILED: ") {
				t.Fatalf("verify (text) after tampering:\n%s", out)
			}
			t.Logf("verify after tampering:\n%s", out)
		})
	}
}
