package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
)

// maxKeyRequest bounds a key request's body.
const maxKeyRequest = 16 << 10

func (s *Server) routeKeys() {
	s.handle("GET", "/v1/keys", audit.PermKeysManage, "list API keys", s.withKeys(s.listKeys))
	s.handle("POST", "/v1/keys", audit.PermKeysManage, "create an API key", s.withKeys(s.createKey))
	s.handle("DELETE", "/v1/keys/{id}", audit.PermKeysManage, "revoke an API key", s.withKeys(s.revokeKey))
	s.handle("POST", "/v1/keys/{id}/rotate", audit.PermKeysManage, "give an API key a new secret", s.withKeys(s.rotateKey))
}

func (s *Server) withKeys(h func(w http.ResponseWriter, r *http.Request, keys audit.KeyStore)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.opts.Keys == nil {
			writeError(w, http.StatusServiceUnavailable, string(audit.CodeUnavailable), "no key store is configured")
			return
		}
		if paramsOK(w, r) { // no key route takes a parameter
			h(w, r, s.opts.Keys)
		}
	}
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, keys audit.KeyStore) {
	all, err := keys.ListAPIKeys(r.Context())
	if err != nil {
		s.writeStoreError(w, r, "list keys", err)
		return
	}
	now := time.Now()
	p := principalOf(r.Context())
	views := make([]access.KeyView, 0, len(all))
	for _, k := range all {
		if keyInScope(p, k) {
			views = append(views, access.View(k, now))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": views})
}

// keyInScope reports whether p may see and manage k: an admin scoped to some
// organisations manages only keys within them, so that it can neither mint
// a key beyond its own scope nor revoke another organisation's.
func keyInScope(p audit.Principal, k audit.APIKey) bool {
	if p.AllOrgs() {
		return true
	}
	for _, org := range k.Organizations {
		if !p.InScope(org) {
			return false
		}
	}
	return len(k.Organizations) > 0
}

// scopedKey reads the key named in the path; one outside the caller's scope
// is answered like a missing one.
func scopedKey(r *http.Request, keys audit.KeyStore, id string) error {
	if !audit.ValidAPIKeyID(id) {
		return audit.Errorf(audit.CodeNotFound, "api key %q: no such key", clip(id, 64))
	}
	k, err := keys.GetAPIKey(r.Context(), id)
	if err == nil && !keyInScope(principalOf(r.Context()), k) {
		err = audit.Errorf(audit.CodeNotFound, "api key %q: no such key", id)
	}
	return err
}

type keyRequest struct {
	Name          string   `json:"name"`
	Role          string   `json:"role"`
	Organizations []string `json:"organizations"`
	Expires       string   `json:"expires"` // "90d", "36h"; "" never
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request, keys audit.KeyStore) {
	var req keyRequest
	if err := decodeBody(w, r, &req, maxKeyRequest); err != nil {
		writeBodyError(w, err)
		return
	}
	lifetime, err := access.ParseLifetime(req.Expires)
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), "expires: "+err.Error())
		return
	}
	p := principalOf(r.Context())
	if _, err := p.ScopeOrganizations(req.Organizations); err != nil {
		s.recordKeyChange(r, "create", "", req.Role, req.Organizations, err)
		writeError(w, http.StatusForbidden, string(audit.CodeForbidden), "organizations: "+err.Error())
		return
	}
	k, token, err := access.CreateKey(r.Context(), keys, access.NewKey{Name: req.Name, Role: audit.Role(req.Role),
		Organizations: req.Organizations, ExpiresIn: lifetime, CreatedBy: p.ID}, time.Now())
	s.recordKeyChange(r, "create", k.ID, req.Role, req.Organizations, err)
	if err != nil {
		s.writeStoreError(w, r, "create key", err)
		return
	}
	writeJSON(w, http.StatusCreated, access.CreatedView(k, token))
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request, keys audit.KeyStore) {
	id := r.PathValue("id")
	var k audit.APIKey
	err := scopedKey(r, keys, id)
	if err == nil {
		k, err = keys.RevokeAPIKey(r.Context(), id, time.Now())
	}
	s.recordKeyChange(r, "revoke", id, string(k.Role), k.Organizations, err)
	if err != nil {
		s.writeStoreError(w, r, "revoke key", err)
		return
	}
	if s.opts.Auth != nil {
		s.opts.Auth.Forget(id) // at once here; other replicas within their cache's life
	}
	writeJSON(w, http.StatusOK, access.View(k, time.Now()))
}

type rotateRequest struct {
	Overlap string `json:"overlap"` // how long the old secret keeps working; default 24h
}

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request, keys audit.KeyStore) {
	req := rotateRequest{Overlap: "24h"}
	if err := decodeBody(w, r, &req, maxKeyRequest); err != nil && !errors.Is(err, io.EOF) {
		writeBodyError(w, err)
		return
	}
	overlap, err := access.ParseLifetime(req.Overlap)
	if err != nil {
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), "overlap: "+err.Error())
		return
	}
	id := r.PathValue("id")
	var k audit.APIKey
	var token string
	err = scopedKey(r, keys, id)
	if err == nil {
		k, token, err = access.RotateKey(r.Context(), keys, id, overlap, time.Now())
	}
	s.recordKeyChange(r, "rotate", id, string(k.Role), k.Organizations, err)
	if err != nil {
		s.writeStoreError(w, r, "rotate key", err)
		return
	}
	if s.opts.Auth != nil {
		s.opts.Auth.Forget(id)
	}
	writeJSON(w, http.StatusOK, access.CreatedView(k, token))
}

// recordKeyChange records a key change as audit.key.<verb>, never the key.
func (s *Server) recordKeyChange(r *http.Request, verb, id, role string, orgs []string, err error) {
	a := access.Access{Action: access.KeyAction(verb), Success: err == nil, TargetType: "api_key", TargetID: clip(id, 64),
		Outcome: verb + "d", Details: map[string]any{"keyRole": role, "keyOrganizations": orgs}}
	if err != nil {
		a.Outcome = err.Error()
	}
	s.record(r, a)
}

// decodeBody reads one JSON object of at most limit bytes, refusing unknown
// fields; an empty body is io.EOF.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, limit int64) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	if err := decodeObject(dec, v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("the body must hold one JSON object")
	}
	return nil
}

// decodeObject decodes the next JSON value into v, refusing unknown fields,
// anything but an object (encoding/json takes null as an empty request) and
// invalid UTF-8 (which it would silently replace).
func decodeObject(dec *json.Decoder, v any) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return err
	}
	switch {
	case !utf8.Valid(raw):
		return errors.New("must be valid UTF-8")
	case raw[0] != '{':
		return errors.New("must be a JSON object")
	}
	strict := json.NewDecoder(bytes.NewReader(raw))
	strict.DisallowUnknownFields()
	return strict.Decode(v)
}

// writeBodyError answers a body decodeBody refused.
func writeBodyError(w http.ResponseWriter, err error) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &tooBig):
		writeError(w, http.StatusRequestEntityTooLarge, string(audit.CodeInvalid), fmt.Sprintf("body: larger than %d bytes", tooBig.Limit))
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), "body: a JSON object is required")
	default:
		writeError(w, http.StatusBadRequest, string(audit.CodeInvalid), "body: "+err.Error())
	}
}

// writeStoreError turns an error into its HTTP status by domain code.
func (s *Server) writeStoreError(w http.ResponseWriter, r *http.Request, op string, err error) {
	switch code := audit.ErrorCode(err); code {
	case audit.CodeInvalid:
		writeError(w, http.StatusBadRequest, string(code), err.Error())
	case audit.CodeNotFound:
		writeError(w, http.StatusNotFound, string(code), err.Error())
	case audit.CodeForbidden:
		writeError(w, http.StatusForbidden, string(code), err.Error())
	case audit.CodeConflict:
		writeError(w, http.StatusConflict, string(code), err.Error())
	case audit.CodeUnavailable:
		if r.Context().Err() != nil {
			return // the client went away
		}
		s.opts.Logger.Warn(op+" failed", "err", err)
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, string(code), op+": the store is unavailable, retry later")
	default:
		s.opts.Logger.Error(op+" failed", "err", err)
		writeError(w, http.StatusInternalServerError, "internal", op+" failed")
	}
}
