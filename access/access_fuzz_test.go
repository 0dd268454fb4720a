package access

import (
	"encoding/json"
	"log/slog"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// FuzzParseLifetime holds ParseLifetime (a key's lifetime or rotation
// overlap) to its forms: a number of days from 0 to 3650, or a Go duration,
// never negative; an accepted lifetime reads back from its own duration
// text, and a refusal quotes the value.
func FuzzParseLifetime(f *testing.F) {
	for _, s := range []string{"", "90d", "3650d", "3651d", "-1d", "+5d", "36h", "1h30m", "-1s", "0", "9223372036854775807ns", "1e3d", "d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseLifetime(s)
		if err != nil {
			if !strings.Contains(err.Error(), "like 90d") {
				t.Fatalf("refusal of %q: %q does not show the forms", s, err)
			}
			return
		}
		if d < 0 || (strings.HasSuffix(s, "d") && d > 3650*24*time.Hour) {
			t.Fatalf("%q accepted as %v", s, d)
		}
		if back, err := ParseLifetime(d.String()); err != nil || back != d {
			t.Fatalf("%q reads as %v, whose text reads back as %v, %v", s, d, back, err)
		}
	})
}

// FuzzBearerToken holds BearerToken to the Authorization header's form:
// the scheme Bearer in any case, one or more spaces, a credential that is
// the rest of the header and not empty.
func FuzzBearerToken(f *testing.F) {
	for _, s := range []string{"Bearer awk_x_y", "bearer  t", "Bearer ", "Basic dTpw", "Bearer\tt", "BEARER a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, ok := BearerToken(header)
		if !ok {
			if token != "" {
				t.Fatalf("%q refused with credential %q", header, token)
			}
			return
		}
		if token == "" || token[0] == ' ' || !strings.HasSuffix(header, token) ||
			!strings.EqualFold(header[:len("Bearer ")], "Bearer ") {
			t.Fatalf("%q gives credential %q", header, token)
		}
	})
}

// FuzzOIDCClaims holds the project's reading of a verified token's claims
// (checkTimes, then principal) to its contract: a token is accepted only
// with an exp not yet past and an nbf already reached, within the skew, read
// as the numbers they are (a time past what an int64 holds is not a time in
// the past); the principal it gives has a known role, organisations that
// validate, and the subject in its id.
func FuzzOIDCClaims(f *testing.F) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	exp := now.Add(time.Hour).Unix()
	f.Add("user-1", []byte(`{"exp":`+itoa(exp)+`,"nbf":`+itoa(now.Unix())+`,"roles":["auditor","unknown"],"organizations":"org-a org-b","email":"a@b"}`))
	f.Add("user-2", []byte(`{"exp":`+itoa(exp)+`.5,"roles":"admin","organizations":["*"],"name":["x","y"]}`))
	f.Add("user-3", []byte(`{"exp":1e300,"nbf":-1e300,"roles":"reader","organizations":[""]}`))
	f.Add("", []byte(`{"exp":"soon","roles":null}`))
	f.Add("user-4", []byte(`{"exp":`+itoa(exp)+`,"nbf":1e19,"roles":"reader","organizations":"org-a"}`))
	o := &OIDC{log: slog.New(slog.DiscardHandler), cfg: OIDCConfig{RoleClaim: "roles", OrganizationsClaim: "organizations",
		RoleMapping: map[string]audit.Role{"auditor": audit.RoleAuditor}, ClockSkew: time.Minute, Now: func() time.Time { return now }}}
	f.Fuzz(func(t *testing.T, subject string, raw []byte) {
		var claims map[string]json.RawMessage
		if json.Unmarshal(raw, &claims) != nil {
			return // the verifier has refused it already
		}
		if o.checkTimes(claims) != nil {
			return
		}
		var exp, nbf float64
		_ = json.Unmarshal(claims["exp"], &exp)
		if limit := float64(now.Add(-o.cfg.ClockSkew).Unix()); !(exp >= limit) {
			t.Fatalf("exp %v accepted at %v", exp, now)
		}
		if rawNbf, ok := claims["nbf"]; ok {
			_ = json.Unmarshal(rawNbf, &nbf)
			if limit := float64(now.Add(o.cfg.ClockSkew).Unix()) + 1; !(nbf < limit) || math.IsNaN(nbf) {
				t.Fatalf("nbf %v accepted at %v", nbf, now)
			}
		}
		p, err := o.principal(subject, claims)
		if err != nil {
			return
		}
		if !slices.Contains(audit.Roles, p.Role) || p.ID != "oidc:"+subject || subject == "" {
			t.Fatalf("principal %+v from subject %q", p, subject)
		}
		if err := audit.ValidateOrganizations(p.Organizations); err != nil {
			t.Fatalf("principal %+v: %v", p, err)
		}
	})
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}
