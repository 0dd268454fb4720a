package config

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Secrets reach the configuration in two ways: as ${NAME} references resolved
// from the environment when the file is parsed, or in a file encrypted in the
// original's local secure-storage format (docs/compatibility.md). Either way
// they are never logged: Masked returns a copy fit for logs and `config show`,
// and Redact hides the secrets inside any text — a URL, a connection string, a
// message.

// The environment variables that hold the key of an encrypted configuration,
// as in the original: a password and a hex salt, stretched with PBKDF2.
const (
	PasswordEnv = "AUDIT_CONFIG_PASSWORD"
	SaltEnv     = "AUDIT_CONFIG_SALT"
)

// The original's key derivation and cipher. The iteration count is fixed by the
// files it wrote; a different count would derive a different key.
const (
	kdfIterations  = 100000
	keyBytes       = 32
	ivBytes        = 16 // the original's random IV length (GCM accepts any)
	tagBytes       = 16
	algorithmName  = "AES-256-GCM"
	envRefExprBody = `\$\{([A-Za-z_][A-Za-z0-9_]*)\}`
)

// envRefExpr is the whole-value ${NAME} form; schema.json uses the same expression.
const envRefExpr = `^` + envRefExprBody + `$`

var envRefPattern = regexp.MustCompile(envRefExpr)

// ErrDecryptionFailed is returned when an encrypted configuration does not
// authenticate: a wrong password or salt, or an altered file.
var ErrDecryptionFailed = errors.New("GCM authentication failed: wrong " + PasswordEnv + " or " + SaltEnv + ", or the file was altered")

// resolveEnvRefs decodes a document, replaces every string value that is
// exactly ${NAME} by the variable NAME, and encodes it again. A variable that
// is not set is a problem of the field that refers to it; the field keeps the
// literal reference.
func resolveEnvRefs(data []byte, lookup func(string) (string, bool)) ([]byte, []Problem, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber() // keeps numbers exactly as written through the round trip
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return nil, nil, fmt.Errorf("parse config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, errors.New("parse config: unexpected data after the JSON document")
	}
	if _, ok := doc.(map[string]any); !ok {
		return nil, nil, errors.New("parse config: the configuration must be a JSON object")
	}
	var probs []Problem
	var walk func(v any, path string) any
	walk = func(v any, path string) any {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				v[k] = walk(e, memberPath(path, k))
			}
		case []any:
			for i, e := range v {
				v[i] = walk(e, path+"["+strconv.Itoa(i)+"]")
			}
		case string:
			if m := envRefPattern.FindStringSubmatch(v); m != nil {
				if val, ok := lookup(m[1]); ok {
					return val
				}
				probs = append(probs, Problem{Field: path, Rule: "environment variable " + m[1] + " is not set"})
			}
		}
		return v
	}
	walk(doc, "")
	out, err := json.Marshal(doc)
	if err != nil {
		return nil, nil, fmt.Errorf("parse config: %w", err)
	}
	return out, probs, nil
}

// memberPath names member key of the object at path as the problems name
// fields ("redis.host"); a key that is not a plain name (empty, or with dots,
// spaces or brackets) is quoted (`worker[""]`), so that no problem names an
// empty or misleading field.
func memberPath(path, key string) string {
	if !plainKey.MatchString(key) {
		return path + "[" + strconv.Quote(key) + "]"
	}
	if path == "" {
		return key
	}
	return path + "." + key
}

var plainKey = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// encryptedDocument is the original's secure-storage file: AES-GCM over the
// JSON text, everything hex, the tag apart from the ciphertext, no AAD.
type encryptedDocument struct {
	Algorithm string `json:"algorithm"`
	IV        string `json:"iv"`
	Data      string `json:"data"`
	AuthTag   string `json:"authTag"`
}

// IsEncrypted reports whether a document has the shape of an encrypted
// configuration: a JSON object with string fields iv and data, or with data
// alone (the original's KMS mode, which DecryptDocument refuses). No
// configuration section is called iv or data, so the shape is unambiguous.
func IsEncrypted(data []byte) bool {
	var fields map[string]json.RawMessage
	if json.Unmarshal(data, &fields) != nil {
		return false
	}
	isString := func(name string) bool {
		raw, ok := fields[name]
		return ok && len(raw) > 0 && raw[0] == '"'
	}
	return isString("data") && (isString("iv") || len(fields) == 1)
}

// EncryptDocument encrypts a configuration in the original's local
// secure-storage format: key = PBKDF2-HMAC-SHA256(password, salt, 100000
// iterations, 32 bytes), AES-256-GCM with a random 16-byte IV and no AAD,
// written as {"algorithm":"AES-256-GCM","iv":hex,"data":hex,"authTag":hex}.
func EncryptDocument(plain []byte, password string, salt []byte) ([]byte, error) {
	gcm, err := newGCM(password, salt)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, ivBytes)
	if _, err := rand.Read(iv); err != nil {
		return nil, fmt.Errorf("encrypt config: %w", err)
	}
	sealed := gcm.Seal(nil, iv, plain, nil)
	ct, tag := sealed[:len(sealed)-tagBytes], sealed[len(sealed)-tagBytes:]
	out, err := json.Marshal(encryptedDocument{
		Algorithm: algorithmName,
		IV:        hex.EncodeToString(iv),
		Data:      hex.EncodeToString(ct),
		AuthTag:   hex.EncodeToString(tag),
	})
	if err != nil {
		return nil, fmt.Errorf("encrypt config: %w", err)
	}
	return append(out, '\n'), nil
}

// DecryptDocument decrypts a document written by EncryptDocument or by the
// original's secure storage. A wrong password or salt gives ErrDecryptionFailed.
func DecryptDocument(doc []byte, password string, salt []byte) ([]byte, error) {
	return openDocument(doc, func() (cipher.Block, error) { return newBlock(password, salt) })
}

// openDocument decrypts a document with the cipher block derives, which it
// calls only once the document's form is right: the key derivation costs
// 100,000 rounds of PBKDF2.
func openDocument(doc []byte, derive func() (cipher.Block, error)) ([]byte, error) {
	var enc encryptedDocument
	if err := json.Unmarshal(doc, &enc); err != nil {
		return nil, fmt.Errorf("decrypt config: %w", err)
	}
	if enc.IV == "" && enc.AuthTag == "" && enc.Algorithm == "" {
		return nil, errors.New("decrypt config: the file is encrypted with a KMS (Infisical), which is not supported; use the local AES-256-GCM format")
	}
	if !strings.EqualFold(enc.Algorithm, algorithmName) {
		return nil, fmt.Errorf("decrypt config: algorithm %q is not supported (only %s)", enc.Algorithm, algorithmName)
	}
	iv, err1 := hex.DecodeString(enc.IV)
	ct, err2 := hex.DecodeString(enc.Data)
	tag, err3 := hex.DecodeString(enc.AuthTag)
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("decrypt config: iv, data and authTag must be hex: %w", err)
	}
	if len(tag) != tagBytes {
		return nil, fmt.Errorf("decrypt config: authTag must be %d bytes (is %d)", tagBytes, len(tag))
	}
	if len(iv) == 0 {
		return nil, errors.New("decrypt config: iv is empty")
	}
	block, err := derive()
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
	if err != nil {
		return nil, fmt.Errorf("decrypt config: %w", err)
	}
	plain, err := gcm.Open(nil, iv, append(ct, tag...), nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt config: %w", ErrDecryptionFailed)
	}
	return plain, nil
}

func newGCM(password string, salt []byte) (cipher.AEAD, error) {
	block, err := newBlock(password, salt)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCMWithNonceSize(block, ivBytes)
	if err != nil {
		return nil, fmt.Errorf("config cipher: %w", err)
	}
	return gcm, nil
}

func newBlock(password string, salt []byte) (cipher.Block, error) {
	if password == "" {
		return nil, errors.New("config encryption: the password is empty (set " + PasswordEnv + ")")
	}
	if len(salt) == 0 {
		// The original fell back to a random salt, which made its files
		// undecryptable after a restart; a missing salt is an error here.
		return nil, errors.New("config encryption: the salt is empty (set " + SaltEnv + " to hex, e.g. openssl rand -hex 32)")
	}
	key, err := pbkdf2.Key(sha256.New, password, salt, kdfIterations, keyBytes)
	if err != nil {
		return nil, fmt.Errorf("config encryption: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("config encryption: %w", err)
	}
	return block, nil
}

// KeyMaterialFromEnv returns the password and the hex-decoded salt of an
// encrypted configuration from AUDIT_CONFIG_PASSWORD and AUDIT_CONFIG_SALT.
func KeyMaterialFromEnv() (password string, salt []byte, err error) {
	return keyMaterial(os.LookupEnv)
}

func keyMaterial(lookup func(string) (string, bool)) (string, []byte, error) {
	password, _ := lookup(PasswordEnv)
	if password == "" {
		return "", nil, errors.New(PasswordEnv + " is not set (the password of encrypted configurations)")
	}
	saltHex, _ := lookup(SaltEnv)
	if saltHex == "" {
		return "", nil, errors.New(SaltEnv + " is not set (the hex salt of encrypted configurations, e.g. from openssl rand -hex 32)")
	}
	salt, err := hex.DecodeString(saltHex)
	if err != nil {
		return "", nil, fmt.Errorf("%s must be hex: %w", SaltEnv, err)
	}
	return password, salt, nil
}

// Masked returns a copy of the configuration with every secret — passwords,
// keys, API keys and the secrets inside URLs (see Redact) — replaced by ***,
// for logs and `config show`. The receiver is not changed.
func (c Config) Masked() Config {
	m := c
	if c.Redis.Password != nil && *c.Redis.Password != "" {
		s := Mask
		m.Redis.Password = &s
	}
	m.Redis.URL = Redact(c.Redis.URL)
	m.Redis.ClusterNodes = slices.Clone(c.Redis.ClusterNodes)
	m.EnhancedClient.ConnectionString = Redact(c.EnhancedClient.ConnectionString)
	if c.Security.EncryptionKey != "" {
		m.Security.EncryptionKey = Mask
	}
	if k := c.Security.Checkpoint.SigningKey; k != "" && !strings.HasPrefix(k, "file:") {
		m.Security.Checkpoint.SigningKey = Mask
	}
	if c.HTTP.APIKeys != nil {
		m.HTTP.APIKeys = make([]string, len(c.HTTP.APIKeys))
		for i := range m.HTTP.APIKeys {
			m.HTTP.APIKeys[i] = Mask
		}
	}
	if c.HTTP.Keys != nil {
		m.HTTP.Keys = make([]KeyConfig, len(c.HTTP.Keys))
		for i, k := range c.HTTP.Keys {
			k.Key, k.Organizations = Mask, slices.Clone(k.Organizations)
			m.HTTP.Keys[i] = k
		}
	}
	if c.HTTP.OIDC != nil {
		o := *c.HTTP.OIDC
		o.RoleMapping = maps.Clone(o.RoleMapping)
		m.HTTP.OIDC = &o
	}
	m.HTTP.RateLimits.PerPrincipal = maps.Clone(c.HTTP.RateLimits.PerPrincipal)
	m.HTTP.RateLimits.PerRole = maps.Clone(c.HTTP.RateLimits.PerRole)
	if c.ReliableProcessor.MaxStalledCount != nil {
		n := *c.ReliableProcessor.MaxStalledCount
		m.ReliableProcessor.MaxStalledCount = &n
	}
	if c.Monitoring.Notification.Credentials.Secret != "" {
		m.Monitoring.Notification.Credentials.Secret = Mask
	}
	m.Monitoring.Notification.URL = maskWebhookQuery(c.Monitoring.Notification.URL)
	if c.Monitoring.Notification.Webhooks != nil {
		m.Monitoring.Notification.Webhooks = make([]Webhook, len(c.Monitoring.Notification.Webhooks))
		for i, w := range c.Monitoring.Notification.Webhooks {
			w.Secret, w.URL = Mask, maskWebhookQuery(w.URL)
			w.Organizations = slices.Clone(w.Organizations)
			m.Monitoring.Notification.Webhooks[i] = w
		}
	}
	m.Monitoring.PatternDetection.OrganizationTimeZones = maps.Clone(c.Monitoring.PatternDetection.OrganizationTimeZones)
	if c.Compliance.Reports != nil { // webhook secrets, and tokens in destination URLs
		m.Compliance.Reports = make([]ScheduledReport, len(c.Compliance.Reports))
		for i, r := range c.Compliance.Reports {
			if r.Secret != "" {
				r.Secret = Mask
			}
			if strings.HasPrefix(r.Destination, "http") {
				r.Destination = maskWebhookQuery(r.Destination)
			}
			r.Organizations = slices.Clone(r.Organizations)
			m.Compliance.Reports[i] = r
		}
	}
	if c.Observability.Tracing.Headers != nil { // export headers carry API keys
		m.Observability.Tracing.Headers = make(map[string]string, len(c.Observability.Tracing.Headers))
		for k := range c.Observability.Tracing.Headers {
			m.Observability.Tracing.Headers[k] = Mask
		}
	}
	m.Observability.Tracing.ExporterEndpoint = Redact(c.Observability.Tracing.ExporterEndpoint)
	return m
}

// maskWebhookQuery redacts a webhook URL and then hides its whole query:
// webhook services put their tokens under names of their own choosing.
func maskWebhookQuery(raw string) string {
	redacted := Redact(raw)
	if base, _, ok := strings.Cut(redacted, "?"); ok {
		return base + "?" + Mask
	}
	return redacted
}

// Mask is what Redact and Masked put in place of a secret.
const Mask = "***"

var (
	// urlPattern finds URLs in text. Quotes, backquotes and angle brackets
	// end one: messages put them around the URLs they quote.
	urlPattern = regexp.MustCompile("[A-Za-z][A-Za-z0-9+.-]*://[^\\s\"'`<>]*")
	// pairPattern finds key=value pairs, as in libpq's keyword/value
	// connection strings (host=db password='a b'): the value is quoted, or
	// runs to the next space.
	pairPattern = regexp.MustCompile(`([A-Za-z0-9_.%-]+)(\s*=\s*)('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S*)`)
	// jsonPairPattern finds "key": "value" members of a JSON text.
	jsonPairPattern = regexp.MustCompile(`"([^"\\]{1,64})"(\s*:\s*)"((?:[^"\\]|\\.)*)"`)
	// assignedURLPattern: a text that ends in "secret=" makes the URL after it the secret.
	assignedURLPattern = regexp.MustCompile(`([A-Za-z0-9_.%-]+)\s*=\s*['"]?$`)
)

// Redact returns text with every secret it can recognise replaced by ***. It
// takes a URL, a connection string, or any text that quotes them, such as an
// error message, and hides:
//
//   - the password of a URL's user information (scheme://user:password@host),
//     whatever the scheme: PostgreSQL, Redis, S3 endpoints, webhooks;
//   - the value of a URL query parameter whose name, percent-decoded, is a
//     secret's (see IsSecretName): password=, sslpassword=, pass%77ord=, token=…
//     A name that cannot be decoded is treated as a secret's;
//   - the value of a key=value pair outside URLs whose key is a secret's, as in
//     libpq's keyword/value form (host=db password='a b' sslmode=require);
//   - the value of a JSON member whose name is a secret's ("password": "…");
//   - a signed-note private key (PRIVATE+KEY+name+hash+key), wherever it is.
//
// Everything else is kept byte for byte, so the result still says which host,
// database and options were meant. Where the boundaries of a secret are
// ambiguous, Redact hides more rather than less.
func Redact(text string) string {
	if strings.Contains(text, notePrivateKeyPrefix) {
		text = notePrivateKeyPattern.ReplaceAllString(text, Mask)
	}
	if !strings.Contains(text, "://") && !strings.Contains(text, "=") && !strings.Contains(text, `"`) {
		return text
	}
	var b strings.Builder
	b.Grow(len(text))
	last := 0
	for _, loc := range urlPattern.FindAllStringIndex(text, -1) {
		before := text[last:loc[0]]
		b.WriteString(redactPairs(before))
		if m := assignedURLPattern.FindStringSubmatch(before); m != nil && IsSecretName(m[1]) {
			b.WriteString(Mask) // password=scheme://…: the whole URL is the secret
		} else {
			b.WriteString(redactURL(text[loc[0]:loc[1]]))
		}
		last = loc[1]
	}
	b.WriteString(redactPairs(text[last:]))
	return b.String()
}

// notePrivateKeyPrefix starts a signed-note private key, such as the
// checkpoint signing key; the pattern takes the key to its end.
const notePrivateKeyPrefix = "PRIVATE+KEY+"

var notePrivateKeyPattern = regexp.MustCompile(`PRIVATE\+KEY\+[^\s"'<>]+`)

// RedactError returns err with its message redacted (see Redact); errors.Is
// and errors.As still reach every cause. Nil stays nil.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if redacted := Redact(msg); redacted != msg {
		return &redactedError{msg: redacted, err: err}
	}
	return err
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// redactURL hides the user-information password and the secret query values
// of one URL.
func redactURL(u string) string {
	i := strings.Index(u, "://")
	head, rest := u[:i+3], u[i+3:]
	end := strings.IndexAny(rest, "?#")
	if end < 0 {
		end = len(rest)
	}
	authority, tail := rest[:end], rest[end:]
	// The last @ ends the user information: a password may hold a raw @.
	// An @ further on in the path makes this hide too much, never too little.
	if at := strings.LastIndex(authority, "@"); at >= 0 {
		if user, _, ok := strings.Cut(authority[:at], ":"); ok && !strings.Contains(user, "/") {
			authority = user + ":" + Mask + authority[at:]
		}
	}
	if query, ok := strings.CutPrefix(tail, "?"); ok {
		query, fragment, hasFragment := strings.Cut(query, "#")
		tail = "?" + redactQuery(query)
		if hasFragment {
			tail += "#" + fragment
		}
	}
	return head + authority + tail
}

// redactQuery hides the values of secret parameters. The query is edited in
// place rather than re-encoded, which would reorder it and escape the mask.
func redactQuery(query string) string {
	params := strings.Split(query, "&")
	for i, p := range params {
		key, value, ok := strings.Cut(p, "=")
		if !ok || value == "" {
			continue
		}
		if name, err := url.QueryUnescape(key); err != nil || IsSecretName(name) {
			params[i] = key + "=" + Mask
		}
	}
	return strings.Join(params, "&")
}

// redactPairs hides the values of secret key=value pairs and JSON members in
// text that holds no URL.
func redactPairs(text string) string {
	if strings.Contains(text, "=") {
		text = pairPattern.ReplaceAllStringFunc(text, func(pair string) string {
			m := pairPattern.FindStringSubmatch(pair)
			if m[3] == "" || !isSecretKey(m[1]) {
				return pair
			}
			return m[1] + m[2] + Mask
		})
	}
	if strings.Contains(text, `"`) {
		text = jsonPairPattern.ReplaceAllStringFunc(text, func(member string) string {
			m := jsonPairPattern.FindStringSubmatch(member)
			if m[3] == "" || !IsSecretName(m[1]) {
				return member
			}
			return `"` + m[1] + `"` + m[2] + `"` + Mask + `"`
		})
	}
	return text
}

// isSecretKey is IsSecretName for a key that may be percent-encoded.
func isSecretKey(key string) bool {
	name, err := url.QueryUnescape(key)
	return err != nil || IsSecretName(name)
}

// secretNames are names whose value is a secret, lower-cased without - _ or
// dots; secretSuffixes make any name ending in them one (db_password,
// x-auth-token, client_secret, aws_secret_access_key).
var (
	secretNames = []string{
		"password", "passwd", "pwd", "pass", "secret", "token", "key", "auth", "authorization",
		"sig", "signature", "credential", "credentials", "sslpassword", "sslkey",
	}
	secretSuffixes = []string{
		"password", "passwd", "secret", "token", "apikey", "accesskey", "secretkey",
		"privatekey", "signature", "credential", "credentials",
	}
)

// IsSecretName reports whether a parameter, field or attribute of this name
// holds a secret: password, sslpassword, passwd, pwd, secret, token, key,
// access_key, secret_access_key, sslkey (and sslkey…), api_key, and any name
// ending in password, secret, token, api key, access key, secret key, private
// key, signature or credential(s), in any case and with - _ or . anywhere.
func IsSecretName(name string) bool {
	n := strings.Map(func(r rune) rune {
		switch r {
		case '-', '_', '.', ' ':
			return -1
		}
		return unicode.ToLower(r)
	}, name)
	if n == "" {
		return false
	}
	if slices.Contains(secretNames, n) || strings.HasPrefix(n, "sslkey") {
		return true
	}
	for _, s := range secretSuffixes {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}
