package access

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	audit "github.com/smartlogs/audit-worker"
)

// OIDCConfig says which tokens to accept and how to read a principal from them.
type OIDCConfig struct {
	Issuer   string // must equal the tokens' iss claim
	Audience string // must be one of the tokens' aud values
	// JWKSURL is where the issuer's signing keys are; empty: found through
	// the issuer's discovery document.
	JWKSURL string
	// RoleClaim holds the role (a string or a list of strings); default "roles".
	RoleClaim string
	// OrganizationsClaim holds the organisation ids (a string or a list);
	// default "organizations".
	OrganizationsClaim string
	// RoleMapping maps claim values to roles; a value that is itself a role
	// name maps to that role. With several matching values, the most
	// powerful role wins.
	RoleMapping map[string]audit.Role
	// Algorithms are the accepted signature algorithms; default RS256 and ES256.
	Algorithms []string
	// ClockSkew is how far exp and nbf may be off; default 60 s.
	ClockSkew  time.Duration
	HTTPClient *http.Client // default: http.DefaultClient with a 10 s timeout
	Now        func() time.Time
}

// OIDC verifies OpenID Connect (JWT) bearer tokens: the signature against the
// issuer's published keys, iss, aud, exp and nbf (with a small skew), then
// reads the role and organisations from the configured claims.
type OIDC struct {
	cfg OIDCConfig
	log *slog.Logger

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier // built on first use: the issuer may be down at start
}

// NewOIDC returns a verifier for cfg. It reaches the issuer only when the
// first token arrives (and again until that succeeds).
func NewOIDC(cfg OIDCConfig, log *slog.Logger) (*OIDC, error) {
	if cfg.Issuer == "" || cfg.Audience == "" {
		return nil, audit.Errorf(audit.CodeInvalid, "oidc: issuer and audience are required")
	}
	if cfg.RoleClaim == "" {
		cfg.RoleClaim = "roles"
	}
	if cfg.OrganizationsClaim == "" {
		cfg.OrganizationsClaim = "organizations"
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{oidc.RS256, oidc.ES256}
	}
	if cfg.ClockSkew <= 0 {
		cfg.ClockSkew = time.Minute
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &OIDC{cfg: cfg, log: log}, nil
}

func (o *OIDC) verifierFor(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.verifier != nil {
		return o.verifier, nil
	}
	// The key set outlives this request: its context carries only the client.
	clientCtx := oidc.ClientContext(context.Background(), o.cfg.HTTPClient)
	vcfg := &oidc.Config{
		ClientID:             o.cfg.Audience,
		SupportedSigningAlgs: o.cfg.Algorithms,
		SkipExpiryCheck:      true, // checked below, with the configured skew
	}
	if o.cfg.JWKSURL != "" {
		o.verifier = oidc.NewVerifier(o.cfg.Issuer, oidc.NewRemoteKeySet(clientCtx, o.cfg.JWKSURL), vcfg)
		return o.verifier, nil
	}
	discoverCtx, cancel := context.WithTimeout(oidc.ClientContext(ctx, o.cfg.HTTPClient), 10*time.Second)
	defer cancel()
	provider, err := oidc.NewProvider(discoverCtx, o.cfg.Issuer)
	if err != nil {
		return nil, audit.Errorf(audit.CodeUnavailable, "oidc: discover issuer %s: %w", o.cfg.Issuer, err)
	}
	o.verifier = oidc.NewVerifier(o.cfg.Issuer, oidc.NewRemoteKeySet(clientCtx, providerJWKS(provider)), vcfg)
	return o.verifier, nil
}

func providerJWKS(p *oidc.Provider) string {
	var meta struct {
		JWKSURI string `json:"jwks_uri"`
	}
	_ = p.Claims(&meta)
	return meta.JWKSURI
}

// Verify checks the token and returns its principal. Every failure of the
// token itself is ErrUnauthorized (the reason is logged at debug level,
// never the token); an issuer that cannot be reached is CodeUnavailable.
func (o *OIDC) Verify(ctx context.Context, token string) (audit.Principal, error) {
	v, err := o.verifierFor(ctx)
	if err != nil {
		return audit.Principal{}, err
	}
	idt, err := v.Verify(ctx, token)
	if err != nil {
		o.log.Debug("token refused", "reason", err.Error())
		return audit.Principal{}, ErrUnauthorized
	}
	var claims map[string]json.RawMessage
	if err := idt.Claims(&claims); err != nil {
		return audit.Principal{}, ErrUnauthorized
	}
	if err := o.checkTimes(claims); err != nil {
		o.log.Debug("token refused", "reason", err.Error(), "subject", idt.Subject)
		return audit.Principal{}, ErrUnauthorized
	}
	p, err := o.principal(idt.Subject, claims)
	if err != nil {
		o.log.Debug("token refused", "reason", err.Error(), "subject", idt.Subject)
		return audit.Principal{}, ErrUnauthorized
	}
	return p, nil
}

// checkTimes requires exp, and checks exp and nbf within the skew.
func (o *OIDC) checkTimes(claims map[string]json.RawMessage) error {
	now := o.cfg.Now()
	var exp, nbf float64
	if err := json.Unmarshal(claims["exp"], &exp); err != nil || exp == 0 {
		return fmt.Errorf("no exp claim")
	}
	// Compared as the numbers they are: converting a time past what an int64
	// holds would wrap it around into the past.
	if exp < float64(now.Add(-o.cfg.ClockSkew).Unix()) {
		return fmt.Errorf("expired at %s", unixText(exp))
	}
	if raw, ok := claims["nbf"]; ok {
		if err := json.Unmarshal(raw, &nbf); err != nil {
			return fmt.Errorf("nbf is not a number")
		}
		if nbf >= float64(now.Add(o.cfg.ClockSkew).Unix())+1 {
			return fmt.Errorf("not valid before %s", unixText(nbf))
		}
	}
	return nil
}

// unixText writes a NumericDate claim for a log line: as a time when it is
// one of the years 0000 to 9999, else as the number.
func unixText(v float64) string {
	const lo, hi = -62167219200, 253402300799 // 0000-01-01, 9999-12-31T23:59:59 UTC
	if v >= lo && v <= hi {
		return time.Unix(int64(v), 0).UTC().Format(time.RFC3339)
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func (o *OIDC) principal(subject string, claims map[string]json.RawMessage) (audit.Principal, error) {
	if subject == "" {
		return audit.Principal{}, fmt.Errorf("no sub claim")
	}
	role, ok := o.role(stringsClaim(claims[o.cfg.RoleClaim]))
	if !ok {
		return audit.Principal{}, fmt.Errorf("claim %q maps to no role", o.cfg.RoleClaim)
	}
	orgs := stringsClaim(claims[o.cfg.OrganizationsClaim])
	if err := audit.ValidateOrganizations(orgs); err != nil {
		return audit.Principal{}, fmt.Errorf("claim %q: %w", o.cfg.OrganizationsClaim, err)
	}
	name := subject
	for _, c := range []string{"name", "email", "preferred_username"} {
		if s := stringsClaim(claims[c]); len(s) == 1 {
			name = s[0]
			break
		}
	}
	return audit.Principal{ID: "oidc:" + subject, Name: name, Role: role, Organizations: orgs}, nil
}

// role maps claim values to the most powerful role among them.
func (o *OIDC) role(values []string) (audit.Role, bool) {
	best := -1
	for _, v := range values {
		r, ok := o.cfg.RoleMapping[v]
		if !ok {
			r = audit.Role(v)
		}
		if i := slices.Index(audit.Roles, r); i > best {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	return audit.Roles[best], true
}

// stringsClaim reads a claim that is a string, a list of strings, or a
// space-separated string (as the scope claim is).
func stringsClaim(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return strings.Fields(one)
	}
	var many []string
	if json.Unmarshal(raw, &many) == nil {
		return many
	}
	return nil
}
