package report

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// Op is what a Cond tests.
type Op int

const (
	OpTrue         Op = iota // every event (the zero Cond)
	OpAnd                    // every Arg holds
	OpOr                     // some Arg holds
	OpNot                    // Args[0] does not hold
	OpVerbIn                 // the action's last dot-separated segment, ASCII case-insensitive, is one of Values
	OpFamilyIn               // the action's first segment, likewise
	OpSegmentIn              // some segment of the action, likewise
	OpClassIn                // dataClassification is exactly one of Values
	OpTypeIn                 // targetResourceType is exactly one of Values
	OpStatusIn               // status is exactly one of Values
	OpHasPrincipal           // principalId is present and not empty
	OpHasResource            // targetResourceId is present and not empty
	OpActionPrefix           // the action starts with Values[0], byte for byte
	OpLocalHourIn            // the hour of the event in its organisation's time zone is one of Hours
)

// Cond is a condition on one event. The definitions of every report are
// Conds, built once in this package; each store turns a Cond into SQL with
// bound parameters (its values are never pasted into a statement), and Match
// evaluates the same Cond in Go, which the conformance suite holds the
// stores to. Values of the segment tests are lower case.
type Cond struct {
	Op     Op
	Args   []Cond
	Values []string
	Hours  []int
}

// And holds when every condition holds.
func And(cs ...Cond) Cond { return Cond{Op: OpAnd, Args: cs} }

// Or holds when some condition holds.
func Or(cs ...Cond) Cond { return Cond{Op: OpOr, Args: cs} }

// Not holds when c does not.
func Not(c Cond) Cond { return Cond{Op: OpNot, Args: []Cond{c}} }

// VerbIn tests the action's last segment.
func VerbIn(verbs ...string) Cond { return Cond{Op: OpVerbIn, Values: lowerAll(verbs)} }

// FamilyIn tests the action's first segment.
func FamilyIn(families ...string) Cond { return Cond{Op: OpFamilyIn, Values: lowerAll(families)} }

// SegmentIn tests every segment of the action.
func SegmentIn(segments ...string) Cond { return Cond{Op: OpSegmentIn, Values: lowerAll(segments)} }

// ClassIn tests the data classification.
func ClassIn(classes ...audit.Classification) Cond {
	vs := make([]string, len(classes))
	for i, c := range classes {
		vs[i] = string(c)
	}
	return Cond{Op: OpClassIn, Values: vs}
}

// TypeIn tests the target resource type (FHIR types are case-sensitive).
func TypeIn(types ...string) Cond { return Cond{Op: OpTypeIn, Values: types} }

// StatusIn tests the status.
func StatusIn(statuses ...audit.Status) Cond {
	vs := make([]string, len(statuses))
	for i, s := range statuses {
		vs[i] = string(s)
	}
	return Cond{Op: OpStatusIn, Values: vs}
}

// HasPrincipal holds for events that name a principal.
func HasPrincipal() Cond { return Cond{Op: OpHasPrincipal} }

// HasResource holds for events that name a target resource id.
func HasResource() Cond { return Cond{Op: OpHasResource} }

// ActionPrefix holds for actions that start with prefix.
func ActionPrefix(prefix string) Cond { return Cond{Op: OpActionPrefix, Values: []string{prefix}} }

// LocalHourIn holds for events whose hour of the day, in their
// organisation's time zone, is one of hours.
func LocalHourIn(hours ...int) Cond { return Cond{Op: OpLocalHourIn, Hours: hours} }

// IsTrue reports whether c is the condition that every event meets.
func (c Cond) IsTrue() bool { return c.Op == OpTrue }

func lowerAll(vs []string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = asciiLower(v)
	}
	return out
}

// asciiLower folds ASCII letters only, as both stores do (PostgreSQL's lower
// under the "C" collation, SQLite's built-in lower), so that a non-ASCII
// action is compared the same way everywhere.
func asciiLower(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// Verb is an action's last dot-separated segment, lower-cased (ASCII).
func Verb(action string) string {
	return asciiLower(action[strings.LastIndexByte(action, '.')+1:])
}

// Family is an action's first dot-separated segment, lower-cased (ASCII).
func Family(action string) string {
	if i := strings.IndexByte(action, '.'); i >= 0 {
		return asciiLower(action[:i])
	}
	return asciiLower(action)
}

// Locator gives the time zone of an organisation's events.
type Locator func(org string) *time.Location

// Match evaluates c on one event, as the stores' SQL does.
func (c Cond) Match(e *audit.StoredEvent, loc Locator) bool {
	switch c.Op {
	case OpTrue:
		return true
	case OpAnd:
		for _, a := range c.Args {
			if !a.Match(e, loc) {
				return false
			}
		}
		return true
	case OpOr:
		for _, a := range c.Args {
			if a.Match(e, loc) {
				return true
			}
		}
		return false
	case OpNot:
		return !c.Args[0].Match(e, loc)
	case OpVerbIn:
		return slices.Contains(c.Values, Verb(e.Action))
	case OpFamilyIn:
		return slices.Contains(c.Values, Family(e.Action))
	case OpSegmentIn:
		for seg := range strings.SplitSeq(asciiLower(e.Action), ".") {
			if slices.Contains(c.Values, seg) {
				return true
			}
		}
		return false
	case OpClassIn:
		return slices.Contains(c.Values, string(e.DataClassification))
	case OpTypeIn:
		return slices.Contains(c.Values, e.TargetResourceType)
	case OpStatusIn:
		return slices.Contains(c.Values, string(e.Status))
	case OpHasPrincipal:
		return e.PrincipalID != ""
	case OpHasResource:
		return e.TargetResourceID != ""
	case OpActionPrefix:
		return strings.HasPrefix(e.Action, c.Values[0])
	case OpLocalHourIn:
		return slices.Contains(c.Hours, e.Time.In(loc(e.OrganizationID)).Hour())
	}
	return false
}

// String writes the condition as a formula an auditor can read and apply by
// hand; the reports print it next to each number.
func (c Cond) String() string {
	var b strings.Builder
	c.write(&b, false)
	return b.String()
}

func (c Cond) write(b *strings.Builder, nested bool) {
	list := func(vs []string) string { return "[" + strings.Join(vs, ", ") + "]" }
	switch c.Op {
	case OpTrue:
		b.WriteString("every event")
	case OpAnd, OpOr:
		sep := " AND "
		if c.Op == OpOr {
			sep = " OR "
		}
		if nested && len(c.Args) > 1 {
			b.WriteByte('(')
		}
		for i, a := range c.Args {
			if i > 0 {
				b.WriteString(sep)
			}
			a.write(b, true)
		}
		if nested && len(c.Args) > 1 {
			b.WriteByte(')')
		}
	case OpNot:
		b.WriteString("NOT ")
		c.Args[0].write(b, true)
	case OpVerbIn:
		b.WriteString("verb in " + list(c.Values))
	case OpFamilyIn:
		b.WriteString("family in " + list(c.Values))
	case OpSegmentIn:
		b.WriteString("a segment of the action in " + list(c.Values))
	case OpClassIn:
		b.WriteString("dataClassification in " + list(c.Values))
	case OpTypeIn:
		b.WriteString("targetResourceType in " + list(c.Values))
	case OpStatusIn:
		b.WriteString("status in " + list(c.Values))
	case OpHasPrincipal:
		b.WriteString("principalId present")
	case OpHasResource:
		b.WriteString("targetResourceId present")
	case OpActionPrefix:
		b.WriteString("action starts with " + strconv.Quote(c.Values[0]))
	case OpLocalHourIn:
		hs := make([]string, len(c.Hours))
		for i, h := range c.Hours {
			hs[i] = strconv.Itoa(h)
		}
		b.WriteString("local hour in " + list(hs))
	}
}

// Dimension is what events are grouped or counted distinctly by. Each store
// renders a dimension as one SQL expression that is NULL when the event has
// no such value; groups show NULL as "".
type Dimension int

const (
	DimNone           Dimension = iota
	DimStatus                   // status
	DimAction                   // action
	DimClassification           // dataClassification
	DimPrincipal                // principalId
	DimResource                 // targetResourceType and targetResourceId, as ResourceKey encodes them
	DimPatient                  // targetResourceId of events whose targetResourceType is Patient
	DimLegalBasis               // details.legalBasis, else details.gdprContext.legalBasis, else "unspecified"
	DimLocalHour                // hour of the day (0–23) in the organisation's time zone
	DimLocalDay                 // days since 1970-01-01 of the local date, in the organisation's time zone
	DimLocalHourStamp           // hours since 1970-01-01T00 of the local date and hour
)

// PatientType is the resource type whose ids count as patients.
const PatientType = "Patient"

// Unspecified is the legal basis of an event that states none.
const Unspecified = "unspecified"

// ResourceKey is the value of DimResource: the type's length in characters,
// ":", the type, then the id, so that no two (type, id) pairs share a key.
func ResourceKey(typ, id string) string {
	return strconv.Itoa(len([]rune(typ))) + ":" + typ + id
}

// SplitResourceKey returns the type and id of a ResourceKey.
func SplitResourceKey(key string) (typ, id string, ok bool) {
	n, rest, found := strings.Cut(key, ":")
	chars, err := strconv.Atoi(n)
	if !found || err != nil || chars < 0 {
		return "", "", false
	}
	runes := []rune(rest)
	if chars > len(runes) {
		return "", "", false
	}
	return string(runes[:chars]), string(runes[chars:]), true
}

// Value returns the dimension's value for one event ("" for none), as the
// stores compute it.
func (d Dimension) Value(e *audit.StoredEvent, loc Locator) (string, bool) {
	switch d {
	case DimStatus:
		return string(e.Status), true
	case DimAction:
		return e.Action, true
	case DimClassification:
		return string(e.DataClassification), e.DataClassification != ""
	case DimPrincipal:
		return e.PrincipalID, e.PrincipalID != ""
	case DimResource:
		if e.TargetResourceID == "" {
			return "", false
		}
		return ResourceKey(e.TargetResourceType, e.TargetResourceID), true
	case DimPatient:
		if e.TargetResourceType != PatientType || e.TargetResourceID == "" {
			return "", false
		}
		return e.TargetResourceID, true
	case DimLegalBasis:
		return LegalBasis(e.Details), true
	case DimLocalHour, DimLocalDay, DimLocalHourStamp:
		t := e.Time.In(loc(e.OrganizationID))
		_, offset := t.Zone()
		local := e.Time.Unix() + int64(offset)
		switch d {
		case DimLocalHour:
			return strconv.Itoa(t.Hour()), true
		case DimLocalDay:
			return strconv.FormatInt(floorDiv(local, 86400), 10), true
		default:
			return strconv.FormatInt(floorDiv(local, 3600), 10), true
		}
	}
	return "", false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// LegalBasis is the legal basis an event's details state: the string
// legalBasis, else the string gdprContext.legalBasis, else Unspecified (an
// empty string states nothing).
func LegalBasis(details []byte) string {
	// Maps, not structs: encoding/json matches struct fields without regard
	// to case, and the stores' JSON paths do not.
	var top map[string]json.RawMessage
	if len(details) == 0 || json.Unmarshal(details, &top) != nil {
		return Unspecified
	}
	if s, ok := jsonString(top["legalBasis"]); ok && s != "" {
		return s
	}
	var ctx map[string]json.RawMessage
	if raw := top["gdprContext"]; len(raw) > 0 && raw[0] == '{' && json.Unmarshal(raw, &ctx) == nil {
		if s, ok := jsonString(ctx["legalBasis"]); ok && s != "" {
			return s
		}
	}
	return Unspecified
}

func jsonString(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", false
	}
	var s string
	return s, json.Unmarshal(raw, &s) == nil
}
