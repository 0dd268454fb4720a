package audit_test

import (
	"testing"

	audit "github.com/smartlogs/audit-worker"
)

func TestSessionContextOf(t *testing.T) {
	cases := map[string]*audit.SessionContext{
		``:                       nil,
		`{"a":1}`:                nil,
		`{"sessionContext":"x"}`: nil,
		`{"note":"sessionContext","sessionContext":{"sessionId":"s-1","ipAddress":"10.0.0.1","userAgent":"UA \"quoted\"","geolocation":"Oslo"}}`: {
			SessionID: "s-1", IPAddress: "10.0.0.1", UserAgent: `UA "quoted"`, Geolocation: "Oslo"},
		`{"sessionContext":{"sessionId":7,"ipAddress":null,"userAgent":"u\u00e9"}}`: {UserAgent: "ué"},
	}
	for details, want := range cases {
		got := audit.SessionContextOf([]byte(details))
		if (got == nil) != (want == nil) || (got != nil && *got != *want) {
			t.Errorf("SessionContextOf(%s) = %+v, want %+v", details, got, want)
		}
	}
}
