package telemetry

import (
	"fmt"
	"io"
	"log/slog"
	"os"
)

// NewLogger returns a slog logger writing to w at the given level
// (debug, info, warn, error), and the level's variable, which changes the level
// of the running logger (configuration reload). Format "json" or "text"; ""
// picks text for a terminal and JSON otherwise (for log collectors).
func NewLogger(w io.Writer, level, format string) (*slog.Logger, *slog.LevelVar, error) {
	lvl := new(slog.LevelVar)
	if err := SetLevel(lvl, level); err != nil {
		return nil, nil, err
	}
	if format == "" {
		format = "json"
		if isTerminal(w) {
			format = "text"
		}
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), lvl, nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), lvl, nil
	}
	return nil, nil, fmt.Errorf("log format %q: must be json or text", format)
}

// SetLevel sets v from a level name (debug, info, warn, error).
func SetLevel(v *slog.LevelVar, level string) error {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("log level %q: %w", level, err)
	}
	v.Set(lvl)
	return nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
