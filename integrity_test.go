package audit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func mustParse(t *testing.T, data string) Event {
	t.Helper()
	ev, _, err := ParseEvent([]byte(data), DefaultRules(), testNow)
	if err != nil {
		t.Fatalf("ParseEvent: %v", err)
	}
	return ev
}

const vectorA = `{"timestamp":"2023-10-26T10:30:00.000Z","action":"userLogin","status":"success",
	"principalId":"user-12345","organizationId":"org-67890","targetResourceType":"User",
	"targetResourceId":"user-12345","outcomeDescription":"User logged in successfully",
	"eventVersion":"1.0","hashAlgorithm":"SHA-256"}`

// Vectors computed with the Node producer's algorithm (docs/compatibility.md): A is its
// test event, B a sparse event, D what a row of the original worker held instead.
func TestHashVectors(t *testing.T) {
	tests := []struct {
		name, event, canonical, hash string
	}{
		{"A", vectorA,
			`action:"userLogin"|organizationId:"org-67890"|outcomeDescription:"User logged in successfully"|principalId:"user-12345"|status:"success"|targetResourceId:"user-12345"|targetResourceType:"User"|timestamp:"2023-10-26T10:30:00.000Z"`,
			"1a5173f0c32c592cbe9d3c03c2af6ab212b16de1c903bfe2d1f231e926adf2b7"},
		{"B", `{"timestamp":"2023-10-26T10:30:00.000Z","action":"userLogin","status":"success","principalId":"user-12345"}`,
			`action:"userLogin"|organizationId:null|outcomeDescription:null|principalId:"user-12345"|status:"success"|targetResourceId:null|targetResourceType:null|timestamp:"2023-10-26T10:30:00.000Z"`,
			"d1259f73beb8f1be36570a1e4d0a5cc666c7eb406cbdca9a284876ca7e00c3e7"},
		{"D/db-timestamp", strings.Replace(vectorA, "2023-10-26T10:30:00.000Z", "2023-10-26 10:30:00+00", 1), "",
			"4bfa927491325e732632e2eb2754573329980470173629279c938adaffe4595e"},
		{"D/pseudonyms", strings.ReplaceAll(vectorA, `"user-12345"`, `"pseudo-656b90e496a37c11"`), "",
			"6be5ae29353f7a4c2836e52df508e12896ad5c6a4bfbc4a00f50d43a8fa39147"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := HashPayload([]byte(tt.event))
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.hash {
				t.Errorf("HashPayload = %s, want %s", got, tt.hash)
			}
			if tt.canonical == "" {
				return // D's timestamp is not valid RFC 3339, so only the raw path applies
			}
			ev := mustParse(t, tt.event)
			if c := ev.CanonicalString(); c != tt.canonical {
				t.Errorf("canonical = %s\nwant        %s", c, tt.canonical)
			}
			if h := ev.ComputeHash(); h != tt.hash {
				t.Errorf("ComputeHash = %s, want %s", h, tt.hash)
			}
		})
	}
}

func TestSignatureVectorA(t *testing.T) {
	key := []byte("test-secret-key-for-testing-purposes-only")
	const hash = "1a5173f0c32c592cbe9d3c03c2af6ab212b16de1c903bfe2d1f231e926adf2b7"
	const want = "f28d2a320fda4af94c2f50b867aa72d5f51735118e827eef82b1dd2cf88f0a44"
	if got := Sign(hash, key); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
	if !VerifySignature(hash, want, key) {
		t.Error("VerifySignature rejected the right signature")
	}
	if VerifySignature(hash, want, []byte("another-key-another-key-another-key")) {
		t.Error("VerifySignature accepted a signature made with another key")
	}
	if VerifySignature(hash, want[:63]+"0", key) {
		t.Error("VerifySignature accepted a tampered signature")
	}
}

// Each of the 8 hashed fields changes the hash; fields outside them do not.
func TestHashCoversExactlyTheCriticalFields(t *testing.T) {
	var base map[string]any
	if err := json.Unmarshal([]byte(vectorA), &base); err != nil {
		t.Fatal(err)
	}
	hashOf := func(m map[string]any) string {
		data, _ := json.Marshal(m)
		h, err := HashPayload(data)
		if err != nil {
			t.Fatal(err)
		}
		return h
	}
	baseHash := hashOf(base)
	changed := func(field string, value any) map[string]any {
		m := make(map[string]any, len(base)+1)
		for k, v := range base {
			m[k] = v
		}
		m[field] = value
		return m
	}
	for _, f := range hashedFields {
		if got := hashOf(changed(f.name, "changed")); got == baseHash {
			t.Errorf("changing %s did not change the hash", f.name)
		}
	}
	for _, field := range []string{"eventVersion", "dataClassification", "correlationId",
		"retentionPolicy", "sessionContext", "hash", "signature", "custom", "ttl"} {
		if got := hashOf(changed(field, "changed")); got != baseHash {
			t.Errorf("changing %s changed the hash", field)
		}
	}
}

func TestHashPayloadRendersLikeJavaScript(t *testing.T) {
	// Expected canonical renderings follow JSON.stringify: numbers via Number#toString,
	// falsy optional values as null, booleans as literals, lone surrogates escaped.
	tests := []struct{ field, raw, want string }{
		{"principalId", `0`, `principalId:null`},
		{"principalId", `false`, `principalId:null`},
		{"principalId", `""`, `principalId:null`},
		{"principalId", `true`, `principalId:true`},
		{"principalId", `1e21`, `principalId:1e+21`},
		{"principalId", `123.0`, `principalId:123`},
		{"principalId", `0.0000001`, `principalId:1e-7`},
		{"principalId", `1e400`, `principalId:null`},
		{"principalId", `"\ud800x"`, `principalId:"\ud800x"`},
		{"principalId", `"<&>\u2028\u007f\u001f"`, "principalId:\"<&>\u2028\u007f\\u001f\""},
		{"status", `""`, `status:""`},
		{"status", `null`, `status:null`},
	}
	for _, tt := range tests {
		values := [8]jsValue{}
		for i := range values {
			values[i] = jsValue{kind: 'u'}
		}
		for i, f := range hashedFields {
			if f.name != tt.field {
				continue
			}
			got, err := HashPayload([]byte(`{"` + tt.field + `":` + tt.raw + `}`))
			if err != nil {
				t.Fatalf("%s=%s: %v", tt.field, tt.raw, err)
			}
			// Rebuild the expected canonical string with the one field replaced.
			want := make([]string, 8)
			for j, g := range hashedFields {
				want[j] = g.name + ":undefined"
				if !g.required {
					want[j] = g.name + ":null"
				}
			}
			want[i] = tt.want
			if got != sha256Hex(strings.Join(want, "|")) {
				t.Errorf("%s=%s: hash does not match canonical %q", tt.field, tt.raw, tt.want)
			}
		}
	}
}

func TestVerifyIntegrity(t *testing.T) {
	key := []byte("test-secret-key-for-testing-purposes-only")
	const hash = "1a5173f0c32c592cbe9d3c03c2af6ab212b16de1c903bfe2d1f231e926adf2b7"
	withHash := strings.Replace(vectorA, `"eventVersion"`, `"hash":"`+hash+`","eventVersion"`, 1)

	ev := mustParse(t, withHash)
	res, err := VerifyIntegrity(&ev, key)
	if err != nil || res.HashStatus != HashVerified || res.SignatureStatus != SignatureAbsent {
		t.Fatalf("good hash: %+v, %v", res, err)
	}

	tampered := mustParse(t, strings.Replace(withHash, "User logged in successfully", "User logged in", 1))
	if _, err := VerifyIntegrity(&tampered, key); !IsIntegrityViolation(err) || ErrorCode(err) != CodeIntegrity {
		t.Fatalf("tampered event: err = %v, want an integrity violation", err)
	}

	signed := mustParse(t, strings.Replace(withHash, `"eventVersion"`,
		`"signature":"`+Sign(hash, key)+`","algorithm":"HMAC-SHA256","eventVersion"`, 1))
	if res, err := VerifyIntegrity(&signed, key); err != nil || res.SignatureStatus != SignatureVerified {
		t.Fatalf("good signature: %+v, %v", res, err)
	}
	if res, err := VerifyIntegrity(&signed, nil); err != nil || res.SignatureStatus != SignatureUnverified {
		t.Fatalf("no key: %+v, %v", res, err)
	}
	if _, err := VerifyIntegrity(&signed, []byte("wrong-key-wrong-key-wrong-key-wrong-key")); !IsIntegrityViolation(err) {
		t.Fatalf("wrong key: err = %v, want an integrity violation", err)
	}
}
