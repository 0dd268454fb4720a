package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	audit "github.com/smartlogs/audit-worker"
)

// A body that is not a JSON array is one event, whatever it holds: a broken
// object is a malformed single event (422, kept as a dead letter), not a
// batch of lines. Lines are events only under an NDJSON Content-Type.
func TestIngestMalformedSingleEvent(t *testing.T) {
	f := newFixture(t, 1<<20)
	for _, tc := range []struct {
		name, body, contentType string
	}{
		{"truncated object", `{"timestamp": oops`, "application/json"},
		{"truncated object without Content-Type", `{"action":"auth.login","status":`, ""},
		{"two objects on two lines as JSON", "{\"a\":1}\n{\"b\":2}", "application/json"},
		{"object then garbage", `{"a":1} trailing`, "application/json; charset=utf-8"},
		{"not JSON at all", `plain words`, ""},
	} {
		resp, out := f.post(t, []byte(tc.body), map[string]string{"Content-Type": tc.contentType})
		if resp.StatusCode != http.StatusUnprocessableEntity || out.Rejected != 1 || len(out.Results) != 1 {
			t.Errorf("%s: %s %+v, want 422 with one rejected event", tc.name, resp.Status, out)
			continue
		}
		if r := out.Results[0]; r.Reason != audit.ReasonValidation || len(r.Errors) == 0 || r.Errors[0].Code != audit.ErrInvalidFormat {
			t.Errorf("%s: result %+v, want validation_failed INVALID_FORMAT", tc.name, r)
		}
	}
	dead, err := f.store.ListDeadLetters(context.Background(), 0, 100)
	if err != nil || len(dead) != 5 {
		t.Fatalf("dead letters: %d, %v; want 5", len(dead), err)
	}
	if string(dead[2].Payload) != "{\"a\":1}\n{\"b\":2}" {
		t.Errorf("dead letter payload %q, want the body as sent", dead[2].Payload)
	}
	if n := f.count(t); n != 0 {
		t.Errorf("%d rows stored, want 0", n)
	}
}

func TestIngestNDJSONContentTypes(t *testing.T) {
	f := newFixture(t, 1<<20)
	for _, ct := range []string{"application/x-ndjson", "application/ndjson", "application/x-ndjson; charset=utf-8", "Application/NDJSON"} {
		body := append(append(f.gen.Valid(), '\n', '\n'), f.gen.Valid()...)
		resp, out := f.post(t, body, map[string]string{"Content-Type": ct})
		if resp.StatusCode != http.StatusOK || out.Stored != 2 {
			t.Errorf("%s: %s %+v, want 2 stored", ct, resp.Status, out)
		}
	}
	// A single broken line in NDJSON is one rejected event among others, not a 422.
	body := append(f.gen.Valid(), []byte("\n{broken")...)
	resp, out := f.post(t, body, map[string]string{"Content-Type": "application/x-ndjson"})
	if resp.StatusCode != http.StatusOK || out.Stored != 1 || out.Rejected != 1 {
		t.Errorf("NDJSON with a broken line: %s %+v", resp.Status, out)
	}
}

// Ingest takes JSON, NDJSON or no Content-Type; anything else is a 415 that
// says what is accepted, and nothing is stored.
func TestIngestContentType(t *testing.T) {
	f := newFixture(t, 1<<20)
	for _, tc := range []struct {
		contentType string
		code        int
	}{
		{"", http.StatusOK},
		{"application/json", http.StatusOK},
		{"application/json; charset=utf-8", http.StatusOK},
		{"APPLICATION/JSON", http.StatusOK},
		{"text/plain", http.StatusUnsupportedMediaType},
		{"application/x-www-form-urlencoded", http.StatusUnsupportedMediaType},
		{"application/xml", http.StatusUnsupportedMediaType},
		{"multipart/form-data; boundary=x", http.StatusUnsupportedMediaType},
		{"application/", http.StatusUnsupportedMediaType},
		{"application/json; charset", http.StatusUnsupportedMediaType},
	} {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/events", bytes.NewReader(f.gen.Valid()))
		req.Header.Set("Authorization", "Bearer "+testKey)
		if tc.contentType != "" {
			req.Header.Set("Content-Type", tc.contentType)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e apiError
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("Content-Type %q: %s %s, want %d", tc.contentType, resp.Status, data, tc.code)
			continue
		}
		if tc.code != http.StatusUnsupportedMediaType {
			continue
		}
		if err := json.Unmarshal(data, &e); err != nil || e.Error.Code != "invalid" ||
			!strings.Contains(e.Error.Message, "accepted: application/json, application/x-ndjson, application/ndjson") {
			t.Errorf("Content-Type %q: answer %s, want the accepted types named", tc.contentType, data)
		}
	}
	if n := f.count(t); n != 4 {
		t.Errorf("%d rows stored, want 4 (the accepted requests only)", n)
	}
}

// The Bearer scheme is case-insensitive (RFC 9110); the key is not.
func TestBearerSchemeIsCaseInsensitive(t *testing.T) {
	f := newFixture(t, 1<<20)
	for _, tc := range []struct {
		authorization string
		code          int
	}{
		{"Bearer " + testKey, http.StatusOK},
		{"bearer " + testKey, http.StatusOK},
		{"BEARER " + testKey, http.StatusOK},
		{"bEaReR " + testKey, http.StatusOK},
		{"Bearer   " + testKey, http.StatusOK},
		{"Bearer " + strings.ToUpper(testKey), http.StatusUnauthorized},
		{"Bearer" + testKey, http.StatusUnauthorized},
		{"Bearer\t" + testKey, http.StatusUnauthorized},
		{"Basic " + testKey, http.StatusUnauthorized},
		{"bearer", http.StatusUnauthorized},
		{testKey, http.StatusUnauthorized},
	} {
		req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/v1/events", bytes.NewReader(f.gen.Valid()))
		req.Header.Set("Authorization", tc.authorization)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.code {
			t.Errorf("Authorization %q: %s, want %d", tc.authorization, resp.Status, tc.code)
		}
	}
}
