package pipeline_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
	"github.com/smartlogs/audit-worker/internal/storetest"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/internal/teststores"
	"github.com/smartlogs/audit-worker/pipeline"
)

const isolationHMACKey = "test-secret-key-for-testing-purposes-only"

// refusingStore is a real store whose database refuses the events of
// storetest.RefusedPrincipal, and a way to take it down as an outage would.
type refusingStore struct {
	audit.EventStore
	down func(t *testing.T)
}

var refusingStores = []struct {
	name string
	open func(t *testing.T) refusingStore
}{
	{"sqlite", func(t *testing.T) refusingStore {
		s, path := teststores.SQLite(t)
		storetest.RefuseInSQLite(t, path)
		// A closed store fails every call, as a lost disk would.
		return refusingStore{EventStore: s, down: func(*testing.T) { s.Close() }}
	}},
	{"postgres", func(t *testing.T) refusingStore {
		s, dbURL := teststores.Postgres(t)
		storetest.RefuseInPostgres(t, dbURL)
		return refusingStore{EventStore: s, down: func(t *testing.T) { stopPostgresDatabase(t, dbURL) }}
	}},
}

// stopPostgresDatabase makes the database refuse connections and ends the
// open ones, as a server going away does; it is restored when the test ends.
func stopPostgresDatabase(t *testing.T, dbURL string) {
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	name := pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, testenv.PostgresAdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS false"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if c, err := pgx.Connect(ctx, testenv.PostgresAdminURL()); err == nil {
			c.Exec(ctx, "ALTER DATABASE "+name+" ALLOW_CONNECTIONS true")
			c.Close(ctx)
		}
	})
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = $1 AND pid <> pg_backend_pid()`, strings.TrimPrefix(u.Path, "/")); err != nil {
		t.Fatal(err)
	}
}

// refusedPayload is a valid, signed event that the refusing store refuses.
func refusedPayload(g *eventgen.Generator) []byte {
	f := g.Fields()
	f["principalId"] = storetest.RefusedPrincipal
	return g.Seal(f)
}

func newGenerator(seed uint64) *eventgen.Generator {
	g := eventgen.New(seed)
	g.HMACKey = []byte(isolationHMACKey)
	return g
}

func processorFor(s audit.EventStore, br *pipeline.Breaker) *pipeline.Processor {
	return pipeline.NewProcessor(s, pipeline.Config{Rules: audit.DefaultRules(), HMACKey: []byte(isolationHMACKey), Breaker: br})
}

// One event the store refuses in a batch of 1,000: it alone is rejected with
// store_refused and the database's reason, and dead-lettered with its exact
// bytes; the 999 others are stored by the same call.
func TestProcessRejectsOnlyTheEventTheStoreRefuses(t *testing.T) {
	for _, kind := range refusingStores {
		t.Run(kind.name, func(t *testing.T) {
			s := kind.open(t)
			br := pipeline.NewBreaker(pipeline.BreakerConfig{FailureThreshold: 1})
			p := processorFor(s, br)
			g := newGenerator(31)
			inputs := make([]pipeline.Input, 1000)
			for i := range inputs {
				inputs[i] = pipeline.Input{Payload: g.Valid(), Source: "test"}
			}
			const bad = 613
			inputs[bad].Payload = refusedPayload(g)

			outcomes, err := p.Process(t.Context(), inputs)
			if err != nil {
				t.Fatalf("Process: %v", err)
			}
			for i, o := range outcomes {
				if i == bad {
					if o.Status != pipeline.StatusRejected || o.Reason != audit.ReasonStoreRefused ||
						!strings.Contains(o.Message, storetest.RefusalMessage) || o.Seq != 0 {
						t.Errorf("refused event: outcome %+v, want rejected with %s and the database's reason", o, audit.ReasonStoreRefused)
					}
				} else if o.Status != pipeline.StatusStored || o.Seq <= 0 {
					t.Fatalf("outcome %d = %+v, want stored", i, o)
				}
			}
			events, err := s.ListEvents(t.Context(), 0, 2000)
			if err != nil {
				t.Fatal(err)
			}
			dls, err := s.ListDeadLetters(t.Context(), 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(events) != 999 || len(dls) != 1 {
				t.Fatalf("%d events and %d dead letters stored, want 999 and 1", len(events), len(dls))
			}
			d := dls[0]
			if d.Reason != audit.ReasonStoreRefused || d.IdempotencyKey != outcomes[bad].Key ||
				string(d.Payload) != string(inputs[bad].Payload) || !strings.Contains(d.Message, storetest.RefusalMessage) {
				t.Errorf("dead letter %+v, want the refused event's key, exact payload and the database's reason", d.DeadLetter)
			}
			if st := p.Stats(); st.Stored != 999 || st.StoreRefused != 1 || st.RejectedValidation != 0 || st.StoreFailures != 0 {
				t.Errorf("stats %+v, want 999 stored and 1 refused by the store", st)
			}
			if state := br.State(); state != pipeline.BreakerClosed {
				t.Errorf("breaker %s after a refused event, want CLOSED", state)
			}
		})
	}
}

// A second input with the refused event's key in the same batch is rejected
// the same way: nothing was stored under that key.
func TestProcessRejectsRepeatsOfARefusedEvent(t *testing.T) {
	s := refusingStores[0].open(t)
	p := processorFor(s, nil)
	g := newGenerator(32)
	refused := refusedPayload(g)
	inputs := []pipeline.Input{{Payload: g.Valid()}, {Payload: refused}, {Payload: g.Valid()}, {Payload: refused}}
	outcomes, err := p.Process(t.Context(), inputs)
	if err != nil {
		t.Fatal(err)
	}
	want := []pipeline.Status{pipeline.StatusStored, pipeline.StatusRejected, pipeline.StatusStored, pipeline.StatusRejected}
	for i, o := range outcomes {
		if o.Status != want[i] || (want[i] == pipeline.StatusRejected && o.Reason != audit.ReasonStoreRefused) {
			t.Errorf("outcome %d = %+v, want %s", i, o, want[i])
		}
	}
}

// The breaker counts failures of the store, never its refusals of records:
// batches with refused records keep it closed, even with a threshold of one,
// while a real outage still opens it.
func TestBreakerIgnoresRefusalsAndOpensOnOutage(t *testing.T) {
	for _, kind := range refusingStores {
		t.Run(kind.name, func(t *testing.T) {
			s := kind.open(t)
			br := pipeline.NewBreaker(pipeline.BreakerConfig{FailureThreshold: 2, RecoveryTimeout: time.Hour})
			p := processorFor(s, br)
			g := newGenerator(33)
			for range 3 {
				outcomes, err := p.Process(t.Context(), []pipeline.Input{{Payload: g.Valid()}, {Payload: refusedPayload(g)}})
				if err != nil {
					t.Fatalf("Process: %v", err)
				}
				if outcomes[0].Status != pipeline.StatusStored || outcomes[1].Reason != audit.ReasonStoreRefused {
					t.Fatalf("outcomes %+v, want stored and refused", outcomes)
				}
				if state := br.State(); state != pipeline.BreakerClosed {
					t.Fatalf("breaker %s after a batch with a refused record, want CLOSED", state)
				}
			}

			s.down(t)
			for i := range 2 {
				_, err := p.Process(t.Context(), []pipeline.Input{{Payload: g.Valid()}})
				if err == nil || !audit.IsTransient(err) {
					t.Fatalf("Process %d with the store down: err %v, want a transient error", i, err)
				}
			}
			if state := br.State(); state != pipeline.BreakerOpen {
				t.Fatalf("breaker %s after 2 store failures, want OPEN", state)
			}
			if _, err := p.Process(t.Context(), []pipeline.Input{{Payload: g.Valid()}}); !errors.Is(err, pipeline.ErrBreakerOpen) {
				t.Fatalf("Process with the breaker open: %v, want ErrBreakerOpen", err)
			}
		})
	}
}
