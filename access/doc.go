// Package access decides who a request is and how much it may ask: it turns
// a bearer credential (an API key kept in the store, a key from the
// configuration, or an OpenID Connect token) into an audit.Principal, limits
// the rate of each principal and of failed attempts from each address, and
// records every access to the audit trail as an audit event of its own.
//
// What a principal may do is the root package's role table
// (audit.Role.Grants); httpapi asks it once per request.
package access
