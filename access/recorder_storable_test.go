package access_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
)

// A record of a request whose path, ids or parameters hold NUL characters or
// invalid UTF-8 (a caller's choice) is still a valid event: the pipeline
// would refuse it, and the access it records would be lost.
func TestRecordOfHostileTextIsAValidEvent(t *testing.T) {
	hostile := "a\x00b\xff\xfec"
	for name, a := range map[string]access.Access{
		"path":      {Action: access.ActionDenied, PrincipalID: "anonymous", Details: map[string]any{"route": "GET /v1/keys/" + hostile}},
		"target id": {Action: access.KeyAction("revoke"), TargetType: "api_key", TargetID: hostile, Outcome: "not_found"},
		"outcome":   {Action: access.ActionQuery, PrincipalID: "key:x", Outcome: hostile},
		"filters": {Action: access.ActionQuery, PrincipalID: "key:x",
			Details: map[string]any{"filters": url.Values{"principalId" + hostile: {hostile}}, "list": []string{hostile},
				"nested": map[string]any{hostile: hostile}, "plain": map[string][]string{"k": {hostile}}}},
	} {
		t.Run(name, func(t *testing.T) {
			for _, in := range access.Inputs(a, time.Now()) {
				if _, _, err := audit.ParseEvent(in.Payload, audit.DefaultRules(), time.Now()); err != nil {
					t.Errorf("record refused: %v\n%s", err, in.Payload)
				}
				if !strings.Contains(string(in.Payload), "a\\ufffdb") && !strings.Contains(string(in.Payload), "a\ufffdb") {
					t.Errorf("the hostile text is not kept (replaced where unstorable): %s", in.Payload)
				}
			}
		})
	}
}
