package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	audit "github.com/smartlogs/audit-worker"
)

// classify wraps err with what was being done and the domain code that decides
// whether the caller retries: anything that can go away by itself (a lock held
// too long, a full or failing disk, a closed store, a cancelled context) is
// CodeUnavailable, so the pipeline keeps the events and retries; errors that a
// retry cannot fix (a violated constraint, a value SQLite refuses) are
// CodeInvalid. Unknown errors count as transient: retrying wrongly costs time,
// dead-lettering wrongly loses the batch from the normal path.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if audit.ErrorCode(err) != "" {
		return fmt.Errorf("%s: %w", op, err)
	}
	return audit.Wrap(code(err), op, err)
}

// recordRefusal reports whether err is SQLite refusing one record (a
// constraint, a trigger's RAISE(ABORT), a type or size it does not take),
// which backs out that statement only, and gives SQLite's reason.
func recordRefusal(err error) (string, bool) {
	var se *sqlite.Error
	if err == nil || !errors.As(err, &se) || !isDataError(se.Code()) {
		return "", false
	}
	return se.Error(), true
}

// isDataError reports whether a result code says the data is wrong, not the
// database or its file.
func isDataError(code int) bool {
	switch code & 0xff { // primary code; extended codes carry detail in the high bits
	case sqlite3.SQLITE_CONSTRAINT, sqlite3.SQLITE_MISMATCH, sqlite3.SQLITE_TOOBIG,
		sqlite3.SQLITE_RANGE:
		return true
	}
	return false
}

func code(err error) audit.Code {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, sql.ErrConnDone) {
		return audit.CodeUnavailable
	}
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return audit.CodeUnavailable
	}
	if isDataError(se.Code()) {
		return audit.CodeInvalid
	}
	// SQLITE_BUSY, SQLITE_LOCKED, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN,
	// SQLITE_NOMEM, SQLITE_READONLY, SQLITE_INTERRUPT, SQLITE_PROTOCOL, ...
	// SQLITE_ERROR (e.g. "no such table") is here too: it means the schema or
	// the deployment is wrong, not the events, which must wait for the fix
	// rather than be dead-lettered.
	return audit.CodeUnavailable
}
