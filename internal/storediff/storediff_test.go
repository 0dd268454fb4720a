package storediff

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/postgres"
	"github.com/smartlogs/audit-worker/sqlite"
)

// widestRules are the most permissive rules the configuration allows (the
// bounds config.Validate sets), without the clock-skew rule: what they accept
// is a superset of what any configured worker accepts.
func widestRules() audit.Rules {
	r := audit.DefaultRules()
	r.MaxStringLength = 1_000_000
	r.MaxCustomFieldDepth = 64
	r.MaxEventBytes = 16 << 20
	r.MaxFutureSkew = 0
	return r
}

// stores opens one PostgreSQL database and one SQLite file for the whole
// run: each fuzz worker process gets its own pair.
func stores(tb testing.TB) map[string]audit.EventStore {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	pg, err := postgres.Open(ctx, postgres.Config{URL: testenv.PostgresDatabase(tb)})
	if err != nil {
		tb.Fatalf("open PostgreSQL: %v", err)
	}
	tb.Cleanup(func() { _ = pg.Close() })
	lite, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(tb.TempDir(), "audit.db")})
	if err != nil {
		tb.Fatalf("open SQLite: %v", err)
	}
	tb.Cleanup(func() { _ = lite.Close() })
	return map[string]audit.EventStore{"postgres": pg, "sqlite": lite}
}

// keys hands out idempotency keys no other input of the run, or of another
// run against the same database, uses.
type keys struct {
	prefix string
	n      atomic.Int64
}

func newKeys() *keys {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return &keys{prefix: "storediff:" + hex.EncodeToString(b) + ":"}
}

func (k *keys) next() string { return k.prefix + strconv.FormatInt(k.n.Add(1), 10) }

// FuzzStoresAgree: what validation accepts, both stores keep exactly; what it
// refuses, it refuses as a validation error with a code.
func FuzzStoresAgree(f *testing.F) {
	for _, seed := range seeds() {
		f.Add(seed)
	}
	all := stores(f)
	rules := widestRules()
	ids := newKeys()
	receivedAt := time.Now()
	f.Fuzz(func(t *testing.T, payload []byte) {
		ev, _, err := audit.ParseEvent(payload, rules, time.Now())
		if err != nil {
			requireValidationError(t, payload, err)
			return
		}
		integrity, _ := audit.VerifyIntegrity(&ev, nil) // a wrong producer hash is not what this checks
		rec := audit.NewRecord(ev, ids.next(), "storediff", integrity, receivedAt)
		for name, s := range all {
			got := storeAndRead(t, s, rec)
			if problems := differences(rec, got); len(problems) > 0 {
				t.Fatalf("%s gives back another event than it was given for %q:\n%v", name, payload, problems)
			}
		}
	})
}

// requireValidationError fails unless err is a *audit.ValidationError naming
// every broken rule with a known code.
func requireValidationError(t *testing.T, payload []byte, err error) {
	t.Helper()
	ve, ok := errors.AsType[*audit.ValidationError](err)
	if !ok || len(ve.Errors) == 0 || audit.ErrorCode(err) != audit.CodeInvalid {
		t.Fatalf("ParseEvent(%q) refused it with %T %v, want a *audit.ValidationError", payload, err, err)
	}
	for _, fe := range ve.Errors {
		switch fe.Code {
		case audit.ErrRequiredFieldMissing, audit.ErrInvalidType, audit.ErrInvalidFormat, audit.ErrEmptyValue,
			audit.ErrExceedsMaxLength, audit.ErrInvalidValue, audit.ErrExceedsMaxDepth:
		default:
			t.Fatalf("ParseEvent(%q): error %+v has no known code", payload, fe)
		}
		if fe.Message == "" {
			t.Fatalf("ParseEvent(%q): error %+v has no message", payload, fe)
		}
	}
}

func storeAndRead(t *testing.T, s audit.EventStore, rec audit.Record) audit.StoredEvent {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := s.StoreBatch(ctx, audit.Batch{Records: []audit.Record{rec}})
	if err != nil {
		t.Fatalf("StoreBatch of an accepted event: %v\nevent: %+v", err, rec.Event)
	}
	if len(res) != 1 || res[0].Duplicate || res[0].Seq <= 0 {
		t.Fatalf("StoreBatch = %+v, want one new row", res)
	}
	got, err := s.GetEvent(ctx, rec.IdempotencyKey)
	if err != nil {
		t.Fatalf("GetEvent: %v", err)
	}
	return got
}

// differences lists what got holds differently from want.
func differences(want audit.Record, got audit.StoredEvent) []string {
	var out []string
	same := func(name string, a, b any) {
		if !reflect.DeepEqual(a, b) {
			out = append(out, fmt.Sprintf("%s: sent %#v, read back %#v", name, a, b))
		}
	}
	w, g := want.Event, got.Event
	for _, f := range [...]struct {
		name string
		a, b string
	}{
		{"Timestamp", w.Timestamp, g.Timestamp}, {"TTL", w.TTL, g.TTL}, {"PrincipalID", w.PrincipalID, g.PrincipalID},
		{"OrganizationID", w.OrganizationID, g.OrganizationID}, {"Action", w.Action, g.Action},
		{"TargetResourceType", w.TargetResourceType, g.TargetResourceType},
		{"TargetResourceID", w.TargetResourceID, g.TargetResourceID}, {"Status", string(w.Status), string(g.Status)},
		{"OutcomeDescription", w.OutcomeDescription, g.OutcomeDescription}, {"Hash", w.Hash, g.Hash},
		{"HashAlgorithm", w.HashAlgorithm, g.HashAlgorithm}, {"Signature", w.Signature, g.Signature},
		{"SignatureAlgorithm", w.SignatureAlgorithm, g.SignatureAlgorithm}, {"EventVersion", w.EventVersion, g.EventVersion},
		{"CorrelationID", w.CorrelationID, g.CorrelationID},
		{"DataClassification", string(w.DataClassification), string(g.DataClassification)},
		{"RetentionPolicy", w.RetentionPolicy, g.RetentionPolicy},
		{"IdempotencyKey", want.IdempotencyKey, got.IdempotencyKey}, {"Source", want.Source, got.Source},
		{"HashStatus", want.HashStatus, got.HashStatus}, {"SignatureStatus", want.SignatureStatus, got.SignatureStatus},
		{"RecordHash", want.RecordHash, got.RecordHash},
	} {
		same(f.name, f.a, f.b)
	}
	if !w.Time.Equal(g.Time) {
		out = append(out, fmt.Sprintf("Time: sent %v, read back %v", w.Time, g.Time))
	}
	if !want.ReceivedAt.Equal(got.ReceivedAt) {
		out = append(out, fmt.Sprintf("ReceivedAt: sent %v, read back %v", want.ReceivedAt, got.ReceivedAt))
	}
	if (w.ProcessingLatency == nil) != (g.ProcessingLatency == nil) ||
		w.ProcessingLatency != nil && math.Float64bits(*w.ProcessingLatency) != math.Float64bits(*g.ProcessingLatency) {
		out = append(out, fmt.Sprintf("ProcessingLatency: sent %v, read back %v", deref(w.ProcessingLatency), deref(g.ProcessingLatency)))
	}
	if !bytes.Equal(w.Details, g.Details) {
		out = append(out, fmt.Sprintf("Details: sent %q, read back %q", w.Details, g.Details))
	}
	same("SessionContext", w.SessionContext, g.SessionContext)
	if h := got.ComputeRecordHash(); h != want.RecordHash {
		out = append(out, fmt.Sprintf("record hash recomputed from the row: %s, stored with it %s", h, want.RecordHash))
	}
	return out
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// The seed corpus reaches the stores: most seeds are accepted, and the
// refused ones are refused for a reason.
func TestSeedsReachTheStores(t *testing.T) {
	accepted, refused := 0, 0
	for _, seed := range seeds() {
		if _, _, err := audit.ParseEvent(seed, widestRules(), time.Now()); err != nil {
			requireValidationError(t, seed, err)
			refused++
		} else {
			accepted++
		}
	}
	t.Logf("%d seeds accepted, %d refused", accepted, refused)
	if accepted < 60 || refused < 30 {
		t.Fatalf("%d seeds accepted and %d refused, want at least 60 and 30", accepted, refused)
	}
}
