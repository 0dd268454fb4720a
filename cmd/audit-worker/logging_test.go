package main

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// Every way a value reaches a log line goes through the redactor.
func TestRedactingHandler(t *testing.T) {
	for _, tc := range []struct {
		name   string
		log    func(*slog.Logger)
		secret string
		keep   string // what must still be there
	}{
		{"message", func(l *slog.Logger) { l.Info("connecting to postgres://u:msg-pw@db/a") }, "msg-pw", "postgres://u:***@db/a"},
		{"string", func(l *slog.Logger) { l.Info("x", "store", "postgres://db/a?password=str-pw") }, "str-pw", "password=***"},
		{"error", func(l *slog.Logger) { l.Error("x", "err", errors.New("dial redis://:err-pw@cache:6379: refused")) }, "err-pw", "refused"},
		{"secret key", func(l *slog.Logger) { l.Info("x", "password", "key-pw", "token", 42) }, "key-pw", `"password":"***"`},
		{"group", func(l *slog.Logger) { l.Info("x", slog.Group("db", "url", "postgres://u:grp-pw@db/a")) }, "grp-pw", `"db":{"url"`},
		{"string list", func(l *slog.Logger) { l.Info("x", "urls", []string{"https://h/?token=list-pw"}) }, "list-pw", "token=***"},
		{"stringer", func(l *slog.Logger) { l.Info("x", "src", stringer("s3://b/k (endpoint http://a:str-pw@h)")) }, "str-pw", "endpoint http://a:***@h"},
		{"with attrs", func(l *slog.Logger) { l.With("dsn", "host=db password=with-pw").Info("x") }, "with-pw", "host=db password=***"},
		{"with group", func(l *slog.Logger) { l.WithGroup("g").Info("x", "dsn", "sslpassword=wg-pw") }, "wg-pw", `"g":{"dsn":"sslpassword=***"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			tc.log(slog.New(redactingHandler{next: slog.NewJSONHandler(&out, nil)}))
			if strings.Contains(out.String(), tc.secret) || !strings.Contains(out.String(), tc.keep) {
				t.Errorf("log line %s: must hide %q and keep %q", out.String(), tc.secret, tc.keep)
			}
		})
	}
}

type stringer string

func (s stringer) String() string { return string(s) }
