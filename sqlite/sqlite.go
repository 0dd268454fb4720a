package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/migrations"
)

// Config says where the database is and where to log.
type Config struct {
	// Path is the database file. Its directory is created if needed. The WAL
	// (Path-wal) and shared-memory (Path-shm) files live beside it.
	Path string
	// Logger receives migration and lifecycle messages; nil discards them.
	Logger *slog.Logger
	// CacheKiB is the writer connection's page cache, in KiB; 0 means
	// DefaultCacheKiB. Its cost in resident memory is several times its size.
	CacheKiB int
}

// Store is an audit.EventStore on SQLite. It is safe for concurrent use.
type Store struct {
	writer *sql.DB // exactly one connection: SQLite has one writer at a time
	reader *sql.DB // read-only connections for queries
	log    *slog.Logger
	dir    string // the database's directory, for its free space

	insertEvent      *sql.Stmt
	upsertDeadLetter *sql.Stmt

	integrator sync.Mutex // held by the tree's integrator (LockIntegrator)
}

var _ audit.EventStore = (*Store)(nil)

const (
	// busyTimeoutMillis is how long a connection waits for a lock held by another
	// connection (a reader's checkpoint, another process) before SQLITE_BUSY.
	busyTimeoutMillis = 5000
	// pageSize applies only when the database file is created. 16 KiB pages
	// measured faster than 4 KiB (the SQLite default) and no slower than 8 KiB
	// for 1,000-event batches, from an empty file up to 300,000 rows: a batch
	// makes fewer page splits and fewer (larger) WAL writes. Records (~700
	// bytes) fit many to a page.
	pageSize = 16384
	// readers is the size of the read-only pool.
	readers = 4
)

// DefaultCacheKiB is the writer connection's page cache. The indexes of a
// busy audit log are written in random order, but a page the cache misses is
// read from the OS's file cache, so a small cache costs little: 8 MiB stores
// as fast as 64 MiB up to 300,000 rows. A full cache costs about four times
// its size in resident memory, outside the Go heap (64 MiB: 236 MiB of RSS;
// 8 MiB: 37 MiB), because each 16 KiB page with its header is larger than the
// largest slot modernc.org/memory shares, so it gets a 64 KiB region of its own.
const DefaultCacheKiB = 8 << 10

// readerCacheKiB is each reader connection's page cache (SQLite's default is
// 2000 KiB): queries page through indexes once, so a large cache holds pages
// that are not read again.
const readerCacheKiB = 1 << 10

// walSizeLimit bounds the WAL file that a checkpoint leaves behind; without
// it the file keeps the largest size it ever reached.
const walSizeLimit = 64 << 20

// Open opens (creating if needed) the database at cfg.Path and brings its schema
// up to date.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Path == "" {
		return nil, audit.Errorf(audit.CodeInvalid, "open sqlite store: no database path configured")
	}
	if cfg.CacheKiB <= 0 {
		cfg.CacheKiB = DefaultCacheKiB
	}
	path, err := filepath.Abs(cfg.Path)
	if err != nil {
		return nil, audit.Errorf(audit.CodeInvalid, "open sqlite store: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, audit.Errorf(audit.CodeUnavailable, "open sqlite store: create directory: %w", err)
	}

	// Durability: synchronous=FULL makes every COMMIT wait until the WAL is
	// fsynced, so an acknowledged batch survives not only a crash of this process
	// but also an OS crash or power loss. synchronous=NORMAL would already be safe
	// against process crashes in WAL mode (a commit is in the WAL file, that is in
	// the kernel's page cache, before COMMIT returns, and the database can never
	// be corrupted), but the last commits could be lost on power failure after
	// their events were acknowledged to the producer. An audit log must not lose
	// acknowledged events, and since the store writes whole batches in one
	// transaction, the one fsync per batch costs little (see BenchmarkStoreBatch).
	//
	// _txlock=immediate takes the write lock at BEGIN, so a write transaction
	// never fails half-way with SQLITE_BUSY when upgrading from a read lock.
	writerDSN := dsn(path, url.Values{
		"_pragma": {
			"busy_timeout(" + strconv.Itoa(busyTimeoutMillis) + ")",
			"foreign_keys(1)",
			"synchronous(FULL)",
			"cache_size(-" + strconv.Itoa(cfg.CacheKiB) + ")",
			"temp_store(MEMORY)",
			// No memory-mapped reads: mapped pages of a large file would
			// count in the resident set. Explicit, whatever the build's default.
			"mmap_size(0)",
			"journal_size_limit(" + strconv.Itoa(walSizeLimit) + ")",
		},
		"_txlock": {"immediate"},
	})
	writer, err := sql.Open("sqlite", writerDSN)
	if err != nil {
		return nil, audit.Errorf(audit.CodeUnavailable, "open sqlite store %s: %w", path, err)
	}
	writer.SetMaxOpenConns(1)
	writer.SetMaxIdleConns(1)
	writer.SetConnMaxLifetime(0)
	writer.SetConnMaxIdleTime(0)

	s := &Store{writer: writer, log: log, dir: filepath.Dir(path)}
	if err := s.init(ctx, path); err != nil {
		writer.Close()
		return nil, err
	}

	// Readers are query_only: a bug in a query path cannot write behind the
	// writer's back.
	s.reader, err = sql.Open("sqlite", dsn(path, url.Values{
		"_pragma": {
			"busy_timeout(" + strconv.Itoa(busyTimeoutMillis) + ")",
			"foreign_keys(1)",
			"query_only(1)",
			"cache_size(-" + strconv.Itoa(readerCacheKiB) + ")",
			"mmap_size(0)",
		},
	}))
	if err != nil {
		writer.Close()
		return nil, audit.Errorf(audit.CodeUnavailable, "open sqlite store %s: %w", path, err)
	}
	s.reader.SetMaxOpenConns(readers)
	s.reader.SetMaxIdleConns(readers)
	if err := s.reader.PingContext(ctx); err != nil {
		s.Close()
		return nil, classify("open sqlite store: readers", err)
	}

	if s.insertEvent, err = writer.PrepareContext(ctx, insertEventSQL); err != nil {
		s.Close()
		return nil, classify("prepare insert", err)
	}
	if s.upsertDeadLetter, err = writer.PrepareContext(ctx, upsertDeadLetterSQL); err != nil {
		s.Close()
		return nil, classify("prepare dead-letter upsert", err)
	}
	log.Info("sqlite store open", "path", path)
	return s, nil
}

// dsn builds a file: URI for the driver. The path is escaped, so names with
// '?', '#' or '%' open the file they name.
func dsn(path string, params url.Values) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(path), RawQuery: params.Encode()}
	return u.String()
}

// init sets the file-level settings and applies the migrations.
func (s *Store) init(ctx context.Context, path string) error {
	conn, err := s.writer.Conn(ctx)
	if err != nil {
		return classify("open sqlite store "+path, err)
	}
	defer conn.Close()
	// page_size takes effect only on a new, empty database, and must come
	// before the switch to WAL; on an existing file it is a no-op.
	if _, err := conn.ExecContext(ctx, "PRAGMA page_size = "+strconv.Itoa(pageSize)); err != nil {
		return classify("set page size", err)
	}
	// WAL is a property of the file: set once, every later connection uses it.
	var mode string
	if err := conn.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return classify("set WAL mode", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return audit.Errorf(audit.CodeUnavailable, "open sqlite store %s: journal mode is %q, WAL could not be enabled", path, mode)
	}
	return migrate(ctx, conn, s.log)
}

//go:embed migrations/*.sql
var migrationFiles embed.FS

// loadMigrations returns the embedded migrations, migrations/NNN_name.sql, in
// version order: the version is the database's user_version once applied.
func loadMigrations() ([]migrations.Migration, error) {
	return migrations.Load(migrationFiles, "migrations")
}

// migrate applies every migration newer than the database's user_version, each
// in its own transaction together with the user_version update, so a failed
// migration leaves the schema as it was. The version is read inside the
// (immediate, hence exclusive) transaction, so two processes opening the same
// new file cannot both apply a migration.
func migrate(ctx context.Context, conn *sql.Conn, log *slog.Logger) error {
	ms, err := loadMigrations()
	if err != nil {
		return fmt.Errorf("sqlite migrations: %w", err)
	}
	for _, m := range ms {
		applied, err := applyMigration(ctx, conn, m, len(ms))
		if err != nil {
			return err
		}
		if applied {
			log.Info("sqlite migration applied", "version", m.Version, "name", m.File)
		}
	}
	return nil
}

func applyMigration(ctx context.Context, conn *sql.Conn, m migrations.Migration, latest int) (applied bool, err error) {
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return false, classify("migration "+m.File+": begin", err)
	}
	defer tx.Rollback() // no-op after Commit
	var current int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&current); err != nil {
		return false, classify("migration "+m.File+": read user_version", err)
	}
	if current > latest {
		return false, audit.Errorf(audit.CodeConflict,
			"sqlite schema version %d is newer than this binary knows (%d): refusing to use the database", current, latest)
	}
	if current >= m.Version {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
		return false, classify("migration "+m.File, err)
	}
	// user_version lives in the database header, which is written through the
	// same transaction: it commits or rolls back together with the schema change.
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(m.Version)); err != nil {
		return false, classify("migration "+m.File+": set user_version", err)
	}
	if err := tx.Commit(); err != nil {
		return false, classify("migration "+m.File+": commit", err)
	}
	return true, nil
}

// inWriteTx runs fn in a write transaction on the writer connection (BEGIN
// IMMEDIATE: it holds the write lock from the start) and commits when fn
// returns nil.
func (s *Store) inWriteTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.writer.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Ping checks that both the writer and a reader connection answer and that
// the disk has room for the next writes: on a full disk the connections still
// answer, but no batch can commit.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.writer.PingContext(ctx); err != nil {
		return classify("ping sqlite writer", err)
	}
	if err := s.reader.PingContext(ctx); err != nil {
		return classify("ping sqlite reader", err)
	}
	return s.checkDiskRoom()
}

// Close closes the statements and connections. Closing the last connection
// checkpoints the WAL into the database file.
func (s *Store) Close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.insertEvent, s.upsertDeadLetter} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	if s.reader != nil {
		errs = append(errs, s.reader.Close())
	}
	errs = append(errs, s.writer.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close sqlite store: %w", err)
	}
	return nil
}
