package export

import (
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
	"unsafe"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/jsontext"
)

// AppendEvent renders a stored event as the API shows it: the producer's
// fields under their original names and with their original text (the
// timestamp as sent, details byte for byte), then what the worker added:
// id (the sequence number), receivedAt, recordHash and integrity.
// Absent optional fields are left out, as the producer left them out.
func AppendEvent(dst []byte, e *audit.StoredEvent) []byte {
	dst = append(dst, `{"id":`...)
	dst = strconv.AppendInt(dst, e.Seq, 10)
	dst = appendField(dst, "timestamp", e.Timestamp)
	dst = appendField(dst, "ttl", e.TTL)
	dst = appendField(dst, "principalId", e.PrincipalID)
	dst = appendField(dst, "organizationId", e.OrganizationID)
	dst = appendField(dst, "action", e.Action)
	dst = appendField(dst, "targetResourceType", e.TargetResourceType)
	dst = appendField(dst, "targetResourceId", e.TargetResourceID)
	dst = appendField(dst, "status", string(e.Status))
	dst = appendField(dst, "outcomeDescription", e.OutcomeDescription)
	dst = appendField(dst, "hash", e.Hash)
	dst = appendField(dst, "hashAlgorithm", e.HashAlgorithm)
	dst = appendField(dst, "signature", e.Signature)
	dst = appendField(dst, "algorithm", e.SignatureAlgorithm)
	dst = appendField(dst, "eventVersion", e.EventVersion)
	dst = appendField(dst, "correlationId", e.CorrelationID)
	dst = appendField(dst, "dataClassification", string(e.DataClassification))
	dst = appendField(dst, "retentionPolicy", e.RetentionPolicy)
	if e.ProcessingLatency != nil {
		dst = append(dst, `,"processingLatency":`...)
		dst = append(dst, jsontext.FormatJSNumber(*e.ProcessingLatency)...)
	}
	if len(e.Details) > 0 {
		dst = append(dst, `,"details":`...)
		dst = append(dst, e.Details...)
	}
	dst = append(dst, `,"receivedAt":"`...)
	dst = e.ReceivedAt.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","recordHash":"`...)
	dst = append(dst, e.RecordHash...)
	dst = append(dst, `","integrity":{"hashVerified":`...)
	dst = strconv.AppendBool(dst, e.HashStatus == audit.HashVerified)
	dst = append(dst, `,"signatureVerified":`...)
	dst = strconv.AppendBool(dst, e.SignatureStatus == audit.SignatureVerified)
	return append(dst, "}}"...)
}

func appendField(dst []byte, name, value string) []byte {
	if value == "" {
		return dst
	}
	dst = append(dst, ',', '"')
	dst = append(dst, name...)
	dst = append(dst, '"', ':')
	return jsontext.AppendJSString(dst, value)
}

// CSVHeader names the CSV columns: the original system's 15 first, in its
// order, then every other stored value, and details as JSON last.
var CSVHeader = []string{
	"ID", "Timestamp", "Principal ID", "Organization ID", "Action", "Target Resource Type",
	"Target Resource ID", "Status", "Outcome Description", "Data Classification", "IP Address",
	"User Agent", "Session ID", "Integrity Status", "Correlation ID",
	"Signature Status", "TTL", "Hash", "Hash Algorithm", "Signature", "Signature Algorithm",
	"Event Version", "Retention Policy", "Processing Latency", "Idempotency Key", "Source",
	"Received At", "Record Hash", "Details",
}

// CSVRecord returns the CSV cells of an event, in CSVHeader's order, into dst
// (reused from row to row). Cells a spreadsheet would run as a formula are
// neutralised (see Neutralize).
func CSVRecord(dst []string, e *audit.StoredEvent) []string {
	var ip, agent, session string
	if sc := e.SessionContext; sc != nil {
		ip, agent, session = sc.IPAddress, sc.UserAgent, sc.SessionID
	}
	latency := ""
	if e.ProcessingLatency != nil {
		latency = jsontext.FormatJSNumber(*e.ProcessingLatency)
	}
	dst = append(dst[:0],
		strconv.FormatInt(e.Seq, 10), e.Timestamp, e.PrincipalID, e.OrganizationID, e.Action,
		e.TargetResourceType, e.TargetResourceID, string(e.Status), e.OutcomeDescription,
		string(e.DataClassification), ip, agent, session, e.HashStatus, e.CorrelationID,
		e.SignatureStatus, e.TTL, e.Hash, e.HashAlgorithm, e.Signature, e.SignatureAlgorithm,
		e.EventVersion, e.RetentionPolicy, latency, e.IdempotencyKey, e.Source,
		e.ReceivedAt.UTC().Format(time.RFC3339Nano), e.RecordHash, string(e.Details))
	for i := range dst {
		dst[i] = Neutralize(dst[i])
	}
	return dst
}

// Neutralize keeps a spreadsheet from running a cell as a formula: a cell
// that starts with '=', '+', '-', '@', a tab or a carriage return gets a
// leading apostrophe, which spreadsheets show as text and do not evaluate.
func Neutralize(cell string) string {
	if cell == "" {
		return cell
	}
	switch cell[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + cell
	}
	return cell
}

// AppendCSVRecord appends an event's CSV row, newline included, to dst: the
// bytes encoding/csv writes for CSVRecord's cells, rendered without a string
// per cell.
func AppendCSVRecord(dst []byte, e *audit.StoredEvent) []byte {
	var ip, agent, session string
	if sc := e.SessionContext; sc != nil {
		ip, agent, session = sc.IPAddress, sc.UserAgent, sc.SessionID
	}
	var scratch [40]byte
	dst = appendCSVBytes(dst, strconv.AppendInt(scratch[:0], e.Seq, 10))
	for _, cell := range [...]string{e.Timestamp, e.PrincipalID, e.OrganizationID, e.Action,
		e.TargetResourceType, e.TargetResourceID, string(e.Status), e.OutcomeDescription,
		string(e.DataClassification), ip, agent, session, e.HashStatus, e.CorrelationID,
		e.SignatureStatus, e.TTL, e.Hash, e.HashAlgorithm, e.Signature, e.SignatureAlgorithm,
		e.EventVersion, e.RetentionPolicy} {
		dst = appendCSVCell(append(dst, ','), cell)
	}
	dst = append(dst, ',')
	if e.ProcessingLatency != nil {
		dst = appendCSVCell(dst, jsontext.FormatJSNumber(*e.ProcessingLatency))
	}
	dst = appendCSVCell(append(dst, ','), e.IdempotencyKey)
	dst = appendCSVCell(append(dst, ','), e.Source)
	dst = appendCSVBytes(append(dst, ','), e.ReceivedAt.UTC().AppendFormat(scratch[:0], time.RFC3339Nano))
	dst = appendCSVCell(append(dst, ','), e.RecordHash)
	dst = appendCSVBytes(append(dst, ','), e.Details)
	return append(dst, '\n')
}

// appendCSVRow appends cells as one CSV row, newline included.
func appendCSVRow(dst []byte, cells []string) []byte {
	for i, cell := range cells {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendCSVCell(dst, cell)
	}
	return append(dst, '\n')
}

// appendCSVCell appends a cell as encoding/csv writes it (comma-separated,
// LF line ends) after Neutralize: quoted when it holds a comma, a quote, CR
// or LF, starts with a space or is `\.`, with each quote doubled.
func appendCSVCell(dst []byte, cell string) []byte {
	if cell == "" {
		return dst
	}
	neutral := false
	switch cell[0] {
	case '=', '+', '-', '@', '\t', '\r':
		neutral = true
	}
	if !csvNeedsQuotes(cell, neutral) {
		if neutral {
			dst = append(dst, '\'')
		}
		return append(dst, cell...)
	}
	dst = append(dst, '"')
	if neutral {
		dst = append(dst, '\'')
	}
	for {
		i := strings.IndexByte(cell, '"')
		if i < 0 {
			break
		}
		dst = append(dst, cell[:i+1]...)
		dst = append(dst, '"')
		cell = cell[i+1:]
	}
	dst = append(dst, cell...)
	return append(dst, '"')
}

// appendCSVBytes is appendCSVCell of a byte slice, read in place.
func appendCSVBytes(dst, cell []byte) []byte {
	return appendCSVCell(dst, unsafe.String(unsafe.SliceData(cell), len(cell)))
}

// csvNeedsQuotes is encoding/csv's rule for the cell as written, with the
// apostrophe in front when neutral.
func csvNeedsQuotes(cell string, neutral bool) bool {
	if strings.ContainsAny(cell, ",\"\r\n") {
		return true
	}
	if neutral {
		return false
	}
	if cell == `\.` {
		return true
	}
	r, _ := utf8.DecodeRuneInString(cell)
	return unicode.IsSpace(r)
}
