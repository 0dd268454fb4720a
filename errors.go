package audit

import (
	"errors"
	"fmt"
)

// Code classifies a failure. It decides retry versus dead-letter and the HTTP status.
type Code string

const (
	CodeInvalid      Code = "invalid"      // bad input: never retried
	CodeIntegrity    Code = "integrity"    // hash or signature mismatch: never retried
	CodeUnavailable  Code = "unavailable"  // a dependency is down: retried
	CodeConflict     Code = "conflict"     // the state does not allow the operation
	CodeNotFound     Code = "not_found"    // no such thing
	CodeUnauthorized Code = "unauthorized" // missing or wrong credentials
)

// Error is a domain error that carries a Code.
type Error struct {
	Code    Code
	Message string
	Err     error // the cause, if any
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a domain error with a formatted message. A %w verb keeps the cause.
func Errorf(code Code, format string, args ...any) error {
	wrapped := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: wrapped.Error(), Err: errors.Unwrap(wrapped)}
}

// ErrorCode returns the Code of the first domain error in err's chain, or "" if none.
func ErrorCode(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// IsTransient reports whether err is worth retrying later (a dependency was unavailable).
func IsTransient(err error) bool { return ErrorCode(err) == CodeUnavailable }
