package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/config"
)

// staticKeys are the keys of the configuration: each http.apiKeys entry is an
// ingest key for every organisation (what a key could do before roles
// existed, for the producers), and http.keys carry their own role and scope.
// fileKey, when set, is a key file of the embedded default from before keys
// were kept in the store: it keeps the admin rights it had.
func staticKeys(cfg config.Config, fileKey string) []access.StaticKey {
	var keys []access.StaticKey
	for i, k := range cfg.HTTP.APIKeys {
		keys = append(keys, access.StaticKey{Name: fmt.Sprintf("apiKeys[%d]", i), Key: k, Role: audit.RoleIngest,
			Organizations: []string{audit.AllOrganizations}})
	}
	for _, k := range cfg.HTTP.Keys {
		keys = append(keys, access.StaticKey{Name: k.Name, Key: k.Key, Role: audit.Role(k.Role), Organizations: k.Organizations})
	}
	if fileKey != "" {
		keys = append(keys, access.StaticKey{Name: "api-key-file", Key: fileKey, Role: audit.RoleAdmin,
			Organizations: []string{audit.AllOrganizations}})
	}
	return keys
}

// limitConfig turns the configured rate limits into the limiter's.
func limitConfig(rl config.RateLimits) access.LimitConfig {
	out := access.LimitConfig{PerPrincipal: map[audit.Role]access.Rate{}, PerRole: map[audit.Role]access.Rate{},
		FailedAuthPerAddress: access.Rate{Requests: rl.FailedAuthPerAddress.RequestsPerSecond, Burst: rl.FailedAuthPerAddress.Burst}}
	for role, r := range rl.PerPrincipal {
		out.PerPrincipal[audit.Role(role)] = access.Rate{Requests: r.RequestsPerSecond, Burst: r.Burst}
	}
	for role, r := range rl.PerRole {
		out.PerRole[audit.Role(role)] = access.Rate{Requests: r.RequestsPerSecond, Burst: r.Burst}
	}
	return out
}

// newOIDC builds the token verifier the configuration asks for; nil without http.oidc.
func newOIDC(cfg config.Config, log *slog.Logger) (*access.OIDC, error) {
	o := cfg.HTTP.OIDC
	if o == nil {
		return nil, nil
	}
	mapping := make(map[string]audit.Role, len(o.RoleMapping))
	for v, r := range o.RoleMapping {
		mapping[v] = audit.Role(r)
	}
	return access.NewOIDC(access.OIDCConfig{
		Issuer: o.Issuer, Audience: o.Audience, JWKSURL: o.JWKSURL,
		RoleClaim: o.RoleClaim, OrganizationsClaim: o.OrganizationsClaim, RoleMapping: mapping,
		ClockSkew: time.Duration(o.ClockSkewMs) * time.Millisecond,
	}, log)
}

// configuresCredentials reports whether the configuration names any way in:
// keys or an OIDC issuer. Without one, the worker makes its own admin key.
func configuresCredentials(cfg config.Config) bool {
	return len(cfg.HTTP.APIKeys) > 0 || len(cfg.HTTP.Keys) > 0 || cfg.HTTP.OIDC != nil
}

// bootstrapKey is the admin key of a worker configured with no credentials
// (the embedded default): created in the store on first start and written to
// storage.dataDir/api-key (mode 0600) for the operator to take. It returns
// the key and, for a key file from before keys were kept in the store, that
// key as legacy (it keeps working as a configuration key with admin rights).
func bootstrapKey(ctx context.Context, cfg config.Config, keys audit.KeyStore, log *slog.Logger) (key, legacy, file string, err error) {
	if configuresCredentials(cfg) {
		return "", "", "", nil
	}
	file = filepath.Join(cfg.Storage.DataDir, "api-key")
	data, err := os.ReadFile(file)
	switch {
	case err == nil:
		key = strings.TrimSpace(string(data))
		if len(key) < 16 {
			return "", "", file, fmt.Errorf("API key file %s holds a key shorter than 16 characters", file)
		}
		id, _, ok := audit.ParseAPIKey(key)
		if ok {
			if _, err := keys.GetAPIKey(ctx, id); err == nil {
				return key, "", file, nil
			} else if audit.ErrorCode(err) != audit.CodeNotFound {
				return "", "", file, fmt.Errorf("read API key %s: %w", id, err)
			}
		}
		return key, key, file, nil
	case !errors.Is(err, os.ErrNotExist):
		return "", "", file, fmt.Errorf("read API key file: %w", err)
	}
	if err := os.MkdirAll(cfg.Storage.DataDir, 0o700); err != nil {
		return "", "", file, fmt.Errorf("create data directory: %w", err)
	}
	id, token, hash := audit.NewAPIKeySecret()
	k := audit.APIKey{ID: id, Name: "bootstrap admin", Role: audit.RoleAdmin,
		Organizations: []string{audit.AllOrganizations}, CreatedBy: "audit-worker (first start)",
		CreatedAt: time.Now().UTC().Truncate(time.Microsecond), SecretHash: hash}
	if err := writeKeyFile(file, token); err != nil {
		return "", "", file, err
	}
	if err := keys.CreateAPIKey(ctx, k); err != nil {
		os.Remove(file) // the next start tries again
		return "", "", file, fmt.Errorf("store the bootstrap API key: %w", err)
	}
	log.Warn("created an admin API key: it may do everything, keys included; create narrower keys with `audit-worker keys create`",
		"file", file, "keyId", id, "role", audit.RoleAdmin, "organizations", audit.AllOrganizations)
	return token, "", file, nil
}

// writeKeyFile writes a key readable by its owner only; it never replaces a file.
func writeKeyFile(path, key string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("save API key: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("save API key: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save API key: %w", err)
	}
	return nil
}
