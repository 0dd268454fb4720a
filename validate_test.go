package audit

import (
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smartlogs/audit-worker/internal/jsontext"
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
			[]string{"status"}, []string{ErrInvalidFormat}},
		{"duplicate key in sessionContext", []byte(strings.Replace(validSample, `"ipAddress":"192.168.1.1"`,
			`"ipAddress":"not-an-ip<script>","ipAddress":"10.0.0.1"`, 1)),
			[]string{"sessionContext.ipAddress"}, []string{ErrInvalidFormat}},
		{"duplicate key in an array in details", []byte(strings.Replace(validSample, `"level2":"x"`,
			`"items":[{"id":1},{"id":2,"\u0069d":3}]`, 1)),
			[]string{"custom.level1.items[1].id"}, []string{ErrInvalidFormat}},
		{"NUL in a nested key", []byte(strings.Replace(validSample, `"level2":"x"`, `"a\u0000":"x"`, 1)),
			[]string{"custom"}, []string{ErrInvalidValue}},
		{"lone surrogate in a nested key", []byte(strings.Replace(validSample, `"level2":"x"`, `"\udc00":"x"`, 1)),
			[]string{"custom"}, []string{ErrInvalidValue}},
		{"indexed field over its byte limit", with(map[string]any{"principalId": strings.Repeat("p", maxIndexedBytes+1)}),
			[]string{"principalId"}, []string{ErrExceedsMaxLength}},
		{"both resource fields over their byte limit", with(map[string]any{"targetResourceType": strings.Repeat("é", 513),
			"targetResourceId": strings.Repeat("i", 2000)}),
			[]string{"targetResourceType", "targetResourceId"}, []string{ErrExceedsMaxLength, ErrExceedsMaxLength}},
		{"correlationId over its byte limit", with(map[string]any{"correlationId": strings.Repeat("c", 3000)}),
			[]string{"correlationId"}, []string{ErrExceedsMaxLength}},
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

// parseOne parses validSample with fields replaced, under rules, and returns
// the event and the errors found (nil if none).
func parseOne(t *testing.T, rules Rules, now time.Time, fields map[string]any) (Event, []FieldError) {
	t.Helper()
	ev, _, err := ParseEvent(with(fields), rules, now)
	if err == nil {
		return ev, nil
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v is not a *ValidationError", err)
	}
	return ev, ve.Errors
}

// Timestamps are RFC 3339 exactly, in the range every store and every
// reader holds; the instant is kept in UTC to the microsecond.
func TestTimestampRules(t *testing.T) {
	noSkew := DefaultRules()
	noSkew.MaxFutureSkew = 0
	tests := []struct {
		ts   string
		code string // "" when accepted
		want time.Time
	}{
		{"2023-10-26T10:30:00.000Z", "", time.Date(2023, 10, 26, 10, 30, 0, 0, time.UTC)},
		{"2023-10-26t10:30:00.000z", "", time.Date(2023, 10, 26, 10, 30, 0, 0, time.UTC)}, // RFC 3339 allows lower case
		{"2023-10-26T16:00:00.123456789+05:30", "", time.Date(2023, 10, 26, 10, 30, 0, 123456000, time.UTC)},
		{"2023-10-26T10:30:00.1234567-00:00", "", time.Date(2023, 10, 26, 10, 30, 0, 123456000, time.UTC)},
		{"2024-02-29T23:59:59.9Z", "", time.Date(2024, 2, 29, 23, 59, 59, 900000000, time.UTC)},
		{"1970-01-01T00:00:00Z", "", time.Unix(0, 0).UTC()},
		{"1970-01-01T23:59:00+23:59", "", time.Unix(0, 0).UTC()},
		{"9999-12-31T23:59:59.999999999Z", "", time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC)},
		{"9999-12-31T23:59:59+23:59", "", time.Date(9999, 12, 31, 0, 0, 59, 0, time.UTC)},

		{"0001-01-01T00:00:00Z", ErrInvalidValue, time.Time{}}, // Go's zero time: "no time" to the stores
		{"0001-01-01T05:30:00+05:30", ErrInvalidValue, time.Time{}},
		{"0001-01-01T00:00:00.0000001Z", ErrInvalidValue, time.Time{}},
		{"0000-01-01T00:00:00+23:59", ErrInvalidValue, time.Time{}},
		{"1969-12-31T23:59:59.999999999Z", ErrInvalidValue, time.Time{}},
		{"1970-01-01T00:30:00+01:00", ErrInvalidValue, time.Time{}},
		{"9999-12-31T23:59:59-23:59", ErrInvalidValue, time.Time{}}, // year 10000 in UTC
		{"2016-12-31T23:59:60Z", ErrInvalidValue, time.Time{}},      // leap second
		{"2023-10-26T10:30:00.1234567891Z", ErrInvalidValue, time.Time{}},

		{"2023-10-26T10:30:00,123Z", ErrInvalidFormat, time.Time{}},
		{"2023-10-26T1:30:00Z", ErrInvalidFormat, time.Time{}},
		{"2023-10-26T10:30:00+24:00", ErrInvalidFormat, time.Time{}},
		{"2023-10-26T10:30:00+23:60", ErrInvalidFormat, time.Time{}},
		{"2023-10-26T10:30:00+0530", ErrInvalidFormat, time.Time{}},
		{"2023-10-26T10:30:00.Z", ErrInvalidFormat, time.Time{}},
		{"2023-10-26 10:30:00Z", ErrInvalidFormat, time.Time{}},
		{"2023-10-26T10:30Z", ErrInvalidFormat, time.Time{}},
		{"+2023-10-26T10:30:00Z", ErrInvalidFormat, time.Time{}},
		{"2023-13-01T10:30:00Z", ErrInvalidFormat, time.Time{}},
		{"2023-02-29T10:30:00Z", ErrInvalidFormat, time.Time{}},
		{"2023-04-31T10:30:00Z", ErrInvalidFormat, time.Time{}},
		{"2023-10-26T10:30:00Zjunk", ErrInvalidFormat, time.Time{}},
		{"2023-10-26T10:30:00", ErrInvalidFormat, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.ts, func(t *testing.T) {
			ev, errs := parseOne(t, noSkew, testNow, map[string]any{"timestamp": tt.ts})
			if tt.code == "" {
				if errs != nil {
					t.Fatalf("refused: %+v", errs)
				}
				if !ev.Time.Equal(tt.want) || ev.Time.Location() != time.UTC || ev.Timestamp != tt.ts {
					t.Fatalf("Time = %v (%v), Timestamp %q; want %v in UTC, %q", ev.Time, ev.Time.Location(), ev.Timestamp, tt.want, tt.ts)
				}
				return
			}
			if len(errs) != 1 || errs[0].Field != "timestamp" || errs[0].Code != tt.code {
				t.Fatalf("errors = %+v, want timestamp %s", errs, tt.code)
			}
		})
	}
}

// A time in the future says how far ahead it is at any distance, never as
// an overflowed duration.
func TestFarFutureMessage(t *testing.T) {
	now := time.Date(2023, 10, 26, 10, 30, 0, 0, time.UTC)
	tests := []struct{ ts, says string }{
		{"2023-10-26T11:30:00Z", "is 1h0m0s in the future"},
		{"2023-10-29T10:30:00Z", "is 3 days in the future"},
		{"2024-12-01T00:00:00Z", "is 1 year in the future"},
		{"2323-10-26T10:29:59Z", "is 299 years in the future"},
		{"9999-12-31T23:59:59Z", "is 7,976 years in the future"},
	}
	for _, tt := range tests {
		_, errs := parseOne(t, DefaultRules(), now, map[string]any{"timestamp": tt.ts})
		if len(errs) != 1 || errs[0].Code != ErrInvalidValue || !strings.HasPrefix(errs[0].Message, tt.says+",") {
			t.Errorf("%s: errors = %+v, want a message starting %q", tt.ts, errs, tt.says)
		}
	}
}

// Numbers kept as a float64 must read back as the number sent.
func TestNumberRules(t *testing.T) {
	tests := []struct {
		field string
		value json.RawMessage
		code  string  // "" when accepted
		want  float64 // processingLatency as stored
	}{
		{"processingLatency", json.RawMessage(`12.5`), "", 12.5},
		{"processingLatency", json.RawMessage(`1.50`), "", 1.5},
		{"processingLatency", json.RawMessage(`1E3`), "", 1000},
		{"processingLatency", json.RawMessage(`0.30000000000000004`), "", 0.30000000000000004},
		{"processingLatency", json.RawMessage(`5e-324`), "", 5e-324},
		{"processingLatency", json.RawMessage(`1.7976931348623157e308`), "", 1.7976931348623157e308},
		{"processingLatency", json.RawMessage(`123456789012345680000`), "", 123456789012345680000},
		{"processingLatency", json.RawMessage(`-0`), "", 0},
		{"processingLatency", json.RawMessage(`0e999999999999999999`), "", 0},
		{"processingLatency", json.RawMessage(`1e400`), ErrInvalidValue, 0},
		{"processingLatency", json.RawMessage(`-1e400`), ErrInvalidValue, 0},
		{"processingLatency", json.RawMessage(`1e-400`), ErrInvalidValue, 0},
		{"processingLatency", json.RawMessage(`3e-324`), ErrInvalidValue, 0},
		{"processingLatency", json.RawMessage(`0.1000000000000000055511151231257827`), ErrInvalidValue, 0},
		{"processingLatency", json.RawMessage(`12345678901234567890`), ErrInvalidValue, 0},
		{"processingLatency", json.RawMessage(`-1`), ErrInvalidValue, 0},
		{"processingLatency", json.RawMessage(`"5"`), ErrInvalidValue, 0},
		{"queueDepth", json.RawMessage(`7`), "", 0},
		{"queueDepth", json.RawMessage(`1e400`), ErrInvalidValue, 0},
		{"queueDepth", json.RawMessage(`9007199254740993`), ErrInvalidValue, 0},
		{"retentionPolicy", json.RawMessage(`1e400`), "", 0},
		{"retentionPolicy", json.RawMessage(`-0.000`), "", 0},
		{"retentionPolicy", json.RawMessage(`true`), ErrInvalidType, 0},
	}
	for _, tt := range tests {
		t.Run(tt.field+"="+string(tt.value), func(t *testing.T) {
			ev, errs := parseOne(t, DefaultRules(), testNow, map[string]any{tt.field: tt.value})
			if tt.code != "" {
				if len(errs) != 1 || errs[0].Field != tt.field || errs[0].Code != tt.code {
					t.Fatalf("errors = %+v, want %s %s", errs, tt.field, tt.code)
				}
				return
			}
			if errs != nil {
				t.Fatalf("refused: %+v", errs)
			}
			switch tt.field {
			case "processingLatency":
				if ev.ProcessingLatency == nil || math.Float64bits(*ev.ProcessingLatency) != math.Float64bits(tt.want) {
					t.Fatalf("ProcessingLatency = %v, want %v", ev.ProcessingLatency, tt.want)
				}
			case "retentionPolicy":
				if ev.RetentionPolicy != string(tt.value) {
					t.Fatalf("RetentionPolicy = %q, want the JSON text %s", ev.RetentionPolicy, tt.value)
				}
			}
		})
	}
}

// Strings a text column takes are accepted as they are, noncharacters included.
func TestValidationAcceptsWhatTextColumnsStore(t *testing.T) {
	data := []byte(strings.Replace(validSample, `"level2":"x"`, `"\uffff":"\ufffe","raw":"`+"\uFFFE\uFFFF\U0010FFFF"+`"`, 1))
	data = []byte(strings.Replace(string(data), `"read"`, `"\uFFFF"`, 1))
	ev, _, err := ParseEvent(data, DefaultRules(), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if ev.OutcomeDescription != "\uFFFF" || !strings.Contains(string(ev.Details), `"\uffff":"\ufffe"`) {
		t.Fatalf("outcome %q, details %s", ev.OutcomeDescription, ev.Details)
	}
	ev, errs := parseOne(t, DefaultRules(), testNow, map[string]any{"principalId": strings.Repeat("p", maxIndexedBytes)})
	if errs != nil || len(ev.PrincipalID) != maxIndexedBytes {
		t.Fatalf("principalId of %d bytes: %+v", maxIndexedBytes, errs)
	}
}

var rfc3339Grammar = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$`)

// FuzzParseRFC3339 holds parseRFC3339 to the RFC's grammar and to time.Parse:
// what it accepts has the grammar's shape and, but for a leap second, the
// instant time.Parse finds; what time.Parse accepts in that shape, with an
// offset below 24:00, it accepts too.
func FuzzParseRFC3339(f *testing.F) {
	for _, s := range []string{"2023-10-26T10:30:00.000Z", "2023-10-26t10:30:00+05:30", "2016-12-31T23:59:60Z",
		"2024-02-29T00:00:00-23:59", "2023-10-26T1:30:00Z", "2023-10-26T10:30:00,5Z", "0000-01-01T00:00:00.123456789123z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := parseRFC3339(s)
		shaped := rfc3339Grammar.MatchString(s)
		if ok && !shaped {
			t.Fatalf("parseRFC3339(%q) accepted what is not RFC 3339", s)
		}
		if !shaped {
			return
		}
		upper := s[:10] + "T" + s[11:]
		if upper[len(upper)-1] == 'z' {
			upper = upper[:len(upper)-1] + "Z"
		}
		std, err := time.Parse(time.RFC3339Nano, upper)
		offsetOK := upper[len(upper)-1] == 'Z' || (upper[len(upper)-5:len(upper)-3] < "24" && upper[len(upper)-2:] < "60")
		if err == nil && offsetOK && !ok {
			t.Fatalf("parseRFC3339(%q) refused what time.Parse reads as %v", s, std)
		}
		if ok && p.second < 60 {
			if err != nil {
				t.Fatalf("parseRFC3339(%q) accepted what time.Parse refuses: %v", s, err)
			}
			if got := p.instant(); !got.Equal(std) {
				t.Fatalf("parseRFC3339(%q) = %v, time.Parse %v", s, got, std)
			}
		}
	})
}

// FuzzSameDecimal holds sameDecimal to exact rational arithmetic.
func FuzzSameDecimal(f *testing.F) {
	for _, s := range []string{"0", "-0", "1.50", "1e3", "0.1", "0.10000000000000001", "1e400", "1e-400", "5e-324",
		"3e-324", "123456789012345678", "1.7976931348623157e308", "0.000", "100e-2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if jsontext.Check([]byte(s)) != nil || s == "" || (s[0] != '-' && (s[0] < '0' || s[0] > '9')) {
			return // not a JSON number
		}
		if e := strings.IndexAny(s, "eE"); e >= 0 && len(strings.TrimLeft(s[e+1:], "+-0")) > 4 {
			return // big.Rat would build a number with that many digits
		}
		x, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return
		}
		exact, _ := new(big.Rat).SetString(s)
		shortest, _ := new(big.Rat).SetString(strconv.FormatFloat(x, 'e', -1, 64))
		if want := exact.Cmp(shortest) == 0; sameDecimal(s, x) != want {
			t.Fatalf("sameDecimal(%q, %v) = %v, exact arithmetic says %v", s, x, !want, want)
		}
	})
}
