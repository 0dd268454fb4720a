package audit

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"strings"
	"time"
)

// APIKeyPrefix starts every key this worker issues: awk_<public id>_<secret>.
const APIKeyPrefix = "awk_"

// The public id is 16 characters of lower-case base32 (80 random bits): enough
// that two keys never share one, short enough to read in a log. The secret is
// 32 random bytes (256 bits), base64url without padding.
const (
	apiKeyIDLength     = 16
	apiKeySecretBytes  = 32
	apiKeyIDAlphabet   = "abcdefghijklmnopqrstuvwxyz234567"
	apiKeySecretLength = 43 // base64url of 32 bytes, unpadded
)

// APIKey is a key kept in the store. Only the SHA-256 of its secret is kept:
// the secret is 256 random bits, so a fast hash is enough. (A slow, salted hash
// protects guessable passwords; nobody can guess 256 random bits, fast or slow,
// and a slow hash would cost every request its time.)
type APIKey struct {
	ID            string // the public id
	Name          string
	Role          Role
	Organizations []string // the scope; [AllOrganizations] for all
	CreatedBy     string   // the principal that created it
	CreatedAt     time.Time
	ExpiresAt     *time.Time // nil: never
	RevokedAt     *time.Time
	LastUsedAt    *time.Time
	SecretHash    []byte // SHA-256 of the secret
	// PreviousSecretHash is the secret a rotation replaced; it keeps working
	// until PreviousExpiresAt, so that clients can move over.
	PreviousSecretHash []byte
	PreviousExpiresAt  *time.Time
}

// Principal is who a request made with this key is.
func (k *APIKey) Principal() Principal {
	return Principal{ID: "key:" + k.ID, Name: k.Name, Role: k.Role, Organizations: k.Organizations}
}

// Usable reports whether the key may be used at now, and why not.
func (k *APIKey) Usable(now time.Time) (bool, string) {
	switch {
	case k.RevokedAt != nil && !now.Before(*k.RevokedAt):
		return false, "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return false, "expired"
	}
	return true, ""
}

// MatchesSecret compares secret with the key's current secret and, within the
// rotation overlap, its previous one, in constant time.
func (k *APIKey) MatchesSecret(secret string, now time.Time) bool {
	h := sha256.Sum256([]byte(secret))
	match := subtle.ConstantTimeCompare(h[:], k.SecretHash)
	previous := 0
	if len(k.PreviousSecretHash) > 0 {
		previous = subtle.ConstantTimeCompare(h[:], k.PreviousSecretHash)
	}
	overlap := k.PreviousExpiresAt != nil && now.Before(*k.PreviousExpiresAt)
	return match == 1 || (previous == 1 && overlap)
}

// NewAPIKeySecret makes a new public id and secret, and returns the key as the
// client presents it (awk_<id>_<secret>) with the secret's hash to store.
func NewAPIKeySecret() (id, token string, secretHash []byte) {
	id = newKeyID()
	secret := newSecret()
	h := sha256.Sum256([]byte(secret))
	return id, APIKeyPrefix + id + "_" + secret, h[:]
}

// NewAPIKeySecretFor makes a new secret for an existing id (rotation).
func NewAPIKeySecretFor(id string) (token string, secretHash []byte) {
	secret := newSecret()
	h := sha256.Sum256([]byte(secret))
	return APIKeyPrefix + id + "_" + secret, h[:]
}

func newKeyID() string {
	b := make([]byte, apiKeyIDLength)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	for i := range b {
		b[i] = apiKeyIDAlphabet[b[i]&31]
	}
	return string(b)
}

func newSecret() string {
	b := make([]byte, apiKeySecretBytes)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseAPIKey splits a presented key into its public id and secret. ok is
// false when token is not in the awk_<id>_<secret> form.
func ParseAPIKey(token string) (id, secret string, ok bool) {
	rest, found := strings.CutPrefix(token, APIKeyPrefix)
	if !found {
		return "", "", false
	}
	id, secret, found = strings.Cut(rest, "_")
	if !found || !ValidAPIKeyID(id) || len(secret) != apiKeySecretLength {
		return "", "", false
	}
	return id, secret, true
}

// ValidAPIKeyID reports whether id has the form of a public id.
func ValidAPIKeyID(id string) bool {
	if len(id) != apiKeyIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !strings.ContainsRune(apiKeyIDAlphabet, rune(id[i])) {
			return false
		}
	}
	return true
}

// KeyStore keeps API keys. Implementations: postgres, sqlite.
type KeyStore interface {
	// CreateAPIKey stores a new key (CodeConflict if its id exists).
	CreateAPIKey(ctx context.Context, k APIKey) error
	// GetAPIKey returns the key with this public id (CodeNotFound if none).
	GetAPIKey(ctx context.Context, id string) (APIKey, error)
	// ListAPIKeys returns every key, oldest first.
	ListAPIKeys(ctx context.Context) ([]APIKey, error)
	// RevokeAPIKey marks the key revoked at at; revoking it again keeps the
	// first time. CodeNotFound if there is no such key.
	RevokeAPIKey(ctx context.Context, id string, at time.Time) (APIKey, error)
	// RotateAPIKey gives the key a new secret; the current one becomes the
	// previous secret, valid until previousUntil. CodeNotFound if there is no
	// such key, CodeConflict if it is revoked.
	RotateAPIKey(ctx context.Context, id string, secretHash []byte, previousUntil time.Time) (APIKey, error)
	// TouchAPIKeys records when keys were last used (a later time only).
	TouchAPIKeys(ctx context.Context, lastUsed map[string]time.Time) error
}
