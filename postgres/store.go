package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	audit "github.com/smartlogs/audit-worker"
)

// Config says how to reach the database and how to run the store.
type Config struct {
	URL             string // postgres://user@host:port/db?sslmode=...
	MaxConns        int32  // pool size; 0 means pgxpool's default (max(4, CPUs))
	PartitionsAhead int    // monthly partitions kept ready after the current one; 0 means 3
	Logger          *slog.Logger
}

// Store is an audit.EventStore on PostgreSQL.
type Store struct {
	pool   *pgxpool.Pool
	ahead  int
	log    *slog.Logger
	insert insertMode
	// directAfter (Unix ns): until then insertCopy goes staged at once, as a
	// duplicate was met recently (see direct.go).
	directAfter atomic.Int64
}

var _ audit.EventStore = (*Store)(nil)

// Open connects, applies pending migrations and creates the partitions for the
// current month and the PartitionsAhead following ones, so that a store is
// ready to take events as soon as Open returns.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	return open(ctx, cfg, insertCopy)
}

func open(ctx context.Context, cfg Config, mode insertMode) (*Store, error) {
	pcfg, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, audit.Errorf(audit.CodeInvalid, "postgres: parse URL: %w", err)
	}
	if cfg.MaxConns > 0 {
		pcfg.MaxConns = cfg.MaxConns
	}
	s := &Store{ahead: cfg.PartitionsAhead, log: cfg.Logger, insert: mode}
	if s.ahead <= 0 {
		s.ahead = 3
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if mode == insertCopy || mode == insertStaged {
		prev := pcfg.AfterConnect
		pcfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
			if prev != nil {
				if err := prev(ctx, c); err != nil {
					return err
				}
			}
			_, err := c.Exec(ctx, createStageSQL)
			return err
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, wrapErr("postgres: open", err)
	}
	s.pool = pool
	if err := Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.EnsurePartitions(ctx, time.Now()); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Pool exposes the connection pool for operator tools and tests.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return wrapErr("ping", err)
	}
	return nil
}

// Close waits for borrowed connections to come back and closes them all.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// wrapErr adds context and a domain code to a database error. Data errors (the
// batch itself is wrong) are CodeInvalid and never retried; anything else —
// connection loss, resource exhaustion, shutdown, lock conflicts, a cancelled
// context, a schema that is not migrated yet — is CodeUnavailable, so that the
// pipeline retries instead of dead-lettering good events because of a server
// problem.
func wrapErr(op string, err error) error {
	code := audit.CodeUnavailable
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && isDataError(pgErr.Code) {
		code = audit.CodeInvalid
	}
	return audit.Wrap(code, op, err)
}

// recordRefusal reports whether err is the database refusing a record itself
// (a cardinality, data or integrity constraint error: a value it does not
// take, a check or a trigger that raises), and gives the database's reason.
// Such an error belongs to one record; the store isolates it instead of
// failing the batch. Duplicates never get here: the inserts skip them.
func recordRefusal(err error) (string, bool) {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || !isDataError(pgErr.Code) {
		return "", false
	}
	reason := pgErr.Message
	if pgErr.Detail != "" {
		reason += ": " + pgErr.Detail
	}
	return reason + " (SQLSTATE " + pgErr.Code + ")", true
}

// isDataError reports whether an SQLSTATE says the data is wrong, not the server.
func isDataError(code string) bool {
	if len(code) < 2 {
		return false
	}
	switch code[:2] {
	case "21", // cardinality violation
		"22", // data exception: bad JSON, out-of-range value, invalid text
		"23": // integrity constraint violation
		return true
	}
	return false
}

// isRetryable reports whether a failed transaction may simply be run again:
// it lost a deadlock or serialisation conflict against a concurrent batch.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

func invalidf(format string, args ...any) error {
	return audit.Errorf(audit.CodeInvalid, "store batch: %s", fmt.Sprintf(format, args...))
}
