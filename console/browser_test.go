package console_test

import (
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/httpapi"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// cookieStatus calls GET /console/session with a session cookie alone.
func cookieStatus(t *testing.T, base, cookie string) int {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/console/session", nil)
	req.AddCookie(&http.Cookie{Name: httpapi.SessionCookie, Value: cookie})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func sessionCookieOf(t *testing.T, cookies []*network.Cookie) *network.Cookie {
	t.Helper()
	for _, c := range cookies {
		if c.Name == httpapi.SessionCookie {
			return c
		}
	}
	t.Fatalf("no %s cookie among %d", httpapi.SessionCookie, len(cookies))
	return nil
}

func TestSignInAndOut(t *testing.T) {
	w := newWorker(t)
	tb := newTab(t)
	tb.do(chromedp.Navigate(w.URL + "/console/"))
	tb.waitFor(`document.getElementById('credential') !== null`, "the sign-in form")
	tb.screenshot("signin")

	tb.do(chromedp.SendKeys(chromedp.CSS("#credential"), "awk_aaaaaaaaaaaaaaaa_not-a-key\n"))
	tb.waitFor(`document.querySelector('#signin-status .message.error') !== null`, "the refusal")
	if msg := tb.text("#signin-status"); !strings.Contains(msg, "not a valid API key or token") {
		t.Errorf("a wrong key shows %q, want it named as not valid", msg)
	}
	if tb.text("#nav") != "" {
		t.Error("a wrong key shows the navigation")
	}

	tb.signIn(w.URL, w.keys["operator"])
	nav := eval[[]string](tb, `[...document.querySelectorAll('#nav a')].map((a) => a.textContent)`)
	if want := []string{"Overview", "Alerts", "Dead letters"}; strings.Join(nav, ",") != strings.Join(want, ",") {
		t.Errorf("an operator's navigation is %v, want %v (its role reads no events or reports)", nav, want)
	}
	c := sessionCookieOf(t, tb.cookies(w.URL))
	if !c.HTTPOnly || c.SameSite != network.CookieSameSiteStrict || c.Path != "/" || c.Secure {
		t.Errorf("session cookie: httpOnly=%v sameSite=%s path=%s secure=%v; want HttpOnly, Strict, /, not Secure over plain HTTP",
			c.HTTPOnly, c.SameSite, c.Path, c.Secure)
	}
	if js := eval[string](tb, `document.cookie`); strings.Contains(js, httpapi.SessionCookie) {
		t.Errorf("the page's script can read the session cookie: %q", js)
	}
	if code := cookieStatus(t, w.URL, c.Value); code != http.StatusOK {
		t.Fatalf("the session cookie alone gets %d from GET /console/session, want 200", code)
	}

	tb.do(chromedp.Click(chromedp.CSS("#sign-out")))
	tb.waitFor(`document.getElementById('credential') !== null && document.getElementById('nav').hidden`, "the sign-in form after sign-out")
	if code := cookieStatus(t, w.URL, c.Value); code != http.StatusUnauthorized {
		t.Errorf("after sign-out the old cookie gets %d, want 401", code)
	}
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

func TestOverviewChartMovesWhileEventsArrive(t *testing.T) {
	w := newWorker(t)
	tb := newTab(t)
	tb.signIn(w.URL, w.keys["operator"])
	tb.open(w.URL, "#/overview", `document.querySelector('#throughput-chart[data-total]') !== null`)
	before := eval[float64](tb, `Number(document.getElementById('throughput-chart').dataset.total)`)
	picture := eval[string](tb, `document.getElementById('throughput-chart').toDataURL()`)

	for _, n := range []int{100, 150, 250, 300, 200, 120, 80} { // 1,200 events over about three and a half seconds
		batch := make([][]byte, n)
		for i := range batch {
			batch[i] = w.event(orgA, nil)
		}
		if r := w.send(batch...); r.Stored != len(batch) {
			t.Fatalf("stored %d of %d events", r.Stored, len(batch))
		}
		time.Sleep(500 * time.Millisecond)
	}
	tb.waitFor(fmt.Sprintf(`Number(document.getElementById('throughput-chart').dataset.total) >= %v`, before+1200),
		"the chart to count the 1,200 events")
	if after := eval[string](tb, `document.getElementById('throughput-chart').toDataURL()`); after == picture {
		t.Error("the chart's picture did not change while 1,200 events arrived")
	}
	tb.waitFor(`document.querySelector('#ov-p99 strong').textContent !== '– ms'`, "the latency percentiles")
	if got := eval[float64](tb, `Number(document.querySelector('#ov-received strong').textContent.replace(/,/g, ''))`); got < 1200 {
		t.Errorf("events since start shows %v, want at least 1,200", got)
	}
	tb.screenshot("overview")
	tb.darkTheme(true)
	tb.do(chromedp.Sleep(1100 * time.Millisecond)) // the chart redraws with the theme's colours on the next message
	tb.screenshot("overview-dark")
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

func TestAcknowledgeAlertThenReadItFromTheAPI(t *testing.T) {
	w := newWorker(t)
	alert := w.raiseAlert(orgA, "Repeated failed logins", audit.SeverityHigh)
	w.raiseAlert(orgB, "Bulk export at night", audit.SeverityCritical)
	w.raiseAlert(orgA, "Access refused repeatedly", audit.SeverityMedium)
	tb := newTab(t)
	tb.signIn(w.URL, w.keys["operator"])
	row := fmt.Sprintf(`#alerts-table tr[data-id=%q]`, alert.ID)
	tb.open(w.URL, "#/alerts", fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(row)))
	tb.screenshot("alerts")
	tb.do(chromedp.Click(chromedp.CSS(row + " a")))
	tb.waitFor(`document.getElementById('alert-acknowledge') !== null`, "the alert's page")
	if ev := tb.text("#alert-evidence"); !strings.Contains(ev, "user-00042") {
		t.Errorf("the alert's evidence shows %q, want its metadata", ev)
	}
	note := "looked into it: a locked-out nurse, not an attack"
	tb.do(chromedp.SendKeys(chromedp.CSS("#alert-note"), note))
	tb.do(chromedp.Click(chromedp.CSS("#alert-acknowledge")))
	tb.waitFor(`document.querySelector('#alert-status[data-status="acknowledged"]') !== null`, "the acknowledged status")
	tb.screenshot("alert")

	var got audit.Alert
	if code := w.call("GET", "/v1/alerts/"+alert.ID, w.keys["admin"], nil, &got); code != http.StatusOK {
		t.Fatalf("GET /v1/alerts/%s: %d", alert.ID, code)
	}
	if got.Status != audit.AlertAcknowledged || got.StatusNote != note || !strings.HasPrefix(got.AcknowledgedBy, "key:") {
		t.Errorf("the API shows status %s, note %q, by %q; want acknowledged with the note, by the operator's key",
			got.Status, got.StatusNote, got.AcknowledgedBy)
	}
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

func TestRedriveDeadLetterThenFindTheEventStored(t *testing.T) {
	w := newWorker(t)
	// An event signed with a key the worker does not know yet: refused as
	// an integrity violation until the key is configured.
	rotated := []byte("the-producers-new-signing-key-0001")
	g := eventgen.New(99)
	g.HMACKey = rotated
	f := g.Fields()
	f["organizationId"], f["principalId"] = orgA, "user-redrive"
	signed := g.Seal(f)
	invalid := w.event(orgA, func(m map[string]any) { m["status"] = "maybe" })
	r := w.send(signed, invalid)
	if r.Rejected != 2 || r.Results[0].Reason != audit.ReasonIntegrityViolation {
		t.Fatalf("want both events refused, the first as an integrity violation: %+v", r)
	}
	var list struct {
		DeadLetters []struct {
			ID     int64  `json:"id"`
			Reason string `json:"reason"`
		} `json:"deadLetters"`
	}
	w.call("GET", "/v1/dead-letters", w.keys["admin"], nil, &list)
	var dl int64
	for _, d := range list.DeadLetters {
		if d.Reason == audit.ReasonIntegrityViolation {
			dl = d.ID
		}
	}
	if dl == 0 {
		t.Fatalf("no integrity dead letter among %+v", list.DeadLetters)
	}

	tb := newTab(t)
	tb.signIn(w.URL, w.keys["operator"])
	tb.open(w.URL, fmt.Sprintf("#/dead-letters/%d", dl), `document.getElementById('dl-payload') !== null`)
	if p := tb.text("#dl-payload"); !strings.Contains(p, "user-redrive") {
		t.Errorf("the dead letter's page shows %q, want the original event", p)
	}
	tb.screenshot("dead-letter")
	box := fmt.Sprintf(`#dl-table input[data-id="%d"]`, dl)
	tb.open(w.URL, "#/dead-letters", fmt.Sprintf(`document.querySelector(%s) !== null`, jsString(box)))
	tb.screenshot("dead-letters")

	w.proc.Reconfigure(w.pipelineConfig(rotated)) // the fix: the producers' new key is configured
	tb.do(chromedp.Click(chromedp.CSS(box)), chromedp.Click(chromedp.CSS("#dl-redrive-selected")))
	tb.waitFor(`document.querySelector('#dl-status .message') !== null`, "the redrive's outcome")
	msg := tb.text("#dl-status")
	m := regexp.MustCompile(`stored as event (\d+)`).FindStringSubmatch(msg)
	if m == nil {
		t.Fatalf("the redrive says %q, want the event stored", msg)
	}
	var ev struct {
		ID          int64  `json:"id"`
		PrincipalID string `json:"principalId"`
	}
	if code := w.call("GET", "/v1/events/"+m[1], w.keys["admin"], nil, &ev); code != http.StatusOK || ev.PrincipalID != "user-redrive" {
		t.Errorf("GET /v1/events/%s: %d %+v; want the redriven event", m[1], code, ev)
	}
	w.call("GET", "/v1/dead-letters", w.keys["admin"], nil, &list)
	for _, d := range list.DeadLetters {
		if d.ID == dl {
			t.Errorf("dead letter %d is still listed after it was stored", dl)
		}
	}
	if len(list.DeadLetters) != 1 {
		t.Errorf("%d dead letters left, want the invalid one only", len(list.DeadLetters))
	}
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

func TestEventSearchVerificationAndProof(t *testing.T) {
	w := newWorker(t)
	var batch [][]byte
	for range 60 {
		batch = append(batch, w.event(orgA, func(m map[string]any) { m["principalId"] = "user-search" }))
	}
	for range 5 {
		batch = append(batch, w.event(orgB, func(m map[string]any) { m["principalId"] = "user-search" }))
	}
	if r := w.send(batch...); r.Stored != len(batch) {
		t.Fatalf("stored %d of %d", r.Stored, len(batch))
	}
	tb := newTab(t)
	tb.signIn(w.URL, w.keys["auditor-a"])
	tb.open(w.URL, "#/events", `document.getElementById('event-filters') !== null`)
	tb.do(chromedp.SendKeys(chromedp.CSS("#f-principalId"), "user-search"), chromedp.Click(chromedp.CSS("#event-search")))
	rows := `document.querySelectorAll('#events-table tbody tr').length`
	// The page first shows the unfiltered search, then the filtered one in
	// new elements: wait for the filtered one's, or the click lands on a
	// button that is gone.
	tb.waitFor(`document.getElementById('event-results').dataset.filters === 'principalId=user-search' && `+
		rows+` === 50 && !document.getElementById('events-more').hidden`, "the first page of 50 and a load-more button")
	tb.do(chromedp.Click(chromedp.CSS("#events-more")))
	tb.waitFor(rows+` === 60 && document.getElementById('events-more').hidden`, "the 60 events of org-a, and no more pages")
	if orgs := eval[[]string](tb, `[...new Set([...document.querySelectorAll('#events-table tbody tr td:nth-child(6)')].map((td) => td.textContent))]`); len(orgs) != 1 || orgs[0] != orgA {
		t.Errorf("an auditor of %s sees the events of %v", orgA, orgs)
	}
	tb.screenshot("events")

	first := eval[string](tb, `document.querySelector('#events-table tbody tr a').textContent`)
	tb.do(chromedp.Click(chromedp.CSS("#events-table tbody tr a")))
	// The integrator runs in the background: the page shows the proof once
	// the event is in a checkpoint, asking again until then.
	tb.waitFor(`document.querySelector('#verify-result') !== null && document.querySelector('#proof-result:not([data-ok="pending"])') !== null`, "the event's checks")
	if v := eval[string](tb, `document.getElementById('verify-result').dataset.verified`); v != "true" {
		t.Errorf("event %s: verification says %s: %s", first, v, tb.text("#event-verify"))
	}
	checks := eval[map[string]string](tb, `Object.fromEntries([...document.querySelectorAll('#proof-checks li')].map((li) => [li.dataset.check, li.dataset.ok]))`)
	for _, name := range []string{"leaf", "checkpoint", "root", "signature"} {
		if checks[name] != "true" {
			t.Errorf("event %s: proof check %s is %q: %s", first, name, checks[name], tb.text("#event-proof"))
		}
	}
	if ok := eval[string](tb, `document.getElementById('proof-result').dataset.ok`); ok != "true" {
		t.Errorf("event %s: the proof is not shown as verified: %s", first, tb.text("#event-proof"))
	}
	tb.screenshot("event")

	// Someone with access to the database changes a tree hash the proof
	// reads: the path no longer leads to the signed root. The integrator is
	// stopped first, after a last checkpoint, so that the page's proof is
	// against that checkpoint.
	seq, err := strconv.ParseInt(first, 10, 64)
	if err != nil {
		t.Fatalf("event id %q: %v", first, err)
	}
	w.stopIntegration()
	w.integrate()
	w.tamperProofPath(seq)
	tb.do(chromedp.Reload())
	tb.waitFor(`document.querySelector('#verify-result') !== null && document.querySelector('#proof-result') !== null`, "the event's proof after tampering")
	if ok := eval[string](tb, `document.getElementById('proof-result').dataset.ok`); ok != "false" {
		t.Errorf("a tampered proof is shown as %s: %s", ok, tb.text("#event-proof"))
	}
	checks = eval[map[string]string](tb, `Object.fromEntries([...document.querySelectorAll('#proof-checks li')].map((li) => [li.dataset.check, li.dataset.ok]))`)
	if checks["root"] != "false" || checks["leaf"] != "true" || checks["signature"] != "true" {
		t.Errorf("a tampered path's checks are %v, want the root failed and the leaf and signature ok: %s", checks, tb.text("#event-proof"))
	}
	if !strings.Contains(tb.text("#event-proof"), "NOT proven") {
		t.Errorf("a tampered proof's page says %q", tb.text("#event-proof"))
	}
	// The worker's own verification finds it too.
	if v := eval[string](tb, `document.getElementById('verify-result').dataset.verified`); v != "false" {
		t.Errorf("after tampering, verification says %s: %s", v, tb.text("#event-verify"))
	}
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

// TestEventNotYetInACheckpointIsNotAFailure opens an event that is stored
// but not yet in a checkpoint (the proof route answers 409): the page says
// so without calling it a failure, and shows the proof, checked, once the
// event is in a checkpoint, by asking again itself.
func TestEventNotYetInACheckpointIsNotAFailure(t *testing.T) {
	w := newWorker(t, manualIntegration)
	r := w.send(w.event(orgA, nil))
	if r.Stored != 1 {
		t.Fatalf("stored %d of 1", r.Stored)
	}
	seq := r.Results[0].Seq
	if code := w.call("GET", fmt.Sprintf("/v1/events/%d/proof", seq), w.keys["auditor-a"], nil, nil); code != http.StatusConflict {
		t.Fatalf("the proof of an event not in a checkpoint answers %d, want 409", code)
	}
	tb := newTab(t)
	tb.signIn(w.URL, w.keys["auditor-a"])
	tb.open(w.URL, fmt.Sprintf("#/events/%d", seq), `document.querySelector('#verify-result') !== null && document.querySelector('#proof-result[data-ok="pending"]') !== null`)
	text := tb.text("#event-proof")
	if !strings.Contains(text, "Not yet in a checkpoint") {
		t.Errorf("the pending proof reads %q", text)
	}
	for _, failure := range []string{"NOT proven", "FAILED", "could not be read"} {
		if strings.Contains(text, failure) {
			t.Errorf("an event not yet in a checkpoint is shown as a failure: %q", text)
		}
	}
	if n := eval[int](tb, `document.querySelectorAll('#event-proof .message.error, #event-proof .bad').length`); n != 0 {
		t.Errorf("%d error marks in the pending proof: %q", n, text)
	}
	if v := eval[string](tb, `document.getElementById('verify-result').dataset.verified`); v != "true" {
		t.Errorf("verification of an event not yet in a checkpoint says %s: %s", v, tb.text("#event-verify"))
	}

	w.integrate()
	tb.waitFor(`document.querySelector('#proof-result[data-ok="true"]') !== null`, "the proof once the event is in a checkpoint")
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

// TestEventPageWithoutTamperEvidence: a worker with tamper evidence off
// answers the proof routes 503; the page says that proofs are not served.
func TestEventPageWithoutTamperEvidence(t *testing.T) {
	w := newWorker(t, noTamperEvidence)
	r := w.send(w.event(orgA, nil))
	if r.Stored != 1 {
		t.Fatalf("stored %d of 1", r.Stored)
	}
	tb := newTab(t)
	tb.signIn(w.URL, w.keys["auditor-a"])
	tb.open(w.URL, fmt.Sprintf("#/events/%d", r.Results[0].Seq), `document.querySelector('#verify-result') !== null && (document.querySelector('#proof-result') !== null || document.querySelector('#event-proof .message') !== null)`)
	if ok := eval[string](tb, `(document.getElementById('proof-result') || {dataset: {}}).dataset.ok`); ok != "unavailable" {
		t.Errorf("the proof of a worker without tamper evidence is shown as %q: %s", ok, tb.text("#event-proof"))
	}
	if v := eval[string](tb, `document.getElementById('verify-result').dataset.verified`); v != "true" {
		t.Errorf("verification without tamper evidence says %s: %s", v, tb.text("#event-verify"))
	}
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

// TestCheckpointSignedByAnotherKeyFailsTheSignature: a worker that
// publishes a verifier key other than the one its checkpoints are signed
// with (a replaced key, or a forged checkpoint) shows the signature check
// failed, the rest of the proof sound.
func TestCheckpointSignedByAnotherKeyFailsTheSignature(t *testing.T) {
	stranger := newCheckpointKey(t, checkpointOrigin)
	w := newWorker(t, servingKey(stranger.VerifierKey))
	r := w.send(w.event(orgA, nil), w.event(orgA, nil), w.event(orgA, nil))
	if r.Stored != 3 {
		t.Fatalf("stored %d of 3", r.Stored)
	}
	seq := r.Results[1].Seq
	w.inCheckpoint(seq)
	tb := newTab(t)
	tb.signIn(w.URL, w.keys["auditor-a"])
	tb.open(w.URL, fmt.Sprintf("#/events/%d", seq), `document.querySelector('#proof-result:not([data-ok="pending"])') !== null`)
	if ok := eval[string](tb, `document.getElementById('proof-result').dataset.ok`); ok != "false" {
		t.Errorf("a checkpoint signed by another key is shown as %s: %s", ok, tb.text("#event-proof"))
	}
	checks := eval[map[string]string](tb, `Object.fromEntries([...document.querySelectorAll('#proof-checks li')].map((li) => [li.dataset.check, li.dataset.ok]))`)
	want := map[string]string{"leaf": "true", "checkpoint": "true", "root": "true", "signature": "false"}
	if !maps.Equal(checks, want) {
		t.Errorf("the checks are %v, want %v: %s", checks, want, tb.text("#event-proof"))
	}
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

func TestReaderOfOneOrganisationSeesNothingOfAnother(t *testing.T) {
	w := newWorker(t)
	var batch [][]byte
	for range 5 {
		batch = append(batch, w.event(orgA, nil), w.event(orgB, nil))
	}
	r := w.send(batch...)
	if r.Stored != len(batch) {
		t.Fatalf("stored %d of %d", r.Stored, len(batch))
	}
	orgBEvent := r.Results[1].Seq
	w.raiseAlert(orgA, "Failed logins in A", audit.SeverityHigh)
	alertB := w.raiseAlert(orgB, "Failed logins in B", audit.SeverityCritical)

	tb := newTab(t)
	tb.signIn(w.URL, w.keys["reader-a"])
	if nav := eval[[]string](tb, `[...document.querySelectorAll('#nav a')].map((a) => a.textContent)`); strings.Join(nav, ",") != "Alerts,Events" {
		t.Errorf("a reader's navigation is %v, want Alerts and Events", nav)
	}
	tb.open(w.URL, "#/events", `document.querySelectorAll('#events-table tbody tr').length >= 5`)
	if orgs := eval[[]string](tb, `[...new Set([...document.querySelectorAll('#events-table tbody tr td:nth-child(6)')].map((td) => td.textContent))]`); len(orgs) != 1 || orgs[0] != orgA {
		t.Errorf("a reader of %s sees the events of %v", orgA, orgs)
	}
	tb.open(w.URL, "#/alerts?status=", `document.querySelectorAll('#alerts-table tbody tr').length >= 1`)
	if text := tb.text("#alert-results"); strings.Contains(text, "in B") || !strings.Contains(text, "in A") {
		t.Errorf("a reader of %s sees alerts %q", orgA, text)
	}
	tb.open(w.URL, fmt.Sprintf("#/events/%d", orgBEvent), `document.querySelector('main .message.error') !== null`)
	if msg := tb.text("main .message.error"); !strings.Contains(msg, "404") {
		t.Errorf("another organisation's event shows %q, want a 404 like a missing one", msg)
	}
	tb.open(w.URL, "#/alerts/"+alertB.ID, `document.querySelector('main .message.error') !== null`)
	if msg := tb.text("main .message.error"); !strings.Contains(msg, "404") {
		t.Errorf("another organisation's alert shows %q, want a 404", msg)
	}
	tb.open(w.URL, "#/overview", `document.querySelector('main .message.error') !== null`)
	statuses := eval[[]int](tb, `Promise.all(['/v1/stream/overview', '/v1/events?organizationId=org-b', '/v1/dead-letters']
		.map((u) => fetch(u).then((r) => r.status)))`)
	if fmt.Sprint(statuses) != "[403 403 403]" {
		t.Errorf("the reader's session gets %v from the overview stream, org-b's events and the dead letters; want 403 each", statuses)
	}
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the page reported errors: %q", p)
	}
}

func TestStateChangeWithoutCSRFTokenIsRefused(t *testing.T) {
	w := newWorker(t)
	alert := w.raiseAlert(orgA, "Repeated failed logins", audit.SeverityHigh)
	tb := newTab(t)
	tb.signIn(w.URL, w.keys["operator"])
	post := func(header string) int {
		return eval[int](tb, fmt.Sprintf(`fetch('/v1/alerts/%s/acknowledge', {method: 'POST',
			headers: Object.assign({'Content-Type': 'application/json'}, %s), body: '{"note":"csrf"}'}).then((r) => r.status)`, alert.ID, header))
	}
	if code := post(`{}`); code != http.StatusForbidden {
		t.Errorf("a POST with the session cookie and no token gets %d, want 403", code)
	}
	if code := post(`{'X-CSRF-Token': 'forged'}`); code != http.StatusForbidden {
		t.Errorf("a POST with a wrong token gets %d, want 403", code)
	}
	var still audit.Alert
	w.call("GET", "/v1/alerts/"+alert.ID, w.keys["admin"], nil, &still)
	if still.Status != audit.AlertActive {
		t.Fatalf("a refused request changed the alert to %s", still.Status)
	}
	if code := post(`{'X-CSRF-Token': ''}`); code != http.StatusForbidden {
		t.Errorf("a POST with an empty token gets %d, want 403", code)
	}
	token := eval[string](tb, `fetch('/console/session').then((r) => r.json()).then((s) => s.csrfToken)`)
	if code := post(fmt.Sprintf(`{'X-CSRF-Token': %s}`, strconv.Quote(token))); code != http.StatusOK {
		t.Errorf("a POST with the session's token gets %d, want 200", code)
	}
}

// TestNoRequestToAnotherOrigin visits every page as an admin (who sees them
// all) and checks what each asked for, that nothing broke the
// Content-Security-Policy, and that every control has a label.
func TestNoRequestToAnotherOrigin(t *testing.T) {
	w := newWorker(t)
	r := w.send(w.event(orgA, nil), w.event(orgA, func(m map[string]any) { delete(m, "action") }))
	alert := w.raiseAlert(orgA, "Repeated failed logins", audit.SeverityHigh)
	var dls struct {
		DeadLetters []struct {
			ID int64 `json:"id"`
		} `json:"deadLetters"`
	}
	w.call("GET", "/v1/dead-letters", w.keys["admin"], nil, &dls)
	if len(dls.DeadLetters) == 0 {
		t.Fatal("no dead letter to show")
	}
	tb := newTab(t)
	tb.signIn(w.URL, w.keys["admin"])
	pages := []struct{ hash, ready string }{
		{"#/overview", `document.querySelector('#throughput-chart[data-total]') !== null`},
		{"#/alerts", `document.getElementById('alerts-table') !== null`},
		{"#/alerts/" + alert.ID, `document.getElementById('alert-evidence') !== null`},
		{"#/dead-letters", `document.getElementById('dl-table') !== null`},
		{fmt.Sprintf("#/dead-letters/%d", dls.DeadLetters[0].ID), `document.getElementById('dl-payload') !== null`},
		{"#/events", `document.getElementById('events-table') !== null`},
		{fmt.Sprintf("#/events/%d", r.Results[0].Seq), `document.getElementById('proof-result') !== null`},
		{"#/reports", `document.getElementById('no-runs') !== null`},
	}
	for _, p := range pages {
		tb.open(w.URL, p.hash, p.ready)
		if csp := eval[[]string](tb, `window.__csp`); len(csp) > 0 {
			t.Errorf("%s broke the Content-Security-Policy: %q", p.hash, csp)
		}
		unlabelled := eval[[]string](tb, `[...document.querySelectorAll('input, select, textarea, button')]
			.filter((el) => !el.hidden && !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
			.map((el) => el.outerHTML.slice(0, 80))`)
		if len(unlabelled) > 0 {
			t.Errorf("%s has controls without a label: %q", p.hash, unlabelled)
		}
	}
	// An admin leaves the organisation empty: the report covers every one.
	tb.do(chromedp.Click(chromedp.CSS("#report-download")))
	tb.waitFor(`document.querySelector('#report-status .message') !== null`, "the report's answer")
	if msg := tb.text("#report-status .message"); !strings.HasPrefix(msg, "Report ready: report-hipaa-all-") {
		t.Errorf("the report page says %q", msg)
	} else if orgs := tb.text("#fig-organizations"); orgs != "all" {
		t.Errorf("an admin's report without an organisation covers %q", orgs)
	}
	if n := tb.requestCount(); n < 20 {
		t.Fatalf("only %d requests recorded: the recorder is not working", n)
	}
	if foreign := tb.foreignRequests(w.URL); len(foreign) > 0 {
		t.Errorf("the console asked another origin: %q", foreign)
	}
	if p := tb.problems(); len(p) > 0 {
		t.Errorf("the pages reported errors: %q", p)
	}
}
