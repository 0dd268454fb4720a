// Package console is the worker's web console: plain HTML, CSS and a little
// hand-written JavaScript, embedded in the binary, so that `go build` alone
// makes it and it works on a network with no way out. It has no server-side
// logic of its own: every page talks to the worker through the public HTTP
// API (/v1/..., the overview stream, /console/session), so whatever the
// console does, a script can do, under the same roles and organisation scope.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed assets
var assets embed.FS

// Prefix is where the worker serves the console.
const Prefix = "/console/"

// ContentSecurityPolicy allows the console's own files and nothing else: no
// inline script or style, no eval, no other origin, no framing.
const ContentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// asset is one file, ready to serve: its bytes, gzipped once at start.
type asset struct {
	body, gzipped []byte
	contentType   string
	etag          string
}

// Handler serves the console under Prefix. Each file is compressed once when
// the handler is made; a request gets the gzipped bytes when it accepts them.
func Handler() http.Handler {
	files, err := load(assets)
	if err != nil {
		panic("console: embedded assets: " + err.Error()) // the embedded files are fixed at build time
	}
	return handler{files: files}
}

func load(fsys fs.FS) (map[string]*asset, error) {
	files := map[string]*asset{}
	root, err := fs.Sub(fsys, "assets")
	if err != nil {
		return nil, err
	}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		files[name], err = newAsset(name, body)
		return err
	})
	return files, err
}

func newAsset(name string, body []byte) (*asset, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" {
		ct = "application/octet-stream"
	}
	return &asset{body: body, gzipped: buf.Bytes(), contentType: ct, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}, nil
}

// Sizes returns each file's size and gzipped size, by name: what a first
// load costs.
func Sizes() (plain, gzipped map[string]int) {
	files, err := load(assets)
	if err != nil {
		panic("console: embedded assets: " + err.Error())
	}
	plain, gzipped = map[string]int{}, map[string]int{}
	for name, a := range files {
		plain[name], gzipped[name] = len(a.body), len(a.gzipped)
	}
	return plain, gzipped
}

type handler struct {
	files map[string]*asset
}

// SecurityHeaders are set on every console response.
func SecurityHeaders(h http.Header) {
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cross-Origin-Resource-Policy", "same-origin")
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	SecurityHeaders(w.Header())
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, Prefix)
	if name == "" {
		name = "index.html"
	}
	a, ok := h.files[name]
	if !ok {
		http.Error(w, "no such console page: the console's pages are reached from "+Prefix, http.StatusNotFound)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", a.contentType)
	hd.Set("ETag", a.etag)
	// The files change only with the binary: the browser asks again each
	// load and mostly gets a 304.
	hd.Set("Cache-Control", "no-cache")
	hd.Add("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && match == a.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := a.body
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hd.Set("Content-Encoding", "gzip")
		body = a.gzipped
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// acceptsGzip reports whether an Accept-Encoding value lists gzip with a
// non-zero quality.
func acceptsGzip(header string) bool {
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
