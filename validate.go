package audit

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Validation error codes, as the original validator named them.
const (
	ErrRequiredFieldMissing = "REQUIRED_FIELD_MISSING"
	ErrInvalidType          = "INVALID_TYPE"
	ErrInvalidFormat        = "INVALID_FORMAT"
	ErrEmptyValue           = "EMPTY_VALUE"
	ErrExceedsMaxLength     = "EXCEEDS_MAX_LENGTH"
	ErrInvalidValue         = "INVALID_VALUE"
	ErrExceedsMaxDepth      = "EXCEEDS_MAX_DEPTH"
)

// FieldError says which field broke which rule.
type FieldError struct {
	Field   string `json:"field"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

// ValidationError is returned when an event breaks one or more rules.
// Its Code is CodeInvalid: an invalid event is never retried.
type ValidationError struct {
	Errors []FieldError
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		parts[i] = fmt.Sprintf("%s: %s (%s)", fe.Field, fe.Message, fe.Code)
	}
	return "invalid event: " + strings.Join(parts, "; ")
}

// Unwrap lets errors.As find a *Error with CodeInvalid.
func (e *ValidationError) Unwrap() error { return &Error{Code: CodeInvalid, Message: "invalid event"} }

// Rules are the limits validation applies. The zero value is not useful; start from DefaultRules.
type Rules struct {
	MaxStringLength        int           // characters (code points), not bytes or UTF-16 units
	MaxCustomFieldDepth    int           // how deep a field's value may nest objects/arrays
	MaxFutureSkew          time.Duration // how far in the future a timestamp may be
	MaxEventBytes          int           // size of the whole event JSON
	AllowedClassifications []Classification
	KnownEventVersions     []string // others are accepted with a warning
}

// DefaultRules returns the original validator's defaults plus the limits it lacked.
func DefaultRules() Rules {
	return Rules{
		MaxStringLength:        10000,
		MaxCustomFieldDepth:    3,
		MaxFutureSkew:          5 * time.Minute,
		MaxEventBytes:          256 << 10,
		AllowedClassifications: []Classification{ClassPublic, ClassInternal, ClassConfidential, ClassPHI},
		KnownEventVersions:     []string{"1.0", "1.1", "2.0"},
	}
}

var (
	// signatureAlgorithms are the values the producer's "algorithm" field may take.
	signatureAlgorithms = map[string]bool{
		"HMAC-SHA256": true, "RSASSA_PSS_SHA_256": true, "RSASSA_PSS_SHA_384": true,
		"RSASSA_PSS_SHA_512": true, "RSASSA_PKCS1_V1_5_SHA_256": true,
		"RSASSA_PKCS1_V1_5_SHA_384": true, "RSASSA_PKCS1_V1_5_SHA_512": true,
	}
)

// field is a top-level event field that validation reads. Members are placed
// by field once per event (fieldOf, one map lookup each); validation then
// finds them by index. Looking each one up by name in a per-event map (filled,
// read ~30 times and cleared again) costs about 8 % of
// BenchmarkParseVerifyRecord.
type field int

const (
	fTimestamp field = iota
	fAction
	fStatus
	fDataClassification
	fEventVersion
	fHashAlgorithm
	fHash
	fSignature
	fAlgorithm
	fPrincipalID
	fOrganizationID
	fTargetResourceType
	fTargetResourceID
	fOutcomeDescription
	fCorrelationID
	fTTL
	fRetentionPolicy
	fProcessingLatency
	fQueueDepth
	fSessionContext
	fieldCount
)

// fieldNames are the fields' names in the event, by field.
var fieldNames = [fieldCount]string{"timestamp", "action", "status", "dataClassification",
	"eventVersion", "hashAlgorithm", "hash", "signature", "algorithm", "principalId",
	"organizationId", "targetResourceType", "targetResourceId", "outcomeDescription",
	"correlationId", "ttl", "retentionPolicy", "processingLatency", "queueDepth", "sessionContext"}

var fieldOf = func() map[string]field {
	m := make(map[string]field, fieldCount)
	for f, name := range fieldNames {
		m[name] = field(f)
	}
	return m
}()

func (f field) String() string { return fieldNames[f] }

// lengthLimited are the optional string fields whose length is limited.
var lengthLimited = [...]field{fPrincipalID, fOrganizationID, fTargetResourceType,
	fTargetResourceID, fOutcomeDescription, fCorrelationID, fTTL}

// ParseEvent decodes and validates one event. now is the reference for the
// clock-skew rule. On failure the error is a *ValidationError listing every rule
// broken; warnings (such as an unknown eventVersion) never make an event invalid.
func ParseEvent(data []byte, rules Rules, now time.Time) (Event, []string, error) {
	if rules.MaxEventBytes > 0 && len(data) > rules.MaxEventBytes {
		return Event{}, nil, &ValidationError{Errors: []FieldError{{Field: "", Code: ErrExceedsMaxLength,
			Message: fmt.Sprintf("event is %d bytes, the limit is %d", len(data), rules.MaxEventBytes)}}}
	}
	sc := scratchPool.Get().(*parseScratch)
	defer sc.release()
	members, err := decodeObject(data, sc.members)
	if err != nil {
		return Event{}, nil, &ValidationError{Errors: []FieldError{{Field: "", Code: ErrInvalidFormat, Message: err.Error()}}}
	}
	sc.members = members // keeps what it grew to
	v := validator{rules: rules, now: now}
	for i := range members {
		if f, ok := fieldOf[members[i].key]; ok {
			v.fields[f] = &members[i]
		}
	}
	ev := v.run(members)
	if len(v.errs) > 0 {
		return Event{}, v.warnings, &ValidationError{Errors: v.errs}
	}
	return ev, v.warnings, nil
}

// parseScratch is ParseEvent's working memory, reused from event to event: the
// member list comes to ~2 KB an event, which the garbage collector would
// otherwise have to reclaim for every one. Nothing ParseEvent returns points
// into it (string values are substrings of the payload's copy, details are
// built anew).
type parseScratch struct {
	members []member
}

var scratchPool = sync.Pool{New: func() any {
	return &parseScratch{members: make([]member, 0, 32)}
}}

// release empties the scratch (so that it holds no payload alive) and returns
// it to the pool.
func (sc *parseScratch) release() {
	clear(sc.members[:cap(sc.members)]) // a failed decode may have filled some
	sc.members = sc.members[:0]
	scratchPool.Put(sc)
}

type validator struct {
	rules    Rules
	now      time.Time
	fields   [fieldCount]*member // nil: absent
	errs     []FieldError
	warnings []string
}

func (v *validator) fail(field, code, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
}

// present returns the raw value of a field that is neither absent nor null.
func (v *validator) present(f field) ([]byte, bool) {
	m := v.fields[f]
	if m == nil || string(m.raw) == "null" {
		return nil, false
	}
	return m.raw, true
}

// str decodes an optional string field; "" when absent or null.
func (v *validator) str(f field) (string, bool) {
	raw, ok := v.present(f)
	if !ok {
		return "", false
	}
	if raw[0] != '"' {
		v.fail(f.String(), ErrInvalidType, "must be a string")
		return "", false
	}
	s, err := v.fields[f].stringValue()
	if err != nil {
		v.fail(f.String(), ErrInvalidFormat, "%v", err)
		return "", false
	}
	return s, true
}

func (v *validator) checkLength(name, s string) {
	if n := utf8.RuneCountInString(s); n > v.rules.MaxStringLength {
		v.fail(name, ErrExceedsMaxLength, "is %d characters, the limit is %d", n, v.rules.MaxStringLength)
	}
}

func (v *validator) run(members []member) Event {
	var ev Event
	for _, f := range [...]field{fTimestamp, fAction, fStatus} {
		if _, ok := v.present(f); !ok {
			v.fail(f.String(), ErrRequiredFieldMissing, "is required")
		}
	}
	// Strings no store can hold are refused wherever they are, nested fields included.
	for _, m := range members {
		if m.problem != "" {
			v.fail(m.key, ErrInvalidValue, "contains a %s, which cannot be stored", m.problem)
		}
	}

	if ts, ok := v.str(fTimestamp); ok {
		ev.Timestamp = ts
		ev.Time = v.timestamp(ts)
	}
	if action, ok := v.str(fAction); ok {
		if action == "" {
			v.fail("action", ErrEmptyValue, "must not be empty")
		}
		v.checkLength("action", action)
		ev.Action = action
	}
	if status, ok := v.str(fStatus); ok {
		switch Status(status) {
		case StatusAttempt, StatusSuccess, StatusFailure:
			ev.Status = Status(status)
		default:
			v.fail("status", ErrInvalidValue, "must be one of attempt, success, failure")
		}
	}
	if class, ok := v.str(fDataClassification); ok {
		ev.DataClassification = Classification(class)
		if !containsClass(v.rules.AllowedClassifications, ev.DataClassification) {
			v.fail("dataClassification", ErrInvalidValue, "must be one of %v", v.rules.AllowedClassifications)
		}
	}
	if version, ok := v.str(fEventVersion); ok {
		ev.EventVersion = version
		v.checkLength("eventVersion", version)
		if !containsString(v.rules.KnownEventVersions, version) {
			v.warnings = append(v.warnings, fmt.Sprintf("eventVersion %q is not one of the known versions %v", version, v.rules.KnownEventVersions))
		}
	}
	if alg, ok := v.str(fHashAlgorithm); ok {
		ev.HashAlgorithm = alg
		if alg != "SHA-256" {
			v.fail("hashAlgorithm", ErrInvalidValue, "must be SHA-256")
		}
	}
	if hash, ok := v.str(fHash); ok {
		ev.Hash = hash
		if !isLowerHex64(hash) {
			v.fail("hash", ErrInvalidFormat, "must be 64 lowercase hexadecimal characters")
		}
	}
	if sig, ok := v.str(fSignature); ok {
		ev.Signature = sig
		v.checkLength("signature", sig)
	}
	if alg, ok := v.str(fAlgorithm); ok {
		ev.SignatureAlgorithm = alg
		if !signatureAlgorithms[alg] {
			v.fail("algorithm", ErrInvalidValue, "is not a known signature algorithm")
		}
	}
	for i, dst := range [...]*string{&ev.PrincipalID, &ev.OrganizationID, &ev.TargetResourceType,
		&ev.TargetResourceID, &ev.OutcomeDescription, &ev.CorrelationID, &ev.TTL} {
		if s, ok := v.str(lengthLimited[i]); ok {
			v.checkLength(lengthLimited[i].String(), s)
			*dst = s
		}
	}
	ev.RetentionPolicy = v.retentionPolicy()
	ev.ProcessingLatency = v.nonNegative(fProcessingLatency)
	v.nonNegative(fQueueDepth)
	ev.SessionContext = v.sessionContext()

	for _, m := range members {
		if m.depth > v.rules.MaxCustomFieldDepth {
			v.fail(m.key, ErrExceedsMaxDepth, "nests %d levels deep, the limit is %d", m.depth, v.rules.MaxCustomFieldDepth)
		}
	}
	ev.Details = buildDetails(members)
	return ev
}

// timestamp parses an RFC 3339 timestamp with an explicit offset and applies the skew rule.
func (v *validator) timestamp(ts string) time.Time {
	if ts == "" {
		v.fail("timestamp", ErrEmptyValue, "must not be empty")
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || !strings.ContainsAny(ts[10:11], "T") {
		v.fail("timestamp", ErrInvalidFormat, "must be an RFC 3339 timestamp with an offset, like 2023-10-26T10:30:00.000Z")
		return time.Time{}
	}
	if v.rules.MaxFutureSkew > 0 && t.After(v.now.Add(v.rules.MaxFutureSkew)) {
		v.fail("timestamp", ErrInvalidValue, "is %s in the future, more than the allowed clock skew of %s",
			t.Sub(v.now).Round(time.Second), v.rules.MaxFutureSkew)
	}
	return t
}

// retentionPolicy accepts a string or, as the producer's config defaults send it, a number.
func (v *validator) retentionPolicy() string {
	raw, ok := v.present(fRetentionPolicy)
	if !ok {
		return ""
	}
	if raw[0] == '"' {
		s, _ := v.str(fRetentionPolicy)
		v.checkLength("retentionPolicy", s)
		return s
	}
	if _, err := strconv.ParseFloat(string(raw), 64); err != nil {
		v.fail("retentionPolicy", ErrInvalidType, "must be a string or a number")
		return ""
	}
	return string(raw)
}

func (v *validator) nonNegative(f field) *float64 {
	raw, ok := v.present(f)
	if !ok {
		return nil
	}
	n, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || n < 0 {
		v.fail(f.String(), ErrInvalidValue, "must be a number >= 0")
		return nil
	}
	return &n
}

func (v *validator) sessionContext() *SessionContext {
	raw, ok := v.present(fSessionContext)
	if !ok {
		return nil
	}
	if raw[0] != '{' {
		v.fail("sessionContext", ErrInvalidType, "must be an object")
		return nil
	}
	sc := objectMembers(raw)
	get := func(name string, required bool) string {
		field := "sessionContext." + name
		r, ok := sc[name]
		if !ok || string(r) == "null" {
			if required {
				v.fail(field, ErrInvalidValue, "must be a non-empty string")
			}
			return ""
		}
		if r[0] != '"' {
			v.fail(field, ErrInvalidValue, "must be a non-empty string")
			return ""
		}
		s, _ := unquoteJSON(r)
		if required && s == "" {
			v.fail(field, ErrInvalidValue, "must be a non-empty string")
		}
		v.checkLength(field, s)
		return s
	}
	out := &SessionContext{
		SessionID:   get("sessionId", true),
		IPAddress:   get("ipAddress", true),
		UserAgent:   get("userAgent", true),
		Geolocation: get("geolocation", false),
	}
	if out.IPAddress != "" {
		if addr, err := netip.ParseAddr(out.IPAddress); err != nil || addr.Zone() != "" {
			v.fail("sessionContext.ipAddress", ErrInvalidFormat, "must be an IPv4 or IPv6 address")
		}
	}
	return out
}

func isLowerHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func containsClass(list []Classification, c Classification) bool {
	for _, x := range list {
		if x == c {
			return true
		}
	}
	return false
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
