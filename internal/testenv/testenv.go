// Package testenv finds the services integration tests run against (PostgreSQL,
// later Redis and S3) and gives each test its own isolated piece of them.
//
// Services are found through AUDIT_TEST_POSTGRES_URL (default: the local server,
// user postgres). When a service cannot be reached the test is skipped with a
// message saying what to start, unless AUDIT_TEST_REQUIRE_SERVICES=1 (set by CI),
// in which case it fails: no integration test may skip silently there.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultPostgresURL is used when AUDIT_TEST_POSTGRES_URL is not set.
const DefaultPostgresURL = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// RequireServices reports whether unreachable services must fail tests instead of skipping them.
func RequireServices() bool { return os.Getenv("AUDIT_TEST_REQUIRE_SERVICES") == "1" }

// Unavailable skips or fails the test, depending on RequireServices.
func Unavailable(tb testing.TB, service, howToStart string, err error) {
	tb.Helper()
	msg := fmt.Sprintf("%s is not reachable (%v); start it with: %s", service, err, howToStart)
	if RequireServices() {
		tb.Fatal(msg + " (AUDIT_TEST_REQUIRE_SERVICES=1, so this fails instead of skipping)")
	}
	tb.Skip(msg)
}

// PostgresAdminURL returns the URL of the test PostgreSQL server's admin database.
func PostgresAdminURL() string {
	if u := os.Getenv("AUDIT_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return DefaultPostgresURL
}

// PostgresDatabase creates an empty database for this test, drops it when the
// test ends, and returns its connection URL.
func PostgresDatabase(tb testing.TB) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin := PostgresAdminURL()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		Unavailable(tb, "PostgreSQL", "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start", err)
	}
	defer conn.Close(context.Background())

	name := "audit_test_" + randomSuffix()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		tb.Fatalf("create test database: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			tb.Logf("drop test database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			tb.Logf("drop test database %s: %v", name, err)
		}
	})

	u, err := url.Parse(admin)
	if err != nil {
		tb.Fatalf("parse %s: %v", admin, err)
	}
	u.Path = "/" + name
	return u.String()
}

func randomSuffix() string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
