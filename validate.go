package audit

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/smartlogs/audit-worker/internal/jsontext"
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
	members, err := jsontext.SplitObject(data, sc.members)
	if err != nil {
		return Event{}, nil, &ValidationError{Errors: []FieldError{splitError(err)}}
	}
	sc.members = members // keeps what it grew to
	v := validator{rules: rules, now: now}
	for i := range members {
		if f, ok := fieldOf[members[i].Key]; ok {
			v.fields[f] = &members[i]
		}
	}
	ev := v.run(members)
	if len(v.errs) > 0 {
		return Event{}, v.warnings, &ValidationError{Errors: v.errs}
	}
	return ev, v.warnings, nil
}

// splitError describes why an event could not be split into its fields. A
// repeated key, at any depth, is named by its path: readers that keep the
// other value would see one never validated.
func splitError(err error) FieldError {
	if dup, ok := errors.AsType[*jsontext.DuplicateKeyError](err); ok {
		return FieldError{Field: dup.Path, Code: ErrInvalidFormat,
			Message: fmt.Sprintf("duplicate key %q: readers disagree on which of its values counts", dup.Path)}
	}
	return FieldError{Field: "", Code: ErrInvalidFormat, Message: err.Error()}
}

// parseScratch is ParseEvent's working memory, reused from event to event: the
// member list comes to ~2 KB an event, which the garbage collector would
// otherwise have to reclaim for every one. Nothing ParseEvent returns points
// into it (string values are substrings of the payload's copy, details are
// built anew).
type parseScratch struct {
	members []jsontext.Member
}

var scratchPool = sync.Pool{New: func() any {
	return &parseScratch{members: make([]jsontext.Member, 0, 32)}
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
	fields   [fieldCount]*jsontext.Member // nil: absent
	errs     []FieldError
	warnings []string
}

func (v *validator) fail(field, code, format string, args ...any) {
	v.errs = append(v.errs, FieldError{Field: field, Code: code, Message: fmt.Sprintf(format, args...)})
}

// present returns the raw value of a field that is neither absent nor null.
func (v *validator) present(f field) ([]byte, bool) {
	m := v.fields[f]
	if m == nil || string(m.Raw) == "null" {
		return nil, false
	}
	return m.Raw, true
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
	s, err := v.fields[f].StringValue()
	if err != nil {
		v.fail(f.String(), ErrInvalidFormat, "%v", err)
		return "", false
	}
	return s, true
}

// checkLength applies the length limit, in characters, and reports whether s is within it.
func (v *validator) checkLength(name, s string) bool {
	if n := utf8.RuneCountInString(s); n > v.rules.MaxStringLength {
		v.fail(name, ErrExceedsMaxLength, "is %d characters, the limit is %d", n, v.rules.MaxStringLength)
		return false
	}
	return true
}

func (v *validator) run(members []jsontext.Member) Event {
	var ev Event
	for _, f := range [...]field{fTimestamp, fAction, fStatus} {
		if _, ok := v.present(f); !ok {
			v.fail(f.String(), ErrRequiredFieldMissing, "is required")
		}
	}
	// Strings no store can hold are refused wherever they are, nested fields included.
	for _, m := range members {
		if m.Problem != "" {
			v.fail(m.Key, ErrInvalidValue, "contains a %s, which cannot be stored", m.Problem)
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
		f := lengthLimited[i]
		if s, ok := v.str(f); ok {
			if v.checkLength(f.String(), s) && indexed(f) && len(s) > maxIndexedBytes {
				v.fail(f.String(), ErrExceedsMaxLength, "is %d bytes, the limit is %d bytes: the field is indexed, and an index entry holds at most 2704 bytes",
					len(s), maxIndexedBytes)
			}
			*dst = s
		}
	}
	ev.RetentionPolicy = v.retentionPolicy()
	ev.ProcessingLatency = v.nonNegative(fProcessingLatency)
	v.nonNegative(fQueueDepth)
	ev.SessionContext = v.sessionContext()

	for _, m := range members {
		if m.Depth > v.rules.MaxCustomFieldDepth {
			v.fail(m.Key, ErrExceedsMaxDepth, "nests %d levels deep, the limit is %d", m.Depth, v.rules.MaxCustomFieldDepth)
		}
	}
	ev.Details = buildDetails(members)
	return ev
}

// maxIndexedBytes bounds the fields PostgreSQL indexes (see indexed), in
// bytes, whatever Rules.MaxStringLength allows: a b-tree entry holds at most
// 2704 bytes, and a longer one fails the insert of the whole batch.
// targetResourceType and targetResourceId share one entry, so each gets well
// under half of it.
const maxIndexedBytes = 1024

// indexed reports whether PostgreSQL indexes the field's column.
func indexed(f field) bool {
	switch f {
	case fPrincipalID, fOrganizationID, fTargetResourceType, fTargetResourceID, fCorrelationID:
		return true
	}
	return false
}

// Event times are accepted from 1970-01-01T00:00:00Z up to the end of year
// 9999, in UTC. Both stores hold more (PostgreSQL's timestamptz from 4713 BC
// to 294276 AD, SQLite's microseconds as int64 ±292,000 years), but
//   - past year 9999 in UTC, which an offset like -23:59 on 9999-12-31
//     reaches, a time has no RFC 3339 form: Go's time.Time.MarshalJSON fails on
//     it and JavaScript's toISOString changes its shape;
//   - 0001-01-01T00:00:00Z, Go's zero time.Time, means "no time" to the
//     stores, and no system kept audit events before the Unix epoch: an
//     earlier time is a zero or uninitialised date, better refused than filed
//     under a month nobody reads.
var (
	minEventTime = time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC)
	endEventTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) // exclusive
)

// maxFractionDigits is the longest fraction of a second accepted: Go keeps
// nanoseconds and would drop further digits silently.
const maxFractionDigits = 9

// timestamp parses an RFC 3339 timestamp with an explicit offset, applies the
// range and skew rules, and returns the instant in UTC to the microsecond,
// as the stores keep it (the text itself is kept whole in Event.Timestamp).
func (v *validator) timestamp(ts string) time.Time {
	if ts == "" {
		v.fail("timestamp", ErrEmptyValue, "must not be empty")
		return time.Time{}
	}
	p, ok := parseRFC3339(ts)
	switch {
	case !ok:
		v.fail("timestamp", ErrInvalidFormat, "must be an RFC 3339 timestamp with an offset, like 2023-10-26T10:30:00.000Z")
		return time.Time{}
	case p.second == 60:
		v.fail("timestamp", ErrInvalidValue, "is a leap second (second 60), which neither Go's time nor JavaScript's Date can represent")
		return time.Time{}
	case p.fractionDigits > maxFractionDigits:
		v.fail("timestamp", ErrInvalidValue, "has %d digits of fractional seconds, the limit is %d (nanoseconds)", p.fractionDigits, maxFractionDigits)
		return time.Time{}
	}
	t := p.instant()
	if t.Before(minEventTime) || !t.Before(endEventTime) {
		v.fail("timestamp", ErrInvalidValue, "is %s in UTC, outside the accepted range %s to %s",
			t.Format(time.RFC3339Nano), minEventTime.Format(time.RFC3339), endEventTime.Add(-time.Nanosecond).Format(time.RFC3339Nano))
		return time.Time{}
	}
	if v.rules.MaxFutureSkew > 0 && t.After(v.now.Add(v.rules.MaxFutureSkew)) {
		v.fail("timestamp", ErrInvalidValue, "is %s in the future, more than the allowed clock skew of %s",
			howFarAhead(v.now, t), v.rules.MaxFutureSkew)
	}
	return t.Truncate(time.Microsecond)
}

// rfc3339 holds the fields of an RFC 3339 date-time as written.
type rfc3339 struct {
	year, month, day, hour, minute, second int
	nanosecond, fractionDigits             int
	offset                                 int // seconds east of UTC
}

// parseRFC3339 reads exactly the date-time grammar of RFC 3339 (section
// 5.6), with 'T' and 'Z' in either case as it allows: time.Parse also takes
// one-digit hours, a comma before the fraction and offsets of 24:00 and more,
// none of which are RFC 3339. It checks every range the grammar sets (the
// day against its month, seconds up to 60, offsets up to 23:59); leap
// seconds and long fractions are the caller's to judge.
func parseRFC3339(s string) (p rfc3339, ok bool) {
	const minLen = len("2006-01-02T15:04:05Z")
	if len(s) < minLen || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':' {
		return p, false
	}
	var fields [6]int
	for i, at := range [6]int{0, 5, 8, 11, 14, 17} {
		width := 2
		if i == 0 {
			width = 4
		}
		if fields[i], ok = decimalDigits(s[at : at+width]); !ok {
			return p, false
		}
	}
	p.year, p.month, p.day, p.hour, p.minute, p.second = fields[0], fields[1], fields[2], fields[3], fields[4], fields[5]
	if p.month < 1 || p.month > 12 || p.day < 1 || p.day > daysIn(p.month, p.year) ||
		p.hour > 23 || p.minute > 59 || p.second > 60 {
		return p, false
	}
	rest := s[19:]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
			if n <= maxFractionDigits {
				p.nanosecond = p.nanosecond*10 + int(rest[n]-'0')
			}
			n++
		}
		p.fractionDigits = n - 1
		if p.fractionDigits == 0 {
			return p, false
		}
		for range maxFractionDigits - min(p.fractionDigits, maxFractionDigits) {
			p.nanosecond *= 10
		}
		rest = rest[n:]
	}
	return p, p.parseOffset(rest)
}

// parseOffset reads time-offset: "Z", "z" or ±HH:MM up to 23:59.
func (p *rfc3339) parseOffset(s string) bool {
	if s == "Z" || s == "z" {
		return true
	}
	if len(s) != len("+00:00") || (s[0] != '+' && s[0] != '-') || s[3] != ':' {
		return false
	}
	h, okH := decimalDigits(s[1:3])
	m, okM := decimalDigits(s[4:6])
	if !okH || !okM || h > 23 || m > 59 {
		return false
	}
	p.offset = (h*60 + m) * 60
	if s[0] == '-' {
		p.offset = -p.offset
	}
	return true
}

// instant is the UTC time p denotes; p.second must not be 60.
func (p *rfc3339) instant() time.Time {
	local := time.Date(p.year, time.Month(p.month), p.day, p.hour, p.minute, p.second, p.nanosecond, time.UTC)
	return local.Add(-time.Duration(p.offset) * time.Second)
}

// decimalDigits reads s, which must be all ASCII digits.
func decimalDigits(s string) (int, bool) {
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// daysIn returns the number of days of month (1-12) in year, by the
// proleptic Gregorian calendar RFC 3339 uses.
func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// howFarAhead says how far t is after now, readably at any distance (a
// time.Duration overflows past ~292 years): in whole years from a year on,
// in whole days from two days on, else to the second.
func howFarAhead(now, t time.Time) string {
	now, t = now.UTC(), t.UTC()
	if years := t.Year() - now.Year(); years > 0 {
		if now.AddDate(years, 0, 0).After(t) {
			years--
		}
		switch {
		case years == 1:
			return "1 year"
		case years > 1:
			return groupThousands(years) + " years"
		}
	}
	d := t.Sub(now) // under a year here
	if d >= 48*time.Hour {
		return groupThousands(int(d/(24*time.Hour))) + " days"
	}
	return d.Round(time.Second).String()
}

// groupThousands writes n >= 0 with a comma between groups of three digits.
func groupThousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// retentionPolicy accepts a string or, as the producer's config defaults send
// it, a number, which is kept as its JSON text (so any JSON number reads back
// as written).
func (v *validator) retentionPolicy() string {
	raw, ok := v.present(fRetentionPolicy)
	if !ok {
		return ""
	}
	switch c := raw[0]; {
	case c == '"':
		s, _ := v.str(fRetentionPolicy)
		v.checkLength("retentionPolicy", s)
		return s
	case c == '-' || (c >= '0' && c <= '9'): // a JSON number: Check has read it whole
		v.checkLength("retentionPolicy", string(raw))
		return string(raw)
	}
	v.fail("retentionPolicy", ErrInvalidType, "must be a string or a number")
	return ""
}

// nonNegative reads a number >= 0 that survives a round trip through a
// float64, the type the stores keep it in and the record hash renders
// (strconv.FormatFloat(x, 'g', -1, 64)): its text must denote the same
// decimal number as the shortest text of the float64 it reads as. So 1.50
// and 1e3 pass, while 1e400 (no float64), 1e-400 (reads as 0) and
// 0.1000000000000000055511 (reads as 0.1) are refused rather than stored as
// another number.
func (v *validator) nonNegative(f field) *float64 {
	raw, ok := v.present(f)
	if !ok {
		return nil
	}
	n, err := strconv.ParseFloat(string(raw), 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		v.fail(f.String(), ErrInvalidValue, "is beyond the range of a 64-bit float")
		return nil
	case err != nil || n < 0:
		v.fail(f.String(), ErrInvalidValue, "must be a number >= 0")
		return nil
	case !sameDecimal(string(raw), n):
		v.fail(f.String(), ErrInvalidValue, "cannot be stored exactly: as a 64-bit float it reads back as %s",
			strconv.FormatFloat(n, 'g', -1, 64))
		return nil
	}
	// -0 is zero: JSON.stringify writes it as 0, and SQLite reads a stored
	// -0.0 back as 0, which would change the record hash.
	if n == 0 {
		n = 0
	}
	return &n
}

// sameDecimal reports whether the JSON number text denotes the same decimal
// number as the shortest text of f, which it was parsed into.
func sameDecimal(text string, f float64) bool {
	var buf [32]byte
	shortest := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	a, okA := significand(text)
	b, okB := significand(string(shortest))
	return okA && okB && a == b
}

// decimal is a number's magnitude as its significant digits (no leading or
// trailing zeros) times a power of ten; zero has no digits. It holds up to
// 17 digits, as many as a float64's shortest text ever needs.
type decimal struct {
	digits [17]byte
	n      int
	exp    int
}

// significand reads a JSON number (or strconv's 'e' format) into a decimal;
// ok is false when it has more significant digits than a decimal holds.
func significand(s string) (d decimal, ok bool) {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	zeros := 0 // zeros after the last non-zero digit, pending
	fraction := false
	for ; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			fraction = true
			continue
		}
		if c < '0' || c > '9' {
			break
		}
		if fraction {
			d.exp--
		}
		if c == '0' {
			if d.n > 0 {
				zeros++
			}
			continue
		}
		if d.n+zeros >= len(d.digits) {
			return d, false
		}
		for ; zeros > 0; zeros-- {
			d.digits[d.n] = '0'
			d.n++
		}
		d.digits[d.n] = c
		d.n++
	}
	d.exp += zeros
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		negative := i < len(s) && s[i] == '-'
		if i < len(s) && (s[i] == '-' || s[i] == '+') {
			i++
		}
		e := 0
		for ; i < len(s); i++ { // saturates: such an exponent makes no float64 anyway
			e = min(e*10+int(s[i]-'0'), 1<<30)
		}
		if negative {
			e = -e
		}
		d.exp += e
	}
	if d.n == 0 {
		d.exp = 0
	}
	return d, true
}

func (v *validator) sessionContext() *SessionContext {
	m := v.fields[fSessionContext]
	if _, ok := v.present(fSessionContext); !ok {
		return nil
	}
	if m.Raw[0] != '{' {
		v.fail("sessionContext", ErrInvalidType, "must be an object")
		return nil
	}
	var scratch [8]jsontext.Member
	members := m.Members(scratch[:0])
	get := func(name string, required bool) string {
		field := "sessionContext." + name
		var r *jsontext.Member
		for i := range members {
			if members[i].Key == name {
				r = &members[i]
				break
			}
		}
		if r == nil || string(r.Raw) == "null" {
			if required {
				v.fail(field, ErrInvalidValue, "must be a non-empty string")
			}
			return ""
		}
		if r.Raw[0] != '"' {
			v.fail(field, ErrInvalidValue, "must be a non-empty string")
			return ""
		}
		s, _ := r.StringValue()
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
