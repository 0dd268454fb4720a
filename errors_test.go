package audit

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"
)

func TestErrorfPrintsEachCauseOnceAndKeepsThemAll(t *testing.T) {
	err := Errorf(CodeUnavailable, "store batch: %w (then %w)", io.ErrUnexpectedEOF, os.ErrDeadlineExceeded)
	msg := err.Error()
	if want := "unavailable: store batch: unexpected EOF (then i/o timeout)"; msg != want {
		t.Errorf("Error() = %q, want %q", msg, want)
	}
	if strings.Count(msg, io.ErrUnexpectedEOF.Error()) != 1 {
		t.Errorf("the cause is printed more than once: %q", msg)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("errors.Is does not reach both causes")
	}
	if ErrorCode(err) != CodeUnavailable || !IsTransient(err) {
		t.Errorf("code = %q", ErrorCode(err))
	}
}

func TestErrorfWithoutCause(t *testing.T) {
	err := Errorf(CodeNotFound, "alert %d: no such alert", 7)
	if got, want := err.Error(), "not_found: alert 7: no such alert"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if errors.Unwrap(err) != nil {
		t.Error("an error without a cause unwraps to something")
	}
}

func TestWrap(t *testing.T) {
	if Wrap(CodeInvalid, "x", nil) != nil {
		t.Fatal("Wrap(nil) is not nil")
	}
	var pathErr *os.PathError
	cause := &os.PathError{Op: "open", Path: "/x", Err: os.ErrNotExist}
	err := Wrap(CodeUnavailable, "open store", cause)
	if got, want := err.Error(), "unavailable: open store: open /x: file does not exist"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.As(err, &pathErr) || !errors.Is(err, os.ErrNotExist) {
		t.Error("errors.As/Is do not reach the cause")
	}
	// A domain error wrapped by fmt keeps its code.
	if ErrorCode(errors.Join(errors.New("other"), err)) != CodeUnavailable {
		t.Error("code lost through errors.Join")
	}
}
