package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartlogs/audit-worker/config"
)

var update = flag.Bool("update", false, "rewrite docs/configuration.md from the schema")

// referencePath is docs/configuration.md, seen from this package's directory.
var referencePath = filepath.Join("..", "..", "..", "docs", "configuration.md")

// The published reference is what the schema renders to, so a change to the
// schema cannot land without its documentation.
func TestReferenceMatchesTheSchema(t *testing.T) {
	want, err := render(config.Schema())
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile(referencePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	got, err := os.ReadFile(referencePath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/configuration.md is not what config/schema.json renders to: run `go generate ./config` " +
			"(or `go test ./config/internal/gendoc -update`) and commit the result")
	}
}

// Every field of the real schema appears in the reference with its reload
// flag, so the generator cannot silently skip a part of it.
func TestReferenceListsEveryField(t *testing.T) {
	doc, err := render(config.Schema())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| `environment` | string, one of `\"development\"`, `\"staging\"`, `\"production\"`, `\"test\"` | `\"development\"` | restart |",
		"| `redis.port` | integer, 1–65535 | `6379` | restart |",
		"| `logging.level` | string, one of `\"debug\"`, `\"info\"`, `\"warn\"`, `\"error\"` | `\"info\"` | yes |",
		"| `http.apiKeys` | array of string | `[]` | yes |",
		"| `monitoring.notification.webhooks[].minSeverity` | string, one of `\"LOW\"`, `\"MEDIUM\"`, `\"HIGH\"`, `\"CRITICAL\"` | `\"LOW\"` | yes |",
		"| `reliableProcessor.maxStalledCount` | integer or null, 0–100 | `1` | restart |",
		"### monitoring.patternDetection\n",
		"- `logging.level`: Must not be debug.\n",
	} {
		if !strings.Contains(string(doc), want) {
			t.Errorf("the reference lacks %q", want)
		}
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		name    string
		schema  string
		want    []string // lines the reference must hold
		wantErr []string // parts of the error, when rendering must fail
	}{
		{
			name: "a section with a field, its range, default and reload flag",
			schema: `{"description":"The file.","properties":{"worker":{"description":"The process.","type":"object",
				"properties":{"port":{"description":"HTTP port.","type":"integer","minimum":1,"maximum":65535,"default":3001,"x-reload":false}}}}}`,
			want: []string{
				"The file.",
				"- [worker](#worker)",
				"## worker\n\nThe process.\n",
				"| `worker.port` | integer, 1–65535 | `3001` | restart | HTTP port. |",
			},
		},
		{
			name: "items of an array reload with it; objects nest as subsections",
			schema: `{"properties":{"m":{"description":"M.","type":"object","properties":{
				"n":{"description":"N.","type":"object","properties":{"hooks":{"description":"Hooks.","type":"array","default":[],"x-reload":true,
				"items":{"description":"A hook.","type":"object","properties":{"url":{"description":"Its URL.","type":"string"}}}}}}}}}}`,
			want: []string{
				"### m.n\n",
				"| `m.n.hooks` | array of objects | `[]` | yes | Hooks. |",
				"### m.n.hooks[]\n\nA hook.\n",
				"| `m.n.hooks[].url` | string | — | yes | Its URL. |",
			},
		},
		{
			name:   "top-level fields, prose escaped, pipes kept inside their cell",
			schema: `{"properties":{"mode":{"description":"auth.* and fhir.* events, or <none>.","type":"string","enum":["a|b","c"],"x-reload":true}}}`,
			want: []string{
				"## Top level",
				"| `mode` | string, one of `\"a\\|b\"`, `\"c\"` | — | yes | auth.\\* and fhir.\\* events, or \\<none>. |",
			},
		},
		{
			name: "conditional rules are listed",
			schema: `{"properties":{"level":{"description":"Level.","type":"string","x-reload":true}},
				"allOf":[{"description":"In production: no debug.","then":{"properties":{"level":{"description":"Must not be debug."}}}}]}`,
			want: []string{"## In production: no debug\n\n- `level`: Must not be debug.\n"},
		},
		{
			name:    "a property without a description",
			schema:  `{"properties":{"s":{"description":"S.","type":"object","properties":{"a":{"type":"string","x-reload":true}}}}}`,
			wantErr: []string{"s.a: no description"},
		},
		{
			name:    "an object without a description",
			schema:  `{"properties":{"s":{"type":"object","properties":{"a":{"description":"A.","type":"string","x-reload":true}}}}}`,
			wantErr: []string{"s: no description"},
		},
		{
			name:    "a field without a reload flag, and one whose flag is not a boolean",
			schema:  `{"properties":{"a":{"description":"A.","type":"string"},"b":{"description":"B.","type":"string","x-reload":"yes"}}}`,
			wantErr: []string{"a: no x-reload", "b: x-reload is not a boolean"},
		},
		{
			name:    "no properties",
			schema:  `{"type":"object"}`,
			wantErr: []string{"no properties"},
		},
		{
			name:    "not JSON",
			schema:  `{"properties":`,
			wantErr: []string{"schema:"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := render([]byte(tt.schema))
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatalf("render succeeded, want an error naming %q", tt.wantErr)
				}
				for _, part := range tt.wantErr {
					if !strings.Contains(err.Error(), part) {
						t.Errorf("error %q does not name %q", err, part)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range tt.want {
				if !strings.Contains(string(doc), line) {
					t.Errorf("the reference lacks %q; it is:\n%s", line, doc)
				}
			}
		})
	}
}
