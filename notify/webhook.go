package notify

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	audit "github.com/smartlogs/audit-worker"
)

// Webhook is one destination.
type Webhook struct {
	Name   string // names the destination in logs, metrics and delivery records
	URL    string // http or https
	Secret string // HMAC key of the signature; never logged
	// MinSeverity is the lowest severity sent; "" sends every alert.
	MinSeverity audit.Severity
	// Organizations limits the destination to these organisations' alerts;
	// empty sends every organisation's (and system alerts, which have none).
	Organizations []string
}

// Validate names what is wrong with w, if anything.
func (w Webhook) Validate() error {
	if strings.TrimSpace(w.Name) == "" {
		return audit.Errorf(audit.CodeInvalid, "webhook: name is required")
	}
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		// The URL itself is not repeated: it may hold a token.
		return audit.Errorf(audit.CodeInvalid, "webhook %s: url must be an absolute http or https URL", w.Name)
	}
	if w.Secret == "" {
		return audit.Errorf(audit.CodeInvalid, "webhook %s: secret is required (receivers verify the signature)", w.Name)
	}
	if w.MinSeverity != "" && w.MinSeverity.Rank() == 0 {
		return audit.Errorf(audit.CodeInvalid, "webhook %s: unknown minSeverity %q", w.Name, w.MinSeverity)
	}
	return nil
}

// Wants reports whether the destination takes this alert.
func (w Webhook) Wants(a audit.Alert) bool {
	if w.MinSeverity != "" && a.Severity.Rank() < w.MinSeverity.Rank() {
		return false
	}
	return len(w.Organizations) == 0 || slices.Contains(w.Organizations, a.OrganizationID)
}

func validateAll(ws []Webhook) error {
	seen := map[string]bool{}
	for _, w := range ws {
		if err := w.Validate(); err != nil {
			return err
		}
		if seen[w.Name] {
			return audit.Errorf(audit.CodeInvalid, "webhook %s: name used twice", w.Name)
		}
		seen[w.Name] = true
	}
	return nil
}

// String hides the secret and the URL, so a Webhook can be logged safely.
func (w Webhook) String() string { return fmt.Sprintf("webhook %s", w.Name) }
