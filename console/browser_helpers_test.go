package console_test

import (
	"context"
	"errors"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// One headless Chromium serves every test of the package; each test gets a
// tab in a browser context of its own (its own cookies), so starting the
// browser is paid once.
var chromium struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	err    error
}

// chromiumPath finds the browser: $AUDIT_TEST_CHROMIUM, else Debian's
// chromium (or a Chrome) on the PATH.
func chromiumPath() (string, error) {
	if p := os.Getenv("AUDIT_TEST_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no chromium, chromium-browser or google-chrome on the PATH (or set AUDIT_TEST_CHROMIUM)")
}

func startBrowser() {
	path, err := chromiumPath()
	if err != nil {
		chromium.err = err
		return
	}
	dir, err := os.MkdirTemp("", "console-chromium-*")
	if err != nil {
		chromium.err = err
		return
	}
	// The flags that work as root on a machine with no way out: no sandbox,
	// no GPU, and nothing that calls home.
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.UserDataDir(dir),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-sync", true),
		chromedp.WindowSize(1280, 900))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	chromium.ctx = ctx
	chromium.cancel = func() {
		cancelCtx()
		cancelAlloc()
		_ = os.RemoveAll(dir)
	}
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		chromium.cancel()
		chromium.cancel, chromium.err = nil, err
	}
}

// stopBrowser ends the shared browser, if a test started it.
func stopBrowser() {
	if chromium.cancel != nil {
		chromium.cancel()
	}
}

// tab is a page for one test: its own browser context, closed when the test
// ends. It records what the page requests and every error it shows.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu         sync.Mutex
	requests   []string
	exceptions []string
	errors     []string
}

func newTab(t *testing.T) *tab {
	t.Helper()
	chromium.once.Do(startBrowser)
	if chromium.err != nil {
		testenv.Unavailable(t, "Chromium", "apt-get update && apt-get install -y chromium", chromium.err)
	}
	ctx, cancel := chromedp.NewContext(chromium.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelTimeout)
	tb := &tab{t: t, ctx: ctx}
	if err := chromedp.Listen(ctx, tb.record); err != nil {
		t.Fatalf("listen to the page: %v", err)
	}
	// Collects Content-Security-Policy violations from the first script on:
	// DevTools' script runs whatever the page's policy says.
	_, err := chromedp.Call(ctx, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{
		Source: `window.__csp = []; document.addEventListener('securitypolicyviolation',
			(e) => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));`})
	if err != nil {
		t.Fatalf("install the CSP listener: %v", err)
	}
	tb.do(chromedp.EmulateViewport(1280, 900))
	return tb
}

func (tb *tab) record(ev any) {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	switch e := ev.(type) {
	case *network.EventRequestWillBeSent:
		tb.requests = append(tb.requests, e.Request.URL)
	case *runtime.EventExceptionThrown:
		tb.exceptions = append(tb.exceptions, e.ExceptionDetails.Text+" "+exceptionDescription(e.ExceptionDetails))
	case *cdplog.EventEntryAdded:
		// Failed requests (a 401 before sign-in, a 404 of an endpoint the
		// worker lacks) are the network's; anything else is the page's.
		if e.Entry.Level == cdplog.EntryLevelError && e.Entry.Source != cdplog.EntrySourceNetwork {
			tb.errors = append(tb.errors, string(e.Entry.Source)+": "+e.Entry.Text)
		}
	}
}

func exceptionDescription(d *runtime.ExceptionDetails) string {
	if d.Exception != nil {
		return d.Exception.Description
	}
	return ""
}

// do runs actions, failing the test on an error.
func (tb *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	if err := chromedp.Do(tb.ctx, actions...); err != nil {
		tb.t.Fatalf("browser: %v", err)
	}
}

// eval evaluates JavaScript (awaiting a promise) and decodes its value.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it is true.
func (tb *tab) waitFor(expr, what string) {
	tb.t.Helper()
	_, err := chromedp.Run(tb.ctx, chromedp.Poll[chromedp.Void](expr,
		chromedp.WithPollingTimeout(20*time.Second), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		tb.t.Fatalf("waiting for %s (%s): %v\npage text: %s", what, expr, err, tb.text("main"))
	}
}

// text is the visible text of the first element matching a CSS selector.
func (tb *tab) text(sel string) string {
	v, err := chromedp.Run(tb.ctx, chromedp.Evaluate[string](`(document.querySelector(`+jsString(sel)+`) || {}).innerText || ''`))
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return v
}

func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`)
	return "'" + r.Replace(s) + "'"
}

// open goes to a console page (#/…) and waits until ready holds.
func (tb *tab) open(base, hash, ready string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(base + "/console/" + hash))
	tb.waitFor(ready, hash)
}

// signIn signs in with key, by keyboard: the form has the focus, Enter submits.
func (tb *tab) signIn(base, key string) {
	tb.t.Helper()
	tb.do(chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(chromedp.CSS("#credential")))
	tb.waitFor(`document.activeElement && document.activeElement.id === 'credential'`, "the focus on the key field")
	tb.do(chromedp.SendKeys(chromedp.CSS("#credential"), key+"\n"))
	tb.waitFor(`!document.getElementById('nav').hidden`, "the console after sign-in")
}

// darkTheme makes the page prefer the dark colour scheme (or not).
func (tb *tab) darkTheme(on bool) {
	tb.t.Helper()
	scheme := "light"
	if on {
		scheme = "dark"
	}
	_, err := chromedp.Call(tb.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}})
	if err != nil {
		tb.t.Fatalf("emulate %s theme: %v", scheme, err)
	}
}

// screenshot writes a PNG of the page to $AUDIT_CONSOLE_SCREENSHOTS (the
// README's pictures come from there: docs/images) or to the test's
// temporary directory.
func (tb *tab) screenshot(name string) {
	tb.t.Helper()
	tb.do(chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`))
	png, err := chromedp.Run(tb.ctx, chromedp.CaptureScreenshot()) // the 1280×900 viewport, PNG
	if err != nil {
		tb.t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := os.Getenv("AUDIT_CONSOLE_SCREENSHOTS")
	if dir == "" {
		dir = tb.t.TempDir()
	}
	path := filepath.Join(dir, "console-"+name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Fatalf("write screenshot: %v", err)
	}
	tb.t.Logf("screenshot: %s", path)
}

// cookies are the browser's cookies for base.
func (tb *tab) cookies(base string) []*network.Cookie {
	tb.t.Helper()
	res, err := chromedp.Call(tb.ctx, network.GetCookies, network.GetCookiesParams{URLs: []string{base}})
	if err != nil {
		tb.t.Fatalf("read cookies: %v", err)
	}
	return res.Cookies
}

// foreignRequests lists the requests made to an origin other than base's.
func (tb *tab) foreignRequests(base string) []string {
	own, _ := url.Parse(base)
	tb.mu.Lock()
	defer tb.mu.Unlock()
	var out []string
	for _, r := range tb.requests {
		u, err := url.Parse(r)
		if err != nil || u.Scheme == "data" || u.Scheme == "blob" {
			continue
		}
		if u.Scheme != own.Scheme || u.Host != own.Host {
			out = append(out, r)
		}
	}
	return out
}

func (tb *tab) requestCount() int {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return len(tb.requests)
}

// problems are the page's uncaught exceptions and logged errors so far.
func (tb *tab) problems() []string {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append(append([]string{}, tb.exceptions...), tb.errors...)
}

// downloaded runs actions that make the page download a file and returns
// the file the browser saved.
func (tb *tab) downloaded(actions ...chromedp.Action[chromedp.Void]) []byte {
	tb.t.Helper()
	dir := tb.t.TempDir()
	yes := true
	_, err := chromedp.Call(tb.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, BrowserContextID: chromedp.FromContext(tb.ctx).BrowserContextID,
		DownloadPath: dir, EventsEnabled: &yes})
	if err != nil {
		tb.t.Fatalf("let the browser download: %v", err)
	}
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	progress := chromedp.Events(ctx, browser.DownloadProgress) // subscribes now, before the click
	if err := chromedp.Do(ctx, actions...); err != nil {
		cancel()
		for range progress { // ends the subscription
		}
		tb.t.Fatalf("browser: %v", err)
	}
	for ev, err := range progress {
		if err != nil {
			tb.t.Fatalf("waiting for a download: %v", err)
		}
		switch ev.State {
		case browser.DownloadProgressStateCompleted:
			data, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				tb.t.Fatalf("the downloaded file: %v", err)
			}
			return data
		case browser.DownloadProgressStateCanceled:
			tb.t.Fatal("the download was cancelled")
		}
	}
	return nil
}
