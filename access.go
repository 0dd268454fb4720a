package audit

import (
	"fmt"
	"slices"
	"strings"
)

// Role is a fixed set of permissions. Roles separate duties: the key a
// producer sends events with cannot read them, the key an auditor reads with
// cannot dismiss alerts, and only an admin manages keys.
type Role string

const (
	RoleIngest   Role = "ingest"   // sends events, nothing else
	RoleReader   Role = "reader"   // reads events and alerts of its organisations
	RoleAuditor  Role = "auditor"  // reader + exports, reports, verification, proofs, access records
	RoleOperator Role = "operator" // runs the worker: alerts, dead letters, observability
	RoleAdmin    Role = "admin"    // everything, keys included
)

// Roles lists every role, from the least to the most powerful.
var Roles = []Role{RoleIngest, RoleReader, RoleAuditor, RoleOperator, RoleAdmin}

// ParseRole returns the role named s, or a CodeInvalid error naming the roles.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if slices.Contains(Roles, r) {
		return r, nil
	}
	return "", Errorf(CodeInvalid, "unknown role %q: one of %s", s, joinRoles())
}

func joinRoles() string {
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return strings.Join(names, ", ")
}

// Permission is one thing a principal may do. Every HTTP route names the
// permission it needs; a role grants a fixed set of them.
type Permission string

const (
	// PermAuthenticated is granted to every principal: routes that any
	// caller with valid credentials may use (the checkpoint verifier key).
	PermAuthenticated Permission = "authenticated"
	PermIngest        Permission = "events:ingest"
	PermEventsRead    Permission = "events:read"
	PermAlertsRead    Permission = "alerts:read"
	PermEventsExport  Permission = "events:export"
	PermEventsVerify  Permission = "events:verify" // single-event verification, proofs, checkpoints
	PermReports       Permission = "reports:read"
	PermAccessLog     Permission = "access:read" // the audit.access.* and audit.key.* events
	PermAlertsManage  Permission = "alerts:manage"
	PermDeadLetters   Permission = "deadletters:manage"
	PermObservability Permission = "observability:read" // /observability/*, pprof, health details
	PermKeysManage    Permission = "keys:manage"
)

// rolePermissions is the one table of who may do what.
var rolePermissions = map[Role][]Permission{
	RoleIngest: {PermIngest},
	RoleReader: {PermEventsRead, PermAlertsRead},
	RoleAuditor: {PermEventsRead, PermAlertsRead, PermEventsExport, PermEventsVerify,
		PermReports, PermAccessLog},
	RoleOperator: {PermAlertsRead, PermAlertsManage, PermDeadLetters, PermObservability},
	RoleAdmin: {PermIngest, PermEventsRead, PermAlertsRead, PermEventsExport, PermEventsVerify,
		PermReports, PermAccessLog, PermAlertsManage, PermDeadLetters, PermObservability,
		PermKeysManage},
}

// Grants reports whether the role includes the permission.
func (r Role) Grants(p Permission) bool {
	perms, ok := rolePermissions[r]
	if !ok {
		return false
	}
	return p == PermAuthenticated || slices.Contains(perms, p)
}

// Permissions returns what the role may do.
func (r Role) Permissions() []Permission { return slices.Clone(rolePermissions[r]) }

// AllOrganizations is the organisation scope that covers every organisation,
// and events without an organizationId.
const AllOrganizations = "*"

// Principal is who makes a request: an API key or the subject of a token,
// with the role and the organisations its credentials give it.
type Principal struct {
	// ID names the principal in logs and access records without revealing a
	// secret: "key:<public id>" for a stored key, "config:<name>" for a key
	// from the configuration, "oidc:<subject>" for a token.
	ID   string
	Name string // the key's name, or the token's name/email claim
	Role Role
	// Organizations is the scope: the organisation ids it may act for, or
	// [AllOrganizations].
	Organizations []string
}

// Can reports whether the principal's role grants p.
func (p Principal) Can(perm Permission) bool { return p.Role.Grants(perm) }

// AllOrgs reports whether the scope covers every organisation.
func (p Principal) AllOrgs() bool { return slices.Contains(p.Organizations, AllOrganizations) }

// InScope reports whether the principal may act for org. An event without an
// organisation ("") is in the scope of an all-organisations principal only.
func (p Principal) InScope(org string) bool {
	if p.AllOrgs() {
		return true
	}
	return org != "" && slices.Contains(p.Organizations, org)
}

// ScopeOrganizations narrows the organisations a request names to the
// principal's scope. With none named it returns the whole scope (nil meaning
// every organisation). A named organisation outside the scope is a
// CodeForbidden error naming it.
func (p Principal) ScopeOrganizations(requested []string) ([]string, error) {
	for _, org := range requested {
		if !p.InScope(org) {
			return nil, Errorf(CodeForbidden, "organization %q is outside the caller's scope", org)
		}
	}
	if len(requested) > 0 {
		return requested, nil
	}
	if p.AllOrgs() {
		return nil, nil
	}
	return slices.Clone(p.Organizations), nil
}

// ValidateOrganizations checks an organisation scope as keys and tokens carry
// it: not empty, no empty or padded ids, "*" alone.
func ValidateOrganizations(orgs []string) error {
	if len(orgs) == 0 {
		return Errorf(CodeInvalid, "organizations: at least one organisation id, or %q for all", AllOrganizations)
	}
	for i, o := range orgs {
		switch {
		case o == "" || strings.TrimSpace(o) != o:
			return Errorf(CodeInvalid, "organizations[%d]: %q is empty or has leading or trailing spaces", i, o)
		case o == AllOrganizations && len(orgs) > 1:
			return Errorf(CodeInvalid, "organizations: %q covers every organisation and stands alone", AllOrganizations)
		case len(o) > 255 || strings.ContainsRune(o, 0):
			return Errorf(CodeInvalid, "organizations[%d]: longer than 255 bytes or holds a NUL", i)
		}
	}
	return nil
}

// String names the principal for logs: its ID and role, never a secret.
func (p Principal) String() string { return fmt.Sprintf("%s (%s)", p.ID, p.Role) }
