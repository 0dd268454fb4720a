package httpapi

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/transparency"
)

// TestProofRoutes: an event not in a checkpoint yet is a 409 that says to
// retry; once integrated, its proof verifies against the signed checkpoint
// the API serves, in JSON and as tlog-proof text; sizes are checked.
func TestProofRoutes(t *testing.T) {
	for _, kind := range authzStoreKinds {
		t.Run(kind.name, func(t *testing.T) {
			f := newAuthzFixture(t, kind.open(t), authzOptions{})
			auditor := f.tokens[audit.RoleAuditor]
			get := func(target string, header map[string]string) (int, string) {
				rec := f.serve(authzRequest{method: "GET", target: target, token: auditor, header: header})
				return rec.Code, rec.Body.String()
			}
			late := f.storeEvent(t, scopeOrg)
			proofOf := "/v1/events/" + strconv.FormatInt(late, 10) + "/proof"
			if code, body := get(proofOf, nil); code != http.StatusConflict || !strings.Contains(body, "retry in a few seconds") {
				t.Fatalf("proof before integration: %d %s", code, body)
			}
			checkpointAll(t, f.db.store)
			code, body := get(proofOf, nil)
			var p transparency.InclusionProof
			if code != http.StatusOK || json.Unmarshal([]byte(body), &p) != nil {
				t.Fatalf("proof: %d %s", code, body)
			}
			_, latest := get("/v1/checkpoints/latest", nil)
			if p.Checkpoint != latest || p.Index != p.Size-1 {
				t.Fatalf("proof %+v against the latest checkpoint %q", p, latest)
			}
			tree, err := transparency.Open(latest, authzTreeKey.Verifier)
			if err != nil {
				t.Fatal(err)
			}
			leaf, _ := hex.DecodeString(p.Leaf)
			if err := transparency.CheckInclusion(p, leaf, tree); err != nil {
				t.Fatalf("the served proof does not verify: %v", err)
			}
			if code, text := get(proofOf, map[string]string{"Accept": "text/plain"}); code != 200 || text != p.Proof {
				t.Fatalf("proof as text: %d %q", code, text)
			}
			if code, body := get(proofOf+"?size="+strconv.FormatInt(p.Size-1, 10), nil); code != 400 || !strings.Contains(body, "size") {
				t.Fatalf("proof in a checkpoint older than the event: %d %s", code, body)
			}
			if code, body := get(proofOf+"?size="+strconv.FormatInt(p.Size+5, 10), nil); code != 404 || !strings.Contains(body, "size") {
				t.Fatalf("proof in a checkpoint that does not exist: %d %s", code, body)
			}
			if code, body := get("/v1/checkpoints/consistency?from=3&to=2", nil); code != 400 || !strings.Contains(body, "from") {
				t.Fatalf("consistency from > to: %d %s", code, body)
			}
			code, body = get("/v1/events/"+strconv.FormatInt(late, 10)+"/verify", nil)
			if code != 200 || !strings.Contains(body, `"name":"inclusion","ok":true`) {
				t.Fatalf("verify: %d %s", code, body)
			}
		})
	}
}
