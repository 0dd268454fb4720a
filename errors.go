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
	CodeForbidden    Code = "forbidden"    // known credentials without the right to do this
)

// Error is a domain error: a Code that decides what the caller does, a
// message that says what failed, and the cause. It prints as
// "code: message: cause", each part once; errors.Is and errors.As reach every
// cause through it.
type Error struct {
	Code    Code
	Message string // what was being done or what is wrong, without the cause
	Err     error  // the cause, if any
}

func (e *Error) Error() string {
	switch {
	case e.Err == nil:
		return string(e.Code) + ": " + e.Message
	case e.Message == "":
		return string(e.Code) + ": " + e.Err.Error()
	default:
		return string(e.Code) + ": " + e.Message + ": " + e.Err.Error()
	}
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds a domain error with a message formatted as fmt.Errorf formats
// it: the causes named by %w verbs (one or several) stay reachable through
// errors.Is and errors.As, and each is printed once, where the format puts it.
func Errorf(code Code, format string, args ...any) error {
	formatted := fmt.Errorf(format, args...)
	if errors.Unwrap(formatted) == nil {
		if _, multi := formatted.(interface{ Unwrap() []error }); !multi {
			return &Error{Code: code, Message: formatted.Error()}
		}
	}
	return &Error{Code: code, Err: formatted}
}

// Wrap gives err a code and says what was being done when it happened;
// it returns nil for a nil err.
func Wrap(code Code, op string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Code: code, Message: op, Err: err}
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
