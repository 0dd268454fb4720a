package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/internal/testenv"
)

// runCLI runs the root command as an operator would, with stdin in.
func runCLI(t *testing.T, in string, args ...string) (stdout string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := newRootCommand()
	cmd.SetArgs(args)
	cmd.SetIn(strings.NewReader(in))
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	err = cmd.Execute()
	return out.String(), err
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

var seedConfig = filepath.Join("..", "..", "config", "testdata", "seed-readme.json")

func TestConfigValidateCommand(t *testing.T) {
	t.Setenv("CONFIG_PATH", "")
	out, err := runCLI(t, "", "config", "validate", seedConfig)
	if err != nil || strings.TrimSpace(out) != "valid" {
		t.Errorf("seed: %q, %v", out, err)
	}

	bad := writeFile(t, "bad.json", `{"environment":"production","redis":{"port":70000},"logging":{"level":"debug"}}`)
	out, err = runCLI(t, "", "config", "validate", bad)
	if err == nil || !strings.Contains(err.Error(), "3 broken rules") {
		t.Errorf("invalid file: err = %v", err)
	}
	want := []string{
		"redis.port: must be between 1 and 65535 (is 70000)",
		"security.encryptionKey: must be set in production",
		"logging.level: must not be debug in production",
	}
	if got := strings.Split(strings.TrimSpace(out), "\n"); len(got) != len(want) {
		t.Errorf("output:\n%s\nwant the %d rules, one per line", out, len(want))
	}
	for _, w := range want {
		if !strings.Contains(out, w+"\n") {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}

	// The default file is $CONFIG_PATH (read when the command is built), and --config wins over it.
	t.Setenv("CONFIG_PATH", bad)
	if _, err := runCLI(t, "", "config", "validate"); err == nil {
		t.Error("CONFIG_PATH not used")
	}
	if out, err := runCLI(t, "", "--config", seedConfig, "config", "validate"); err != nil || !strings.Contains(out, "valid") {
		t.Errorf("--config: %q, %v", out, err)
	}
	abs, _ := filepath.Abs(seedConfig)
	if _, err := runCLI(t, "", "config", "validate", "file://"+abs); err != nil {
		t.Errorf("file:// URL: %v", err)
	}

	t.Setenv("CONFIG_PATH", "")
	if _, err := runCLI(t, "", "config", "validate"); err == nil || !strings.Contains(err.Error(), "no configuration") {
		t.Errorf("no file: %v", err)
	}
	// An s3:// reference is read from a real S3-compatible server (versitygw).
	endpoint, bucket, ak, sk := testenv.S3(t)
	seed, err := os.ReadFile(seedConfig)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testenv.NewS3Client(endpoint, ak, sk).PutObject(context.Background(), &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("worker.json"), Body: bytes.NewReader(seed)}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ENDPOINT_URL_S3", endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", ak)
	t.Setenv("AWS_SECRET_ACCESS_KEY", sk)
	t.Setenv("AWS_REGION", testenv.S3Region)
	if out, err := runCLI(t, "", "config", "validate", "s3://"+bucket+"/worker.json"); err != nil || !strings.Contains(out, "valid") {
		t.Errorf("s3: %q, %v", out, err)
	}
	if _, err := runCLI(t, "", "config", "validate", "s3://"+bucket+"/missing.json"); err == nil {
		t.Error("missing S3 object validated")
	}
	if _, err := runCLI(t, "", "config", "validate", filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("missing file validated")
	}
}

func TestConfigShowCommand(t *testing.T) {
	t.Setenv("CONFIG_PATH", "")
	t.Setenv("AUDIT_TEST_REDIS_PASSWORD", "redis-secret-pw")
	path := writeFile(t, "worker.json", `{
		"redis": {"host": "cache", "password": "${AUDIT_TEST_REDIS_PASSWORD}"},
		"enhancedClient": {"connectionString": "postgresql://audit:db-secret-pw@db:5432/audit?sslmode=require"},
		"security": {"encryptionKey": "hmac-secret-key-of-at-least-32-characters"},
		"http": {"apiKeys": ["ingest-secret-key-0123"]}
	}`)
	out, err := runCLI(t, "", "config", "show", path)
	if err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"redis-secret-pw", "db-secret-pw", "hmac-secret-key", "ingest-secret-key"} {
		if strings.Contains(out, secret) {
			t.Errorf("config show prints %s:\n%s", secret, out)
		}
	}
	var shown config.Config
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if shown.EnhancedClient.ConnectionString != "postgresql://audit:***@db:5432/audit?sslmode=require" ||
		shown.Security.EncryptionKey != "***" || *shown.Redis.Password != "***" ||
		shown.Worker.ShutdownTimeout != 10000 || shown.Monitoring.AlertThresholds.QueueDepth != 100 || shown.Environment != "development" {
		t.Errorf("shown = %+v", shown)
	}
	if !strings.Contains(out, "\n  \"redis\": {\n") {
		t.Errorf("not indented:\n%s", out)
	}

	// No file: the embedded default.
	out, err = runCLI(t, "", "config", "show")
	if err != nil || !strings.Contains(out, `"address": "127.0.0.1:3001"`) {
		t.Errorf("embedded default: %v\n%s", err, out)
	}
	// An invalid file is not shown.
	bad := writeFile(t, "bad.json", `{"worker":{"port":0}}`)
	if _, err := runCLI(t, "", "config", "show", bad); err == nil || !strings.Contains(err.Error(), "worker.port") {
		t.Errorf("invalid file: %v", err)
	}
}

func TestConfigSchemaCommand(t *testing.T) {
	out, err := runCLI(t, "", "config", "schema")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(config.Schema()) {
		t.Error("config schema does not print the embedded schema")
	}
	var schema map[string]any
	if err := json.Unmarshal([]byte(out), &schema); err != nil || schema["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("schema: %v, $schema %v", err, schema["$schema"])
	}
}

func TestConfigEncryptCommand(t *testing.T) {
	t.Setenv("CONFIG_PATH", "")
	t.Setenv(config.PasswordEnv, "cli-test-password")
	t.Setenv(config.SaltEnv, hex.EncodeToString([]byte("cli-test-salt-16")))
	seed, err := os.ReadFile(seedConfig)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := runCLI(t, string(seed), "config", "encrypt")
	if err != nil {
		t.Fatal(err)
	}
	if !config.IsEncrypted([]byte(enc)) || strings.Contains(enc, "encryptionKey") {
		t.Fatalf("not an encrypted document:\n%s", enc)
	}
	path := writeFile(t, "worker.enc.json", enc)
	if out, err := runCLI(t, "", "config", "validate", path); err != nil || strings.TrimSpace(out) != "valid" {
		t.Errorf("validate the encrypted file: %q, %v", out, err)
	}
	out, err := runCLI(t, "", "config", "show", path)
	if err != nil || !strings.Contains(out, `"connectionString": "postgresql://user:***@localhost:5432/audit_db"`) {
		t.Errorf("show the encrypted file: %v\n%s", err, out)
	}

	t.Setenv(config.PasswordEnv, "not-the-password")
	if _, err := runCLI(t, "", "config", "validate", path); err == nil || !strings.Contains(err.Error(), "GCM authentication failed") {
		t.Errorf("wrong password: %v", err)
	}

	// An invalid configuration is refused unless --no-validate; so is encrypting twice.
	if _, err := runCLI(t, `{"worker":{"port":0}}`, "config", "encrypt"); err == nil || !strings.Contains(err.Error(), "worker.port") {
		t.Errorf("invalid input: %v", err)
	}
	if _, err := runCLI(t, `{"worker":{"port":0}}`, "config", "encrypt", "--no-validate"); err != nil {
		t.Errorf("--no-validate: %v", err)
	}
	if _, err := runCLI(t, enc, "config", "encrypt"); err == nil {
		t.Error("encrypted twice")
	}
	t.Setenv(config.SaltEnv, "")
	if _, err := runCLI(t, string(seed), "config", "encrypt"); err == nil || !strings.Contains(err.Error(), config.SaltEnv) {
		t.Errorf("no salt: %v", err)
	}
}
