package httpapi

import (
	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
)

// staticAuth accepts keys with one role over every organisation.
func staticAuth(role audit.Role, keys ...string) *access.Authenticator {
	a := access.NewAuthenticator(access.Options{})
	static := make([]access.StaticKey, len(keys))
	for i, k := range keys {
		static[i] = access.StaticKey{Name: "test-" + string(role), Key: k, Role: role, Organizations: []string{audit.AllOrganizations}}
	}
	a.SetStaticKeys(static)
	return a
}

// adminAuth accepts keys that may do everything.
func adminAuth(keys ...string) *access.Authenticator { return staticAuth(audit.RoleAdmin, keys...) }
