package console_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/smartlogs/audit-worker/console"
)

func get(t *testing.T, h http.Handler, method, path string, header map[string]string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func TestHandlerServesEveryFileWithSecurityHeaders(t *testing.T) {
	h := console.Handler()
	for _, tc := range []struct {
		path, contentType string
		gzip              bool
	}{
		{"/console/", "text/html; charset=utf-8", true},
		{"/console/index.html", "text/html; charset=utf-8", false},
		{"/console/app.css", "text/css; charset=utf-8", true},
		{"/console/js/app.js", "text/javascript; charset=utf-8", true},
		{"/console/js/proof.js", "text/javascript; charset=utf-8", false},
		{"/console/favicon.svg", "image/svg+xml", true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			hdr := map[string]string{}
			if tc.gzip {
				hdr["Accept-Encoding"] = "br;q=1.0, gzip;q=0.8"
			}
			resp := get(t, h, "GET", tc.path, hdr)
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != tc.contentType {
				t.Fatalf("%d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			for name, want := range map[string]string{
				"Content-Security-Policy": console.ContentSecurityPolicy, "X-Frame-Options": "DENY",
				"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
			} {
				if got := resp.Header.Get(name); got != want {
					t.Errorf("%s: %q, want %q", name, got, want)
				}
			}
			if gz := resp.Header.Get("Content-Encoding") == "gzip"; gz != tc.gzip {
				t.Fatalf("gzip %v, want %v", gz, tc.gzip)
			}
			if tc.gzip {
				zr, err := gzip.NewReader(bytes.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				if body, err = io.ReadAll(zr); err != nil {
					t.Fatal(err)
				}
			}
			name := strings.TrimPrefix(tc.path, "/console/")
			if name == "" {
				name = "index.html"
			}
			want, err := os.ReadFile(filepath.Join("assets", name))
			if err != nil || !bytes.Equal(body, want) {
				t.Errorf("the body is not the file assets/%s (%v)", name, err)
			}
			again := get(t, h, "GET", tc.path, map[string]string{"If-None-Match": resp.Header.Get("ETag")})
			if again.StatusCode != http.StatusNotModified {
				t.Errorf("with its ETag: %d, want 304", again.StatusCode)
			}
		})
	}
	for _, tc := range []struct {
		method, path string
		status       int
	}{
		{"GET", "/console/nothing.js", 404},
		{"GET", "/console/js/", 404},
		{"POST", "/console/", 405},
	} {
		resp := get(t, h, tc.method, tc.path, nil)
		if resp.StatusCode != tc.status || resp.Header.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s %s: %d (X-Frame-Options %q), want %d with the security headers", tc.method, tc.path,
				resp.StatusCode, resp.Header.Get("X-Frame-Options"), tc.status)
		}
	}
}

// TestFirstLoadIsSmall: every file of the console, gzipped as served, is a
// first load; it must stay within 300 KB.
func TestFirstLoadIsSmall(t *testing.T) {
	plain, gz := console.Sizes()
	var totalPlain, totalGzip int
	for name := range plain {
		totalPlain += plain[name]
		totalGzip += gz[name]
	}
	t.Logf("console: %d files, %d bytes, %d bytes gzipped", len(plain), totalPlain, totalGzip)
	if len(plain) < 10 {
		t.Fatalf("only %d files embedded", len(plain))
	}
	if totalGzip > 300_000 {
		t.Errorf("a first load is %d bytes gzipped, over 300 KB", totalGzip)
	}
}

// TestAssetsRunNothingInlineAndFetchNothingElsewhere reads the files as the
// Content-Security-Policy would judge them, and for what it cannot see:
// HTML built from strings, and addresses of other origins.
func TestAssetsRunNothingInlineAndFetchNothingElsewhere(t *testing.T) {
	rules := []struct {
		files string
		bad   *regexp.Regexp
		why   string
	}{
		{".html", regexp.MustCompile(`<script[^>]*>\s*[^<\s]`), "inline script"},
		{".html", regexp.MustCompile(`\son[a-z]+\s*=`), "inline event handler"},
		{".html", regexp.MustCompile(`\sstyle\s*=|<style`), "inline style"},
		{".js", regexp.MustCompile(`\beval\s*\(|new\s+Function\s*\(|setTimeout\s*\(\s*['"\x60]`), "code from strings"},
		{".js", regexp.MustCompile(`innerHTML|outerHTML\s*=|insertAdjacentHTML|document\.write`), "HTML from strings"},
		{"", regexp.MustCompile(`(?i)https?://|//[a-z0-9.-]+\.[a-z]{2,}/`), "an address of another origin"},
	}
	err := fs.WalkDir(os.DirFS("assets"), ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(filepath.Join("assets", name))
		if err != nil {
			return err
		}
		// An XML namespace names a vocabulary; nothing fetches it.
		data = bytes.ReplaceAll(data, []byte(`xmlns="http://www.w3.org/2000/svg"`), nil)
		for _, r := range rules {
			if strings.HasSuffix(name, r.files) {
				if m := r.bad.Find(data); m != nil {
					t.Errorf("%s: %s: %q", name, r.why, m)
				}
			}
		}
		if strings.HasSuffix(name, ".html") {
			for _, tag := range regexp.MustCompile(`<script[^>]*>`).FindAll(data, -1) {
				if !bytes.Contains(tag, []byte(" src=")) {
					t.Errorf("%s: a script without src: %s", name, tag)
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
