package notify

import (
	"context"
	"testing"

	"go.uber.org/goleak"

	audit "github.com/smartlogs/audit-worker"
)

// Close ends everything the notifier started, its kept-alive connections to
// the destinations included, while those destinations are still up.
func TestCloseLeavesNoGoroutine(t *testing.T) {
	before := goleak.IgnoreCurrent()
	rcv := newReceiver(t, 200)
	n := start(t, fastOptions(hook("ops", rcv.srv.URL)))
	n.Notify(context.Background(), alert("alt_close", audit.SeverityHigh, "org-1"))
	closeNotifier(t, n)
	if len(rcv.requests()) != 1 {
		t.Fatalf("%d deliveries, want 1", len(rcv.requests()))
	}
	goleak.VerifyNone(t, before, goleak.IgnoreAnyFunction("net/http.(*conn).serve"), // the receiver: its server side
		goleak.IgnoreAnyFunction("net/http/httptest.(*Server).goServe.func1"))
}
