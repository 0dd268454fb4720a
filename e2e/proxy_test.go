package e2e

import (
	"testing"

	"github.com/smartlogs/audit-worker/internal/faultproxy"
)

// startProxy starts a fault-injecting proxy to target for the test; the
// proxy closes when the test ends.
func startProxy(t testing.TB, target string) *faultproxy.Proxy {
	t.Helper()
	p, err := faultproxy.Start(target, faultproxy.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// cutProxy resets every connection through p and resets new ones until
// restoreProxy: the server is gone, as after a crash.
func cutProxy(p *faultproxy.Proxy) int { return p.Cut(faultproxy.Cut{}) }

// restoreProxy ends every fault of p.
func restoreProxy(t testing.TB, p *faultproxy.Proxy) {
	t.Helper()
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
}
