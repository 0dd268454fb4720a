package config

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const testHMACKey = "k3y-0f-the-producers-hmac-at-least-32-chars"

func TestEnvReferencesAreResolved(t *testing.T) {
	t.Setenv("AUDIT_TEST_KEY", testHMACKey)
	t.Setenv("AUDIT_TEST_REDIS_PASSWORD", "r3dis-pw")
	t.Setenv("AUDIT_TEST_DB_URL", "postgresql://audit:db-pw@db:5432/audit?sslmode=require")
	t.Setenv("AUDIT_TEST_INGEST_KEY", "ingest-key-0123456789")
	t.Setenv("AUDIT_TEST_EMPTY", "")
	t.Setenv("AUDIT_TEST_ENVIRONMENT", "production")
	c, err := Parse([]byte(`{
		"environment": "${AUDIT_TEST_ENVIRONMENT}",
		"redis": {"host": "cache", "password": "${AUDIT_TEST_REDIS_PASSWORD}", "keyPrefix": "pre-${AUDIT_TEST_KEY}"},
		"enhancedClient": {"connectionString": "${AUDIT_TEST_DB_URL}"},
		"security": {"encryptionKey": "${AUDIT_TEST_KEY}"},
		"http": {"apiKeys": ["${AUDIT_TEST_INGEST_KEY}", "literal-key-0123456789"]},
		"storage": {"dataDir": "/data${AUDIT_TEST_EMPTY}"},
		"logging": {"format": "${AUDIT_TEST_EMPTY}"}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Environment != "production" || *c.Redis.Password != "r3dis-pw" || c.Security.EncryptionKey != testHMACKey ||
		c.EnhancedClient.ConnectionString != "postgresql://audit:db-pw@db:5432/audit?sslmode=require" ||
		!reflect.DeepEqual(c.HTTP.APIKeys, []string{"ingest-key-0123456789", "literal-key-0123456789"}) ||
		c.Logging.Format != "" {
		t.Errorf("references not resolved: %+v", c)
	}
	// Only a whole value is a reference.
	if c.Redis.KeyPrefix != "pre-${AUDIT_TEST_KEY}" || c.Storage.DataDir != "/data${AUDIT_TEST_EMPTY}" {
		t.Errorf("a partial reference was replaced: %q, %q", c.Redis.KeyPrefix, c.Storage.DataDir)
	}
}

func TestUnsetEnvReferenceNamesFieldAndVariable(t *testing.T) {
	_, err := Parse([]byte(`{"security":{"encryptionKey":"${AUDIT_TEST_UNSET_KEY}"},"http":{"apiKeys":["${AUDIT_TEST_UNSET_INGEST}"]},"worker":{"port":0}}`))
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v, want a config error", err)
	}
	want := []Problem{
		{"security.encryptionKey", "environment variable AUDIT_TEST_UNSET_KEY is not set"},
		{"http.apiKeys[0]", "environment variable AUDIT_TEST_UNSET_INGEST is not set"},
		{"worker.port", "must be between 1 and 65535 (is 0)"},
	}
	// The unresolved fields get no second, confusing "at least 32 characters".
	if !sameProblems(ce.Problems, want) {
		t.Errorf("problems = %v\nwant %v", ce.Problems, want)
	}
}

func sameProblems(got, want []Problem) bool {
	if len(got) != len(want) {
		return false
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return false
		}
	}
	return true
}

var (
	testPassword = "correct horse battery staple"
	testSalt     = []byte("0123456789abcdef0123456789abcdef")
)

func setKeyEnv(t *testing.T, password string, salt []byte) {
	t.Setenv(PasswordEnv, password)
	t.Setenv(SaltEnv, hex.EncodeToString(salt))
}

func TestEncryptedConfigRoundTrip(t *testing.T) {
	plain, err := os.ReadFile(filepath.Join("testdata", "seed-readme.json"))
	if err != nil {
		t.Fatal(err)
	}
	enc, err := EncryptDocument(plain, testPassword, testSalt)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]string
	if err := json.Unmarshal(enc, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc) != 4 || doc["algorithm"] != "AES-256-GCM" || len(doc["iv"]) != 32 || len(doc["authTag"]) != 32 ||
		len(doc["data"]) != 2*len(plain) || !IsEncrypted(enc) || IsEncrypted(plain) {
		t.Fatalf("encrypted document has the wrong shape: %s", enc)
	}
	if strings.Contains(string(enc), "your-256-bit") {
		t.Fatal("plaintext in the encrypted document")
	}
	again, _ := EncryptDocument(plain, testPassword, testSalt)
	if string(again) == string(enc) {
		t.Error("two encryptions are identical: the IV is not random")
	}

	path := filepath.Join(t.TempDir(), "config.enc.json")
	if err := os.WriteFile(path, enc, 0o600); err != nil {
		t.Fatal(err)
	}
	setKeyEnv(t, testPassword, testSalt)
	got, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := Load(filepath.Join("testdata", "seed-readme.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decrypted config differs:\n%+v\n%+v", got, want)
	}
}

// testdata/seed-readme.node-encrypted.json was written by Node's crypto module
// exactly as the original's secure storage writes (docs/compatibility.md).
func TestDecryptsTheOriginalsFormat(t *testing.T) {
	setKeyEnv(t, "node-written-test-password", mustHex(t, "9f2c4e7a1b3d5f60718293a4b5c6d7e8"))
	got, err := Load(filepath.Join("testdata", "seed-readme.node-encrypted.json"))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Load(filepath.Join("testdata", "seed-readme.json"))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("decrypted config differs:\n%+v\n%+v", got, want)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEncryptedConfigWrongKeyOrTampered(t *testing.T) {
	enc, err := EncryptDocument([]byte(`{"worker":{"port":3001}}`), testPassword, testSalt)
	if err != nil {
		t.Fatal(err)
	}
	setKeyEnv(t, "wrong password", testSalt)
	if _, err := Parse(enc); !errors.Is(err, ErrDecryptionFailed) || !strings.Contains(err.Error(), "GCM authentication failed") {
		t.Errorf("wrong password: %v", err)
	}
	setKeyEnv(t, testPassword, []byte("another salt"))
	if _, err := Parse(enc); !errors.Is(err, ErrDecryptionFailed) {
		t.Errorf("wrong salt: %v", err)
	}

	setKeyEnv(t, testPassword, testSalt)
	var doc map[string]string
	_ = json.Unmarshal(enc, &doc)
	data := []byte(doc["data"])
	if data[0] == '0' { // another hex digit: the ciphertext changed, still well-formed
		data[0] = '1'
	} else {
		data[0] = '0'
	}
	doc["data"] = string(data)
	tampered, _ := json.Marshal(doc)
	if _, err := Parse(tampered); !errors.Is(err, ErrDecryptionFailed) {
		t.Errorf("tampered: %v", err)
	}

	t.Setenv(PasswordEnv, "")
	if _, err := Parse(enc); err == nil || !strings.Contains(err.Error(), PasswordEnv) {
		t.Errorf("no password: %v", err)
	}
	t.Setenv(PasswordEnv, testPassword)
	t.Setenv(SaltEnv, "not hex")
	if _, err := Parse(enc); err == nil || !strings.Contains(err.Error(), SaltEnv) {
		t.Errorf("bad salt: %v", err)
	}
}

func TestEncryptedFormatsNotSupported(t *testing.T) {
	setKeyEnv(t, testPassword, testSalt)
	for doc, want := range map[string]string{
		`{"data":"c2VjcmV0"}`: "KMS",
		`{"algorithm":"AES-256-CBC","iv":"00112233445566778899aabbccddeeff","data":"00"}`:                  "AES-256-CBC",
		`{"algorithm":"AES-256-GCM","iv":"00112233445566778899aabbccddeeff","data":"00","authTag":"0011"}`: "authTag must be 16 bytes",
	} {
		if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", doc, err, want)
		}
	}
	if _, err := EncryptDocument([]byte(`{}`), "", testSalt); err == nil {
		t.Error("encrypted with an empty password")
	}
	if _, err := EncryptDocument([]byte(`{}`), testPassword, nil); err == nil {
		t.Error("encrypted with an empty salt")
	}
}

func TestMaskedHidesEverySecret(t *testing.T) {
	c, err := Parse([]byte(`{
		"redis": {"host": "cache", "password": "redis-pw-1", "url": "rediss://default:redis-pw-2@cache:6380/0"},
		"enhancedClient": {"connectionString": "postgresql://audit:db-pw-3@db:5432/audit?sslmode=require&password=db-pw-4"},
		"security": {"encryptionKey": "hmac-key-5-of-at-least-32-characters!!",
			"checkpoint": {"signingKey": "PRIVATE+KEY+audit.test/log+0a1b2c3d+AQ13-signing-key-13+xyz"}},
		"http": {"apiKeys": ["ingest-key-6-0123456789", "ingest-key-7-0123456789"]},
		"monitoring": {"notification": {"enabled": true, "provider": "webhook", "url": "https://hooks/x?token=url-token-8",
			"credentials": {"secret": "notify-secret-9-0123456789"},
			"webhooks": [{"name": "soc", "url": "https://u:hook-pw-10@soc/h", "secret": "hook-secret-11-0123456789"}]}},
		"observability": {"tracing": {"exporterEndpoint": "https://collector/v1/traces", "headers": {"x-api-key": "otlp-key-12"}}}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	before, _ := json.Marshal(c)
	m := c.Masked()
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"redis-pw-1", "redis-pw-2", "db-pw-3", "db-pw-4", "hmac-key-5", "ingest-key-6", "ingest-key-7",
		"url-token-8", "notify-secret-9", "hook-pw-10", "hook-secret-11", "otlp-key-12", "signing-key-13"} {
		if strings.Contains(string(out), secret) {
			t.Errorf("masked config shows %s: %s", secret, out)
		}
	}
	if *m.Redis.Password != "***" || m.Security.EncryptionKey != "***" || len(m.HTTP.APIKeys) != 2 || m.HTTP.APIKeys[1] != "***" ||
		m.Redis.URL != "rediss://default:***@cache:6380/0" ||
		m.EnhancedClient.ConnectionString != "postgresql://audit:***@db:5432/audit?sslmode=require&password=***" {
		t.Errorf("masked = %s", out)
	}
	if after, _ := json.Marshal(c); string(after) != string(before) {
		t.Errorf("Masked changed the original:\n%s\n%s", before, after)
	}
	// Nothing to hide stays as it is: no password, no key.
	d := Default().Masked()
	if d.Redis.Password != nil || d.Security.EncryptionKey != "" || d.HTTP.APIKeys != nil {
		t.Errorf("default masked = %+v", d)
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"nothing secret", "postgres://audit@db:5432/audit?sslmode=require", "postgres://audit@db:5432/audit?sslmode=require"},
		{"plain text", "connection refused", "connection refused"},
		{"note private key", "bad key PRIVATE+KEY+audit.test/log+0a1b2c3d+AQsecret/+= here", "bad key *** here"},
		{"empty", "", ""},
		{"user-info password", "postgresql://audit:s3cret@db:5432/audit", "postgresql://audit:***@db:5432/audit"},
		{"password with @ and :", "postgres://audit:p@ss:w@db/audit", "postgres://audit:***@db/audit"},
		{"user without password", "postgres://audit@db/audit", "postgres://audit@db/audit"},
		{"query password", "postgres://db/audit?password=qpw&sslmode=require", "postgres://db/audit?password=***&sslmode=require"},
		{"query sslpassword", "postgres://db/audit?sslmode=verify-full&sslpassword=kpw", "postgres://db/audit?sslmode=verify-full&sslpassword=***"},
		{"percent-encoded name", "postgres://db/audit?pass%77ord=epw", "postgres://db/audit?pass%77ord=***"},
		{"upper-case name", "postgres://db/audit?PASSWORD=upw", "postgres://db/audit?PASSWORD=***"},
		{"undecodable name", "postgres://db/audit?pass%zzword=xpw", "postgres://db/audit?pass%zzword=***"},
		{"every secret name", "https://h/p?passwd=1&pwd=2&secret=3&token=4&key=5&access_key=6&secret_access_key=7&sslkey=8&api-key=9&X-Amz-Security-Token=10&X-Amz-Signature=11&sslkeylogfile=12",
			"https://h/p?passwd=***&pwd=***&secret=***&token=***&key=***&access_key=***&secret_access_key=***&sslkey=***&api-key=***&X-Amz-Security-Token=***&X-Amz-Signature=***&sslkeylogfile=***"},
		{"fragment kept", "https://h/p?token=t#section", "https://h/p?token=***#section"},
		{"empty value kept", "postgres://db/a?password=&sslmode=disable", "postgres://db/a?password=&sslmode=disable"},
		{"redis URL", "rediss://default:rpw@cache:6380/0", "rediss://default:***@cache:6380/0"},
		{"redis URL, password only", "redis://:rpw@cache:6379", "redis://:***@cache:6379"},
		{"S3 endpoint with credentials", "http://AKIAEXAMPLE:s3-secret@minio:9000", "http://AKIAEXAMPLE:***@minio:9000"},
		{"keyword/value DSN", "host=db user=audit password=kvpw dbname=audit sslmode=require",
			"host=db user=audit password=*** dbname=audit sslmode=require"},
		{"keyword/value DSN, quoted", `host=db password='a b\' c' sslpassword = "d e" port=5432`, `host=db password=*** sslpassword = *** port=5432`},
		{"error quoting a URL", "cannot parse `postgres://u:epw@db/a?sslpassword=spw`: bad port",
			"cannot parse `postgres://u:***@db/a?sslpassword=***`: bad port"},
		{"error quoting a URL in quotes", `dial "redis://u:rpw@cache:6379/0": refused`, `dial "redis://u:***@cache:6379/0": refused`},
		{"several URLs", "from postgres://a:p1@x/d to postgres://b:p2@y/d", "from postgres://a:***@x/d to postgres://b:***@y/d"},
		{"URL assigned to a secret", "token=https://user@host/x and more", "token=*** and more"},
		{"JSON member", `{"user":"audit","password":"jpw","db_password": "j2"}`, `{"user":"audit","password":"***","db_password": "***"}`},
		{"non-secret pairs kept", "sslmode=require idempotencyKey=k1 monkey=banana", "sslmode=require idempotencyKey=k1 monkey=banana"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Redact(tc.in); got != tc.want {
				t.Errorf("Redact(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestIsSecretName(t *testing.T) {
	for name, want := range map[string]bool{
		"password": true, "sslpassword": true, "passwd": true, "pwd": true, "secret": true, "token": true,
		"key": true, "access_key": true, "secret_access_key": true, "sslkey": true, "SSLKEY": true,
		"x-api-key": true, "client_secret": true, "X-Amz-Security-Token": true, "Authorization": true,
		"DB_PASSWORD": true, "redis.password": true,
		"sslmode": false, "user": false, "host": false, "idempotencyKey": false, "keyPrefix": false, "": false,
	} {
		if got := IsSecretName(name); got != want {
			t.Errorf("IsSecretName(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRedactErrorKeepsTheChain(t *testing.T) {
	cause := errors.New("refused")
	err := RedactError(fmt.Errorf("connect postgres://u:epw@db/a: %w", cause))
	if err.Error() != "connect postgres://u:***@db/a: refused" || !errors.Is(err, cause) {
		t.Errorf("RedactError = %q (Is cause: %v)", err, errors.Is(err, cause))
	}
	if RedactError(nil) != nil {
		t.Error("RedactError(nil) is not nil")
	}
	if plain := errors.New("plain"); RedactError(plain) != plain {
		t.Error("an error without secrets was wrapped")
	}
}

func TestUnsetVariableInAnOddKeyNamesItsField(t *testing.T) {
	lookup := func(string) (string, bool) { return "", false }
	_, probs, err := resolveEnvRefs([]byte(`{"":{"":"${A}"},"redis":{"a.b":["${B}"]}}`), lookup)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range probs {
		got[p.Field] = true
	}
	if len(probs) != 2 || !got[`[""][""]`] || !got[`redis["a.b"][0]`] {
		t.Fatalf("problems %+v, want fields [\"\"][\"\"] and redis[\"a.b\"][0]", probs)
	}
}
