package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/smartlogs/audit-worker/config"
)

// redactingHandler hands every record to next with its secrets hidden by
// config.Redact: the message, string values, errors, Stringers and string
// lists, in groups too; an attribute whose key names a secret (password,
// token, …) is masked whole. Drivers and SDKs quote connection strings in
// their errors, and a log line must never carry a password, whoever wrote it.
type redactingHandler struct{ next slog.Handler }

func (h redactingHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

func (h redactingHandler) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, config.Redact(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	redacted := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		redacted[i] = redactAttr(a)
	}
	return redactingHandler{next: h.next.WithAttrs(redacted)}
}

func (h redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{next: h.next.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	if v.Kind() != slog.KindGroup && config.IsSecretName(a.Key) {
		return slog.String(a.Key, config.Mask)
	}
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, config.Redact(v.String()))
	case slog.KindGroup:
		group := v.Group()
		redacted := make([]any, len(group))
		for i, g := range group {
			redacted[i] = redactAttr(g)
		}
		return slog.Group(a.Key, redacted...)
	case slog.KindAny:
		switch t := v.Any().(type) {
		case error:
			return slog.String(a.Key, config.Redact(t.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, config.Redact(t.String()))
		case []string:
			redacted := make([]string, len(t))
			for i, s := range t {
				redacted[i] = config.Redact(s)
			}
			return slog.Any(a.Key, redacted)
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}
