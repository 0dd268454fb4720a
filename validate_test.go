package audit

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const validSample = `{"timestamp":"2023-10-26T10:30:00.000Z","action":"fhir.patient.read","status":"success",
	"principalId":"user-1","organizationId":"org-1","targetResourceType":"Patient","targetResourceId":"p-1",
	"outcomeDescription":"read","dataClassification":"PHI","eventVersion":"1.0","hashAlgorithm":"SHA-256",
	"sessionContext":{"sessionId":"s-1","ipAddress":"192.168.1.1","userAgent":"curl/8"},
	"custom":{"level1":{"level2":"x"}}}`

// with replaces or adds top-level fields of validSample (a nil value removes the field).
func with(fields map[string]any) []byte {
	m := map[string]any{}
	mustUnmarshal([]byte(validSample), &m)
	for k, v := range fields {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return mustMarshal(m)
}

func parseErrors(t *testing.T, data []byte) []FieldError {
	t.Helper()
	_, _, err := ParseEvent(data, DefaultRules(), testNow)
	if err == nil {
		return nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	if ErrorCode(err) != CodeInvalid {
		t.Errorf("ErrorCode = %q, want %q", ErrorCode(err), CodeInvalid)
	}
	return ve.Errors
}

func TestValidSampleHasNoErrorsOrWarnings(t *testing.T) {
	ev, warnings, err := ParseEvent([]byte(validSample), DefaultRules(), testNow)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("err %v, warnings %v", err, warnings)
	}
	if ev.SessionContext == nil || ev.SessionContext.IPAddress != "192.168.1.1" {
		t.Errorf("sessionContext = %+v", ev.SessionContext)
	}
	if !strings.HasPrefix(string(ev.Details), `{"sessionContext":{"sessionId":"s-1"`) || !strings.Contains(string(ev.Details), `"custom":{"level1":{"level2":"x"}}`) {
		t.Errorf("details = %s", ev.Details)
	}
	if !ev.Time.Equal(time.Date(2023, 10, 26, 10, 30, 0, 0, time.UTC)) || ev.Timestamp != "2023-10-26T10:30:00.000Z" {
		t.Errorf("time = %v / %q", ev.Time, ev.Timestamp)
	}
}

func TestValidationRules(t *testing.T) {
	long := strings.Repeat("é", 10001) // 10001 characters, 20002 bytes
	tests := []struct {
		name   string
		event  []byte
		fields []string // fields in error, in order
		codes  []string
	}{
		{"missing timestamp and action", with(map[string]any{"timestamp": nil, "action": nil}),
			[]string{"timestamp", "action"}, []string{ErrRequiredFieldMissing, ErrRequiredFieldMissing}},
		{"null status", with(map[string]any{"status": "__null__"}), []string{"status"}, []string{ErrRequiredFieldMissing}},
		{"bad timestamp", with(map[string]any{"timestamp": "invalid-timestamp"}), []string{"timestamp"}, []string{ErrInvalidFormat}},
		{"numeric timestamp", with(map[string]any{"timestamp": 1698316200000}), []string{"timestamp"}, []string{ErrInvalidType}},
		{"impossible date", with(map[string]any{"timestamp": "2023-02-30T10:00:00Z"}), []string{"timestamp"}, []string{ErrInvalidFormat}},
		{"hour 24", with(map[string]any{"timestamp": "2023-02-10T24:00:00Z"}), []string{"timestamp"}, []string{ErrInvalidFormat}},
		{"no offset", with(map[string]any{"timestamp": "2023-10-26T10:30:00.000"}), []string{"timestamp"}, []string{ErrInvalidFormat}},
		{"far future", with(map[string]any{"timestamp": "2026-01-01T01:00:00Z"}), []string{"timestamp"}, []string{ErrInvalidValue}},
		{"empty action", with(map[string]any{"action": ""}), []string{"action"}, []string{ErrEmptyValue}},
		{"numeric action", with(map[string]any{"action": 42}), []string{"action"}, []string{ErrInvalidType}},
		{"long action", with(map[string]any{"action": long}), []string{"action"}, []string{ErrExceedsMaxLength}},
		{"bad status", with(map[string]any{"status": "done"}), []string{"status"}, []string{ErrInvalidValue}},
		{"bad classification", with(map[string]any{"dataClassification": "phi"}), []string{"dataClassification"}, []string{ErrInvalidValue}},
		{"bad hash algorithm", with(map[string]any{"hashAlgorithm": "MD5"}), []string{"hashAlgorithm"}, []string{ErrInvalidValue}},
		{"bad hash", with(map[string]any{"hash": "ABC"}), []string{"hash"}, []string{ErrInvalidFormat}},
		{"negative latency and depth", with(map[string]any{"processingLatency": -1, "queueDepth": -5}),
			[]string{"processingLatency", "queueDepth"}, []string{ErrInvalidValue, ErrInvalidValue}},
		{"long principal and organization", with(map[string]any{"principalId": long, "organizationId": long}),
			[]string{"principalId", "organizationId"}, []string{ErrExceedsMaxLength, ErrExceedsMaxLength}},
		{"numeric principal", with(map[string]any{"principalId": 7}), []string{"principalId"}, []string{ErrInvalidType}},
		{"empty session context", with(map[string]any{"sessionContext": map[string]any{}}),
			[]string{"sessionContext.sessionId", "sessionContext.ipAddress", "sessionContext.userAgent"},
			[]string{ErrInvalidValue, ErrInvalidValue, ErrInvalidValue}},
		{"bad ip", with(map[string]any{"sessionContext": map[string]any{"sessionId": "s", "ipAddress": "999.1.1.1", "userAgent": "u"}}),
			[]string{"sessionContext.ipAddress"}, []string{ErrInvalidFormat}},
		{"too deep", with(map[string]any{"custom": map[string]any{"a": map[string]any{"b": map[string]any{"c": map[string]any{"d": 1}}}}}),
			[]string{"custom"}, []string{ErrExceedsMaxDepth}},
		{"too deep through arrays", with(map[string]any{"custom": []any{[]any{[]any{[]any{1}}}}}),
			[]string{"custom"}, []string{ErrExceedsMaxDepth}},
		{"NUL in custom field", []byte(strings.Replace(validSample, `"level2":"x"`, `"level2":"a\u0000b"`, 1)),
			[]string{"custom"}, []string{ErrInvalidValue}},
		{"NUL in action", []byte(strings.Replace(validSample, `"fhir.patient.read"`, `"fhir\u0000"`, 1)),
			[]string{"action"}, []string{ErrInvalidValue}},
		{"lone surrogate", []byte(strings.Replace(validSample, `"read"`, `"\ud800"`, 1)),
			[]string{"outcomeDescription"}, []string{ErrInvalidValue}},
		{"duplicate key", []byte(strings.Replace(validSample, `"status":"success"`, `"status":"success","status":"failure"`, 1)),
			[]string{""}, []string{ErrInvalidFormat}},
		{"not an object", []byte(`[1,2]`), []string{""}, []string{ErrInvalidFormat}},
		{"invalid UTF-8", []byte("{\"action\":\"\xff\"}"), []string{""}, []string{ErrInvalidFormat}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := []byte(strings.ReplaceAll(string(tt.event), `"__null__"`, "null"))
			errs := parseErrors(t, data)
			if len(errs) != len(tt.fields) {
				t.Fatalf("errors = %+v, want fields %v", errs, tt.fields)
			}
			for i := range errs {
				if errs[i].Field != tt.fields[i] || errs[i].Code != tt.codes[i] || errs[i].Message == "" {
					t.Errorf("error %d = %+v, want %s %s", i, errs[i], tt.fields[i], tt.codes[i])
				}
			}
		})
	}
}

func TestValidationAccepts(t *testing.T) {
	tests := map[string][]byte{
		"attempt status":               with(map[string]any{"status": "attempt"}),
		"offset timestamp":             with(map[string]any{"timestamp": "2023-10-26T16:00:00.123456+05:30"}),
		"no fraction":                  with(map[string]any{"timestamp": "2023-10-26T10:30:00Z"}),
		"10000 characters":             with(map[string]any{"outcomeDescription": strings.Repeat("é", 10000)}),
		"compressed IPv6":              with(map[string]any{"sessionContext": map[string]any{"sessionId": "s", "ipAddress": "fe80::1", "userAgent": "u"}}),
		"full IPv6":                    with(map[string]any{"sessionContext": map[string]any{"sessionId": "s", "ipAddress": "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "userAgent": "u"}}),
		"numeric retention":            with(map[string]any{"retentionPolicy": 2555}),
		"depth 3":                      with(map[string]any{"custom": map[string]any{"a": map[string]any{"b": map[string]any{"c": 1}}}}),
		"surrogate pair":               []byte(strings.Replace(validSample, `"read"`, `"\ud83d\ude00 ok"`, 1)),
		"HTML characters kept as-is":   with(map[string]any{"outcomeDescription": `<script>alert("x")</script> & 'y'`}),
		"null optional fields":         []byte(strings.Replace(validSample, `"principalId":"user-1"`, `"principalId":null`, 1)),
		"skew within limit":            with(map[string]any{"timestamp": "2026-01-01T00:04:00Z"}),
		"unknown event version (warn)": with(map[string]any{"eventVersion": "9.9"}),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			if errs := parseErrors(t, data); errs != nil {
				t.Fatalf("refused: %+v", errs)
			}
		})
	}
	_, warnings, _ := ParseEvent(with(map[string]any{"eventVersion": "9.9"}), DefaultRules(), testNow)
	if len(warnings) != 1 {
		t.Errorf("warnings = %v, want 1", warnings)
	}
}

func TestValidationNeverRewritesValues(t *testing.T) {
	desc := "  <b>\"quoted\"</b> & \\ back\\slash \t "
	ev, _, err := ParseEvent(with(map[string]any{"outcomeDescription": desc, "dataClassification": "CONFIDENTIAL"}), DefaultRules(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if ev.OutcomeDescription != desc {
		t.Errorf("outcomeDescription = %q, want %q unchanged", ev.OutcomeDescription, desc)
	}
}

func TestEventSizeLimit(t *testing.T) {
	rules := DefaultRules()
	rules.MaxEventBytes = 100
	_, _, err := ParseEvent([]byte(validSample), rules, testNow)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Errors[0].Code != ErrExceedsMaxLength {
		t.Fatalf("err = %v", err)
	}
}

func TestCustomRulesAreHonoured(t *testing.T) {
	rules := DefaultRules()
	rules.MaxStringLength = 5
	_, _, err := ParseEvent([]byte(validSample), rules, testNow)
	if err == nil || !strings.Contains(err.Error(), "action") {
		t.Fatalf("err = %v, want action too long", err)
	}
}
