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
)

// Secrets reach the configuration in two ways: as ${NAME} references resolved
// from the environment when the file is parsed, or in a file encrypted in the
// original's local secure-storage format (docs/compatibility.md). Either way they are never
// logged: Masked returns a copy fit for logs and `config show`.

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
	maskedValue    = "***"
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
				p := k
				if path != "" {
					p = path + "." + k
				}
				v[k] = walk(e, p)
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
	block, err := newBlock(password, salt)
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
// keys, API keys and the passwords inside URLs — replaced by ***, for logs and
// `config show`. The receiver is not changed.
func (c Config) Masked() Config {
	m := c
	if c.Redis.Password != nil && *c.Redis.Password != "" {
		s := maskedValue
		m.Redis.Password = &s
	}
	m.Redis.URL = maskURL(c.Redis.URL)
	m.Redis.ClusterNodes = slices.Clone(c.Redis.ClusterNodes)
	m.EnhancedClient.ConnectionString = maskURL(c.EnhancedClient.ConnectionString)
	if c.Security.EncryptionKey != "" {
		m.Security.EncryptionKey = maskedValue
	}
	if c.HTTP.APIKeys != nil {
		m.HTTP.APIKeys = make([]string, len(c.HTTP.APIKeys))
		for i := range m.HTTP.APIKeys {
			m.HTTP.APIKeys[i] = maskedValue
		}
	}
	if c.ReliableProcessor.MaxStalledCount != nil {
		n := *c.ReliableProcessor.MaxStalledCount
		m.ReliableProcessor.MaxStalledCount = &n
	}
	if c.Monitoring.Notification.Credentials.Secret != "" {
		m.Monitoring.Notification.Credentials.Secret = maskedValue
	}
	m.Monitoring.Notification.URL = maskWebhookURL(c.Monitoring.Notification.URL)
	if c.Monitoring.Notification.Webhooks != nil {
		m.Monitoring.Notification.Webhooks = make([]Webhook, len(c.Monitoring.Notification.Webhooks))
		for i, w := range c.Monitoring.Notification.Webhooks {
			w.Secret, w.URL = maskedValue, maskWebhookURL(w.URL)
			w.Organizations = slices.Clone(w.Organizations)
			m.Monitoring.Notification.Webhooks[i] = w
		}
	}
	m.Monitoring.PatternDetection.OrganizationTimeZones = maps.Clone(c.Monitoring.PatternDetection.OrganizationTimeZones)
	if c.Observability.Tracing.Headers != nil { // export headers carry API keys
		m.Observability.Tracing.Headers = make(map[string]string, len(c.Observability.Tracing.Headers))
		for k := range c.Observability.Tracing.Headers {
			m.Observability.Tracing.Headers[k] = maskedValue
		}
	}
	m.Observability.Tracing.ExporterEndpoint = maskURL(c.Observability.Tracing.ExporterEndpoint)
	return m
}

// maskWebhookURL hides a webhook URL's password and its whole query, where
// services put their tokens.
func maskWebhookURL(raw string) string {
	masked := maskURL(raw)
	if base, _, ok := strings.Cut(masked, "?"); ok {
		return base + "?" + maskedValue
	}
	return masked
}

// maskURL hides the password of a URL's user info and of any password query
// parameter (libpq accepts both). What cannot be parsed is hidden whole, since
// it may hold a password in a form this function does not know.
func maskURL(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil {
		return maskedValue
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), maskedValue)
	}
	// The query is edited in place rather than re-encoded, which would reorder
	// it and escape the mask.
	if u.RawQuery != "" {
		params := strings.Split(u.RawQuery, "&")
		for i, p := range params {
			key, _, _ := strings.Cut(p, "=")
			if k, err := url.QueryUnescape(key); err != nil || strings.Contains(strings.ToLower(k), "password") {
				params[i] = key + "=" + maskedValue
			}
		}
		u.RawQuery = strings.Join(params, "&")
	}
	// url escapes '*' in user info; the mask reads better unescaped.
	return strings.Replace(u.String(), ":%2A%2A%2A@", ":"+maskedValue+"@", 1)
}
