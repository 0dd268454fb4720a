package access

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	audit "github.com/smartlogs/audit-worker"
)

// NewKey is a request for a new stored key.
type NewKey struct {
	Name          string
	Role          audit.Role
	Organizations []string
	ExpiresIn     time.Duration // 0: never expires
	CreatedBy     string        // the principal creating it
}

// MaxKeyLifetime bounds ExpiresIn: ten years.
const MaxKeyLifetime = 10 * 365 * 24 * time.Hour

// Check reports what makes the request unusable (CodeInvalid, naming the field).
func (n NewKey) Check() error {
	switch {
	case strings.TrimSpace(n.Name) == "" || utf8.RuneCountInString(n.Name) > 200 || strings.ContainsRune(n.Name, 0):
		return audit.Errorf(audit.CodeInvalid, "name: 1 to 200 characters, no NUL")
	case n.ExpiresIn < 0 || n.ExpiresIn > MaxKeyLifetime:
		return audit.Errorf(audit.CodeInvalid, "expires: between 0 (never) and %s", "3650d")
	}
	if _, err := audit.ParseRole(string(n.Role)); err != nil {
		return audit.Errorf(audit.CodeInvalid, "role: %w", err)
	}
	return audit.ValidateOrganizations(n.Organizations)
}

// CreateKey stores a new key and returns it with the key itself, which is
// shown this once and never kept.
func CreateKey(ctx context.Context, store audit.KeyStore, n NewKey, now time.Time) (audit.APIKey, string, error) {
	if err := n.Check(); err != nil {
		return audit.APIKey{}, "", err
	}
	id, token, hash := audit.NewAPIKeySecret()
	k := audit.APIKey{ID: id, Name: n.Name, Role: n.Role, Organizations: n.Organizations,
		CreatedBy: n.CreatedBy, CreatedAt: now.UTC().Truncate(time.Microsecond), SecretHash: hash}
	if n.ExpiresIn > 0 {
		at := k.CreatedAt.Add(n.ExpiresIn)
		k.ExpiresAt = &at
	}
	if err := store.CreateAPIKey(ctx, k); err != nil {
		return audit.APIKey{}, "", err
	}
	return k, token, nil
}

// RotateKey gives a key a new secret; the old one keeps working for overlap.
func RotateKey(ctx context.Context, store audit.KeyStore, id string, overlap time.Duration, now time.Time) (audit.APIKey, string, error) {
	if !audit.ValidAPIKeyID(id) {
		return audit.APIKey{}, "", audit.Errorf(audit.CodeNotFound, "api key %q: no such key", id)
	}
	if overlap < 0 || overlap > 30*24*time.Hour {
		return audit.APIKey{}, "", audit.Errorf(audit.CodeInvalid, "overlap: between 0 and 720h")
	}
	token, hash := audit.NewAPIKeySecretFor(id)
	k, err := store.RotateAPIKey(ctx, id, hash, now.Add(overlap).UTC().Truncate(time.Microsecond))
	if err != nil {
		return audit.APIKey{}, "", err
	}
	return k, token, nil
}

// ParseLifetime reads a key lifetime or overlap: a Go duration ("36h",
// "90m") or a number of days ("90d"). "" is 0.
func ParseLifetime(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > 3650 {
			return 0, fmt.Errorf("%q: a number of days from 0 to 3650, like 90d", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q: a duration like 90d or 36h", s)
	}
	return d, nil
}

// KeyView is a stored key as lists show it: never its secret or its hash.
type KeyView struct {
	ID            string     `json:"id"`
	Name          string     `json:"name"`
	Role          audit.Role `json:"role"`
	Organizations []string   `json:"organizations"`
	CreatedBy     string     `json:"createdBy"`
	CreatedAt     time.Time  `json:"createdAt"`
	ExpiresAt     *time.Time `json:"expiresAt"`
	RevokedAt     *time.Time `json:"revokedAt"`
	LastUsedAt    *time.Time `json:"lastUsedAt"`
	// PreviousSecretUntil is when the secret a rotation replaced stops working.
	PreviousSecretUntil *time.Time `json:"previousSecretUntil,omitempty"`
	State               string     `json:"state"` // active, expired or revoked
}

// View returns what may be shown of k.
func View(k audit.APIKey, now time.Time) KeyView {
	v := KeyView{ID: k.ID, Name: k.Name, Role: k.Role, Organizations: k.Organizations, CreatedBy: k.CreatedBy,
		CreatedAt: k.CreatedAt, ExpiresAt: k.ExpiresAt, RevokedAt: k.RevokedAt, LastUsedAt: k.LastUsedAt, State: "active"}
	if k.PreviousExpiresAt != nil && now.Before(*k.PreviousExpiresAt) {
		v.PreviousSecretUntil = k.PreviousExpiresAt
	}
	if ok, why := k.Usable(now); !ok {
		v.State = why
	}
	return v
}

// Created is what a new key's creator gets: the key itself, once.
type Created struct {
	ID            string     `json:"id"`
	Key           string     `json:"key"`
	Name          string     `json:"name"`
	Role          audit.Role `json:"role"`
	Organizations []string   `json:"organizations"`
	ExpiresAt     *time.Time `json:"expiresAt"`
}

// CreatedView is the answer to a key's creation (or rotation).
func CreatedView(k audit.APIKey, token string) Created {
	return Created{ID: k.ID, Key: token, Name: k.Name, Role: k.Role, Organizations: k.Organizations, ExpiresAt: k.ExpiresAt}
}
