package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/access"
)

// secretPart is the part of a key that nobody may see again: what follows
// awk_<id>_ (the id names the key in logs and records, by design).
func secretPart(t *testing.T, key string) string {
	t.Helper()
	_, secret, ok := audit.ParseAPIKey(key)
	if !ok {
		t.Fatalf("%q is not a key", key)
	}
	return secret
}

func randomSecretText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)[:n]
}

// createKey runs `keys create --output json` and returns the key made; the
// key must appear in the output once.
func createKey(t *testing.T, cfg string, args ...string) access.Created {
	t.Helper()
	out, logText, err := runCommand(context.Background(), append([]string{"--config", cfg, "keys", "create", "--output", "json"}, args...)...)
	if err != nil {
		t.Fatalf("keys create %v: %v\n%s", args, err, logText)
	}
	var c access.Created
	if err := json.Unmarshal([]byte(out), &c); err != nil || c.Key == "" {
		t.Fatalf("keys create output %q: %v", out, err)
	}
	if n := strings.Count(out+logText, secretPart(t, c.Key)); n != 1 {
		t.Errorf("keys create shows the key %d times, want once:\n%s%s", n, out, logText)
	}
	return c
}

// Requests with valid, wrong, revoked and expired keys and with valid and
// tampered OIDC tokens, key creation, rotation and revocation through the
// CLI and the API: no key or token reaches the worker's log (at debug
// level), the CLI's outputs (but the one that creates it), the API's key
// list, or anything the store keeps (access records, dead letters, alerts).
func TestNoCredentialLeavesTheWorker(t *testing.T) {
	dir := t.TempDir()
	iss := newAccessIssuer(t)
	cfg := accessConfig(t, dir, func(doc map[string]any) {
		doc["http"].(map[string]any)["oidc"] = map[string]any{"issuer": iss.srv.URL, "audience": "audit-worker",
			"roleMapping": map[string]string{"auditors": "auditor"}}
	})
	ctx := context.Background()
	outputs := map[string]string{} // everything that must hold no secret
	secrets := []string{accessAdminKey}
	keep := func(keys ...string) {
		for _, k := range keys {
			secrets = append(secrets, k, secretPart(t, k))
		}
	}

	valid := createKey(t, cfg, "--name", "reader", "--role", "reader", "--org", "org-a")
	revoked := createKey(t, cfg, "--name", "to revoke", "--role", "reader", "--org", "org-a")
	expiring := createKey(t, cfg, "--name", "expiring", "--role", "reader", "--org", "org-a", "--expires", "1s")
	rotated := createKey(t, cfg, "--name", "to rotate", "--role", "auditor", "--org", "org-a")
	keep(valid.Key, revoked.Key, expiring.Key, rotated.Key)
	table, logText, err := runCommand(ctx, "--config", cfg, "keys", "create", "--name", "table", "--role", "auditor", "--org", "org-a")
	if err != nil {
		t.Fatal(err)
	}
	tableKey := strings.TrimSpace(strings.SplitN(table, "\n", 2)[0])
	keep(tableKey)
	if n := strings.Count(table+logText, secretPart(t, tableKey)); n != 1 {
		t.Errorf("keys create (table) shows the key %d times, want once:\n%s", n, table)
	}
	out, logText, err := runCommand(ctx, "--config", cfg, "keys", "rotate", rotated.ID, "--output", "json")
	var newSecret access.Created
	if err != nil || json.Unmarshal([]byte(out), &newSecret) != nil {
		t.Fatalf("keys rotate: %v\n%s%s", err, out, logText)
	}
	keep(newSecret.Key)
	if strings.Count(out, secretPart(t, newSecret.Key)) != 1 || strings.Contains(out+logText, secretPart(t, rotated.Key)) {
		t.Errorf("keys rotate must show the new key once and never the old one:\n%s", out)
	}
	outputs["keys rotate: log"] = logText
	outputs["keys revoke"], outputs["keys revoke: log"], err = runCommand(ctx, "--config", cfg, "keys", "revoke", revoked.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"table", "json"} {
		list, logText, err := runCommand(ctx, "--config", cfg, "keys", "list", "--output", format)
		if err != nil || !strings.Contains(list, valid.ID) || !strings.Contains(list, revoked.ID) {
			t.Fatalf("keys list (%s): %v\n%s", format, err, list)
		}
		outputs["keys list "+format], outputs["keys list "+format+": log"] = list, logText
	}

	w := runInProcess(t, cfg)
	wrongSecret := "awk_" + valid.ID + "_" + randomSecretText(43)
	garbage := "not-a-key-" + randomSecretText(24)
	token := iss.token(t, nil)
	forged := tampered(t, token)
	secrets = append(secrets, wrongSecret, secretPart(t, wrongSecret), garbage, token, forged, strings.Split(token, ".")[2])
	time.Sleep(time.Until(*expiring.ExpiresAt))
	for _, c := range []struct {
		name, authorization, path string
		want                      int
	}{
		{"valid key", bearerHeader(valid.Key), "/v1/events", 200},
		{"valid key, forbidden route", bearerHeader(valid.Key), "/v1/keys", 403},
		{"wrong secret", bearerHeader(wrongSecret), "/v1/events", 401},
		{"not a key", bearerHeader(garbage), "/v1/events", 401},
		{"revoked key", bearerHeader(revoked.Key), "/v1/events", 401},
		{"expired key", bearerHeader(expiring.Key), "/v1/events", 401},
		{"key rotated away, within its overlap", bearerHeader(rotated.Key), "/v1/events", 200},
		{"key as Basic credentials", "Basic " + base64.StdEncoding.EncodeToString([]byte(valid.Key)), "/v1/events", 401},
		{"valid token", bearerHeader(token), "/v1/events", 200},
		{"tampered token", bearerHeader(forged), "/v1/events", 401},
		{"tampered token, admin route", bearerHeader(forged), "/v1/keys", 401},
		{"admin lists keys", bearerHeader(accessAdminKey), "/v1/keys", 200},
	} {
		code, body := w.call(t, "GET", c.path, c.authorization, "")
		if code != c.want {
			t.Errorf("%s: GET %s: %d, want %d: %s", c.name, c.path, code, c.want, body)
		}
		outputs["GET "+c.path+" with "+c.name] = body
	}
	code, body := w.call(t, "POST", "/v1/keys", bearerHeader(accessAdminKey), `{"name":"by api","role":"reader","organizations":["org-a"]}`)
	var made access.Created
	if code != http.StatusCreated || json.Unmarshal([]byte(body), &made) != nil {
		t.Fatalf("POST /v1/keys: %d %s", code, body)
	}
	keep(made.Key)
	if code, body := w.call(t, "GET", "/v1/events", bearerHeader(made.Key), ""); code != 200 {
		t.Errorf("key made through the API: %d %s", code, body)
	}
	if code, body := w.call(t, "DELETE", "/v1/keys/"+made.ID, bearerHeader(accessAdminKey), ""); code != 200 {
		t.Errorf("DELETE /v1/keys/%s: %d %s", made.ID, code, body)
	} else {
		outputs["DELETE /v1/keys"] = body
	}
	w.stop(t)
	outputs["worker log"] = w.log.String()
	for _, want := range []string{`"token refused"`, "audit worker started"} {
		if !strings.Contains(outputs["worker log"], want) {
			t.Errorf("the worker log lacks %s: it does not log what the test looks at", want)
		}
	}

	stored := storeFiles(t, filepath.Join(dir, "data"))
	for _, want := range []string{access.ActionDenied, access.ActionQuery, access.KeyAction("create"),
		access.KeyAction("revoke"), access.KeyAction("rotate"), "key:" + valid.ID, "oidc:alice"} {
		if !strings.Contains(stored, want) {
			t.Errorf("the store holds no %q: the access records the test searches are missing", want)
		}
	}
	outputs["the store's files"] = stored
	for where, text := range outputs {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				t.Errorf("%s holds a credential (%s…):\n%s", where, secret[:8], clipOutput(text, 2000))
			}
		}
	}
	t.Logf("%d credentials searched in %d outputs (log: %d bytes, store files: %d bytes)",
		len(secrets), len(outputs), len(outputs["worker log"]), len(stored))
}

// storeFiles returns the bytes of every file of the embedded store: the
// database, its WAL, everything the worker keeps there.
func storeFiles(t *testing.T, dir string) string {
	t.Helper()
	var all strings.Builder
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		all.Write(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return all.String()
}

func clipOutput(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
