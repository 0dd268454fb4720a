package access

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	audit "github.com/smartlogs/audit-worker"
)

// StaticKey is a key from the configuration: http.apiKeys (ingest, every
// organisation) or http.keys.
type StaticKey struct {
	Name          string
	Key           string // the secret as clients present it
	Role          audit.Role
	Organizations []string
}

// Options configure an Authenticator.
type Options struct {
	// Keys is where stored API keys are looked up; nil when there are none.
	Keys audit.KeyStore
	// CacheTTL is how long a stored key read from Keys is trusted before it is
	// read again: a revocation reaches every replica within it. Default 2 s.
	CacheTTL time.Duration
	// TouchInterval is how often the last-use times of stored keys are written
	// (at most once per key per interval). Default 1 minute.
	TouchInterval time.Duration
	Logger        *slog.Logger
	Now           func() time.Time
}

// ErrUnauthorized is the answer to every credential that is missing, unknown,
// wrong, revoked or expired. It never says which, so that a caller cannot
// probe for keys.
var ErrUnauthorized = &audit.Error{Code: audit.CodeUnauthorized, Message: "a valid API key or token is required"}

// Authenticator turns bearer credentials into principals.
type Authenticator struct {
	opts   Options
	log    *slog.Logger
	static atomic.Pointer[[]staticEntry] // replaced whole on reload
	oidc   atomic.Pointer[OIDC]          // nil: tokens are not accepted

	cacheMu sync.Mutex
	cache   map[string]cachedKey
	lookups singleflight.Group

	touchMu sync.Mutex
	touched map[string]time.Time // key id → last use not yet written
}

type staticEntry struct {
	digest    [sha256.Size]byte
	principal audit.Principal
}

type cachedKey struct {
	key     audit.APIKey
	missing bool // no such key
	fetched time.Time
}

// NewAuthenticator returns an authenticator; its Run loop writes last-use times.
func NewAuthenticator(opts Options) *Authenticator {
	if opts.CacheTTL <= 0 {
		opts.CacheTTL = 2 * time.Second
	}
	if opts.TouchInterval <= 0 {
		opts.TouchInterval = time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	a := &Authenticator{opts: opts, log: opts.Logger, cache: map[string]cachedKey{}, touched: map[string]time.Time{}}
	a.SetStaticKeys(nil)
	return a
}

// SetStaticKeys replaces the keys from the configuration (reload). Keys are
// kept as SHA-256 digests, so comparing them takes the same time whatever
// their length and content.
func (a *Authenticator) SetStaticKeys(keys []StaticKey) {
	entries := make([]staticEntry, 0, len(keys))
	for _, k := range keys {
		if k.Key == "" {
			continue
		}
		entries = append(entries, staticEntry{
			digest: sha256.Sum256([]byte(k.Key)),
			principal: audit.Principal{ID: "config:" + k.Name, Name: k.Name, Role: k.Role,
				Organizations: k.Organizations},
		})
	}
	a.static.Store(&entries)
}

// SetOIDC replaces the token verifier (nil: tokens are refused).
func (a *Authenticator) SetOIDC(o *OIDC) { a.oidc.Store(o) }

// Authenticate returns the principal a bearer credential stands for, or an
// error: ErrUnauthorized for a bad credential, CodeUnavailable when the key
// store cannot be read (the caller answers 503, never lets the request in).
func (a *Authenticator) Authenticate(ctx context.Context, credential string) (audit.Principal, error) {
	if credential == "" {
		return audit.Principal{}, ErrUnauthorized
	}
	if id, secret, ok := audit.ParseAPIKey(credential); ok && a.opts.Keys != nil {
		if p, err := a.storedKey(ctx, id, secret); !errors.Is(err, ErrUnauthorized) {
			return p, err
		}
		// Not a stored key: a configured key may have the same form.
	}
	if p, ok := a.staticKey(credential); ok {
		return p, nil
	}
	if o := a.oidc.Load(); o != nil && looksLikeJWT(credential) {
		return o.Verify(ctx, credential)
	}
	return audit.Principal{}, ErrUnauthorized
}

func (a *Authenticator) staticKey(credential string) (audit.Principal, bool) {
	presented := sha256.Sum256([]byte(credential))
	var found audit.Principal
	match := 0
	for _, e := range *a.static.Load() { // no early exit: every key is compared
		if subtle.ConstantTimeCompare(presented[:], e.digest[:]) == 1 {
			found, match = e.principal, 1
		}
	}
	return found, match == 1
}

func (a *Authenticator) storedKey(ctx context.Context, id, secret string) (audit.Principal, error) {
	k, err := a.lookup(ctx, id)
	if err != nil {
		return audit.Principal{}, err
	}
	now := a.opts.Now()
	if ok, _ := k.Usable(now); !ok || !k.MatchesSecret(secret, now) {
		return audit.Principal{}, ErrUnauthorized
	}
	a.touch(id, now)
	return k.Principal(), nil
}

// lookup returns the stored key, from the cache while it is fresh. Concurrent
// lookups of one id share one read.
func (a *Authenticator) lookup(ctx context.Context, id string) (audit.APIKey, error) {
	now := a.opts.Now()
	a.cacheMu.Lock()
	c, ok := a.cache[id]
	a.cacheMu.Unlock()
	if !ok || now.Sub(c.fetched) >= a.opts.CacheTTL {
		v, err, _ := a.lookups.Do(id, func() (any, error) {
			// Shared by every caller waiting for this id: one caller giving
			// up must not fail the others.
			fetchCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			return a.fetch(fetchCtx, id)
		})
		if err != nil {
			return audit.APIKey{}, err
		}
		c = v.(cachedKey)
	}
	if c.missing {
		return audit.APIKey{}, ErrUnauthorized
	}
	return c.key, nil
}

func (a *Authenticator) fetch(ctx context.Context, id string) (cachedKey, error) {
	k, err := a.opts.Keys.GetAPIKey(ctx, id)
	c := cachedKey{key: k, fetched: a.opts.Now()}
	switch {
	case audit.ErrorCode(err) == audit.CodeNotFound:
		c.missing = true
	case err != nil:
		return c, audit.Errorf(audit.CodeUnavailable, "check api key: %w", err)
	}
	a.cacheMu.Lock()
	a.cache[id] = c
	a.cacheMu.Unlock()
	return c, nil
}

// Forget drops a key from the cache, so that a revocation made through this
// process takes effect at once here (other replicas see it within CacheTTL).
func (a *Authenticator) Forget(id string) {
	a.cacheMu.Lock()
	delete(a.cache, id)
	a.cacheMu.Unlock()
}

func (a *Authenticator) touch(id string, at time.Time) {
	a.touchMu.Lock()
	a.touched[id] = at
	a.touchMu.Unlock()
}

// Run writes last-use times every TouchInterval and prunes the cache, until
// ctx ends; then it writes what is left.
func (a *Authenticator) Run(ctx context.Context) error {
	t := time.NewTicker(a.opts.TouchInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			a.flushTouches(flushCtx)
			return nil
		case <-t.C:
			a.flushTouches(ctx)
			a.pruneCache()
		}
	}
}

func (a *Authenticator) flushTouches(ctx context.Context) {
	if a.opts.Keys == nil {
		return
	}
	a.touchMu.Lock()
	batch := a.touched
	a.touched = map[string]time.Time{}
	a.touchMu.Unlock()
	if len(batch) == 0 {
		return
	}
	if err := a.opts.Keys.TouchAPIKeys(ctx, batch); err != nil {
		a.log.Warn("could not record when API keys were last used", "keys", len(batch), "err", err)
	}
}

func (a *Authenticator) pruneCache() {
	now := a.opts.Now()
	a.cacheMu.Lock()
	defer a.cacheMu.Unlock()
	for id, c := range a.cache {
		if now.Sub(c.fetched) >= a.opts.CacheTTL {
			delete(a.cache, id)
		}
	}
}

// looksLikeJWT reports whether s has the three dot-separated parts of a
// compact JWS; anything else is not worth a verifier's time.
func looksLikeJWT(s string) bool {
	return strings.Count(s, ".") == 2 && len(s) < 16<<10
}

// BearerToken returns the credential of an Authorization header value. The
// scheme is matched case-insensitively (RFC 9110 §11.1).
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}
