package export

import (
	"strconv"
	"time"

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
