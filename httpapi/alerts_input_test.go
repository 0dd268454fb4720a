package httpapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/testenv"
	"github.com/smartlogs/audit-worker/postgres"
	"github.com/smartlogs/audit-worker/sqlite"
)

// alertStores opens each store for the alert input tests; their answers must
// not differ.
var alertStores = map[string]func(t *testing.T) audit.AlertStore{
	"sqlite": func(t *testing.T) audit.AlertStore {
		s, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "audit.db")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
	"postgres": func(t *testing.T) audit.AlertStore {
		s, err := postgres.Open(context.Background(), postgres.Config{URL: testenv.PostgresDatabase(t)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	},
}

// alertFixtureOn serves the alerts API over store, with one alert raised.
func alertFixtureOn(t *testing.T, store audit.AlertStore) (*alertFixture, audit.Alert) {
	t.Helper()
	srv := httptest.NewServer(New(Options{Auth: adminAuth(testKey), Alerts: AlertOptions{Store: store}}))
	t.Cleanup(srv.Close)
	r, err := store.RaiseAlert(context.Background(), audit.AlertCondition{
		OrganizationID: "org-1", Type: audit.AlertSecurity, Severity: audit.SeverityHigh, DedupKey: "k",
		DedupWindow: time.Minute, Title: "alert k", Source: "test", ObservedAt: alertBase,
	})
	if err != nil {
		t.Fatal(err)
	}
	return &alertFixture{srv: srv}, r.Alert
}

// NUL in an alert's by, note, organizationId or id, and invalid UTF-8 in a
// filter, get the same 400 on both stores, naming the field, never the
// database's own error; the alert is left as it was.
func TestAlertTextInputIsCheckedAlikeOnBothStores(t *testing.T) {
	for name, open := range alertStores {
		t.Run(name, func(t *testing.T) {
			store := open(t)
			f, a := alertFixtureOn(t, store)
			for _, tc := range []struct {
				method, path, body, message string
			}{
				{"POST", "/v1/alerts/" + a.ID + "/acknowledge", `{"by":"a\u0000b","note":"x"}`, "by: must not contain NUL characters"},
				{"POST", "/v1/alerts/" + a.ID + "/resolve", `{"by":"ops","note":"fixed\u0000"}`, "note: must not contain NUL characters"},
				{"POST", "/v1/alerts/" + a.ID + "/dismiss", `{"by":"\u0000","note":""}`, "by: must not contain NUL characters"},
				{"POST", "/v1/alerts/alt_%00/acknowledge", `{"by":"ops"}`, "id: must not contain NUL characters"},
				{"GET", "/v1/alerts/alt_%00", "", "id: must not contain NUL characters"},
				{"GET", "/v1/alerts/alt_%ff", "", "id: must be valid UTF-8"},
				{"GET", "/v1/alerts?organizationId=org%00x", "", "organizationId: must not contain NUL characters"},
				{"GET", "/v1/alerts/statistics?organizationId=%00", "", "organizationId: must not contain NUL characters"},
				{"GET", "/v1/alerts?organizationId=org%ff", "", "organizationId: must be valid UTF-8"},
			} {
				var e apiError
				code := f.do(t, tc.method, tc.path, tc.body, &e)
				if code != http.StatusBadRequest || e.Error.Code != "invalid" || e.Error.Message != tc.message {
					t.Errorf("%s %s %s: %d %+v, want 400 %q", tc.method, tc.path, tc.body, code, e, tc.message)
				}
			}
			got, err := store.GetAlert(context.Background(), a.ID)
			if err != nil || got.Status != audit.AlertActive {
				t.Errorf("alert after refused transitions: %s, %v; want active", got.Status, err)
			}
		})
	}
}

// until is exclusive and read as a time even at the zero time, where it
// selects nothing; since at the zero time selects everything.
func TestAlertTimeFiltersAtTheZeroTime(t *testing.T) {
	for name, open := range alertStores {
		t.Run(name, func(t *testing.T) {
			f, _ := alertFixtureOn(t, open(t))
			for _, tc := range []struct {
				query string
				want  int
			}{
				{"", 1},
				{"until=0001-01-01T00:00:00Z", 0},
				{"until=0001-01-01T01:00:00%2B01:00", 0}, // the same instant
				{"until=0000-06-01T00:00:00Z", 0},
				{"until=0001-01-01T00:00:00.000001Z", 0},
				{"since=0001-01-01T00:00:00Z", 1},
				{"since=0001-01-01T00:00:00Z&until=0001-01-01T00:00:00Z", 0},
				{"until=" + alertBase.Format(time.RFC3339), 0},
				{"until=" + alertBase.Add(time.Second).Format(time.RFC3339), 1},
			} {
				var list alertList
				if code := f.do(t, "GET", "/v1/alerts?"+tc.query, "", &list); code != http.StatusOK || len(list.Alerts) != tc.want {
					t.Errorf("list %q: %d, %d alerts, want %d", tc.query, code, len(list.Alerts), tc.want)
				}
				var st audit.AlertStatistics
				code := f.do(t, "GET", "/v1/alerts/statistics?"+tc.query, "", &st)
				if code != http.StatusOK || st.Total != int64(tc.want) || len(st.ByStatus) != len(audit.AlertStatuses) {
					t.Errorf("statistics %q: %d %+v, want total %d with every status listed", tc.query, code, st, tc.want)
				}
			}
			var e apiError
			if code := f.do(t, "GET", "/v1/alerts?until=yesterday", "", &e); code != http.StatusBadRequest || !strings.HasPrefix(e.Error.Message, "until:") {
				t.Errorf("until=yesterday: %d %+v", code, e)
			}
		})
	}
}
