package httpapi

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/transparency"
)

// ProofOptions serves the tamper evidence: signed checkpoints of the Merkle
// tree over the stored rows, and proofs against them.
type ProofOptions struct {
	// Tree keeps the tree and its checkpoints; nil answers the routes 503.
	Tree audit.TreeStore
	// VerifierKey is the checkpoint signer's verifier key
	// (name+keyid+base64), served to every authenticated caller.
	VerifierKey string
}

func (s *Server) routeProofs() {
	s.handle("GET", "/v1/checkpoints/latest", audit.PermEventsVerify, "the latest signed checkpoint", s.withTree(s.latestCheckpoint))
	s.handle("GET", "/v1/checkpoints/key", audit.PermAuthenticated, "the checkpoint verifier key", s.withTree(s.checkpointKey))
	s.handle("GET", "/v1/checkpoints/consistency", audit.PermEventsVerify, "consistency proof between two checkpoints", s.withTree(s.consistencyProof))
	s.handle("GET", "/v1/events/{id}/proof", audit.PermEventsVerify, "inclusion proof of one event", s.withEvents(s.withTree(s.eventProof)))
}

func (s *Server) withTree(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Proofs.Tree == nil {
			writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable),
				"no checkpoints are served: tamper evidence (security.checkpoint) is not enabled")
			return
		}
		h(w, r)
	}
}

func writeText(w http.ResponseWriter, text string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(text))
}

func (s *Server) latestCheckpoint(w http.ResponseWriter, r *http.Request) {
	if !paramsOK(w, r) {
		return
	}
	c, err := s.opts.Proofs.Tree.LatestCheckpoint(r.Context())
	if audit.ErrorCode(err) == audit.CodeNotFound {
		err = audit.Errorf(audit.CodeNotFound, "no checkpoint is signed yet: the first comes seconds after the first event is stored")
	}
	if err != nil {
		s.writeStoreError(w, r, "latest checkpoint", err)
		return
	}
	s.record(r, access.Access{Action: access.ActionVerify, Success: true, TargetType: "checkpoint",
		TargetID: strconv.FormatInt(c.Size, 10), Outcome: "latest checkpoint"})
	writeText(w, c.Note)
}

func (s *Server) checkpointKey(w http.ResponseWriter, r *http.Request) {
	if !paramsOK(w, r) {
		return
	}
	writeText(w, s.opts.Proofs.VerifierKey+"\n")
}

// maxTreeSize bounds the sizes a request may name (2^53: exact in the
// JavaScript numbers the console computes with).
const maxTreeSize = 1 << 53

// sizeParam reads a tree size parameter: absent is 0, else 1..maxTreeSize.
func sizeParam(q url.Values, name string) (int64, error) {
	raw, err := singleParam(q, name)
	if err != nil || raw == "" {
		return 0, err
	}
	n, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || n < 1 || n > maxTreeSize {
		return 0, fmt.Errorf("%s: a tree size is an integer in 1..%d (is %q)", name, int64(maxTreeSize), clip(raw, 32))
	}
	return n, nil
}

func (s *Server) consistencyProof(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !paramsOK(w, r, "from", "to") {
		return
	}
	// Each parameter is read before any is found missing, so that the
	// error names the one that is wrong.
	from, err := sizeParam(q, "from")
	var to int64
	if err == nil {
		to, err = sizeParam(q, "to")
	}
	if err == nil && from == 0 {
		err = fmt.Errorf("from: required, the size of the earlier checkpoint")
	}
	if err == nil && to != 0 && from > to {
		err = fmt.Errorf("from: %d is larger than to (%d)", from, to)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	p, err := transparency.ProveConsistency(r.Context(), s.opts.Proofs.Tree, from, to)
	if err != nil {
		s.writeStoreError(w, r, "consistency proof", err)
		return
	}
	s.record(r, access.Access{Action: access.ActionVerify, Success: true, TargetType: "checkpoint",
		TargetID: strconv.FormatInt(p.To, 10), Outcome: fmt.Sprintf("consistency proof from %d", p.From)})
	writeJSON(w, http.StatusOK, p)
}

// eventProof answers the inclusion proof of an event in JSON, or as the
// C2SP tlog-proof text when the client asks for text/plain only.
func (s *Server) eventProof(w http.ResponseWriter, r *http.Request) {
	e, ok := s.scopedEvent(w, r, "event proof", "size")
	if !ok {
		return
	}
	size, err := sizeParam(r.URL.Query(), "size")
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), err.Error())
		return
	}
	p, err := transparency.ProveInclusion(r.Context(), s.opts.Proofs.Tree, e.Seq, size)
	if err != nil {
		s.writeStoreError(w, r, "event proof", err)
		return
	}
	s.record(r, access.Access{Action: access.ActionVerify, Organizations: orgList(e.OrganizationID), Success: true,
		TargetType: "audit_event", TargetID: strconv.FormatInt(e.Seq, 10), Outcome: fmt.Sprintf("inclusion proof in %d leaves", p.Size)})
	if wantsText(r) {
		writeText(w, p.Proof)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// wantsText reports whether the Accept header asks for text/plain and not JSON.
func wantsText(r *http.Request) bool {
	accept := r.Header.Get("Accept")
	return strings.Contains(accept, "text/plain") && !strings.Contains(accept, "application/json")
}

// inclusionCheck is the verification's "inclusion" check: the row's record
// hash is the leaf integrated, and that leaf is proven in the latest
// checkpoint, whose signature verifies. ok is false when no proof is
// available yet.
func (s *Server) inclusionCheck(r *http.Request, e *audit.StoredEvent) (audit.Check, bool) {
	if s.opts.Proofs.Tree == nil {
		return audit.Check{}, false
	}
	verifier, err := note.NewVerifier(s.opts.Proofs.VerifierKey)
	if err != nil {
		return audit.Check{Name: audit.CheckInclusion, Found: e.RecordHash,
			Note: "no verifier key to check the checkpoint with: " + err.Error()}, true
	}
	c, covered, err := transparency.CheckRow(r.Context(), s.opts.Proofs.Tree, verifier, e, 0)
	if err != nil || !covered {
		return audit.Check{}, false
	}
	return c, true
}
