package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// payload is the JSON body: the alert's own fields plus the delivery's.
type payload struct {
	audit.Alert
	DeliveryID string    `json:"deliveryId"`
	Attempt    int       `json:"attempt"`
	SentAt     time.Time `json:"sentAt"`
}

// Results of one attempt, also the "result" label of the attempts metric.
const (
	resultSuccess   = "success"
	resultRetry     = "retry"
	resultPermanent = "permanent"
)

// recordTimeout bounds how long storing an outcome may hold up a worker.
const recordTimeout = 2 * time.Second

// deliver sends one job, retrying transient failures, and accounts for every attempt.
func (n *Notifier) deliver(j job) {
	log := n.log.With("destination", j.hook.Name, "alert", j.alert.ID, "delivery", j.deliveryID)
	for attempt := 1; ; attempt++ {
		code, retryAfter, err := n.send(j, attempt)
		result := classify(code, err)
		n.metrics.attempt(j.hook.Name, result)
		rec := audit.AlertDelivery{AlertID: j.alert.ID, DeliveryID: j.deliveryID, Destination: j.hook.Name,
			Attempt: attempt, HTTPStatus: code, At: time.Now().UTC()}
		if err != nil {
			rec.Error = err.Error()
		}
		switch {
		case result == resultSuccess:
			rec.Status = audit.DeliveryDelivered
			log.Info("alert delivered", "attempt", attempt, "status", code)
		case result == resultPermanent || attempt >= n.opts.Attempts:
			rec.Status = audit.DeliveryFailed
			log.Warn("alert delivery failed", "attempt", attempt, "status", code, "permanent", result == resultPermanent, "err", err)
		case n.ctx.Err() != nil:
			rec.Status, rec.Error = audit.DeliveryFailed, "gave up at shutdown: "+rec.Error
			log.Warn("alert delivery abandoned at shutdown", "attempt", attempt)
		default:
			rec.Status = audit.DeliveryRetrying
			log.Debug("alert delivery will be retried", "attempt", attempt, "status", code, "err", err)
		}
		n.record(rec)
		if rec.Status != audit.DeliveryRetrying {
			n.metrics.outcome(j.hook.Name, rec.Status)
			return
		}
		delay := n.backoff(attempt)
		if retryAfter > delay {
			delay = min(retryAfter, n.opts.MaxDelay)
		}
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-n.ctx.Done():
			timer.Stop()
			n.metrics.outcome(j.hook.Name, audit.DeliveryFailed)
			log.Warn("alert delivery abandoned at shutdown", "attempt", attempt)
			return
		}
	}
}

// send makes one attempt. err describes any failure, including a non-2xx answer.
func (n *Notifier) send(j job, attempt int) (code int, retryAfter time.Duration, err error) {
	now := time.Now()
	body, err := json.Marshal(payload{Alert: j.alert, DeliveryID: j.deliveryID, Attempt: attempt, SentAt: now.UTC()})
	if err != nil {
		return 0, 0, fmt.Errorf("encode alert: %w", err)
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.hook.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("build request: %w", err)
	}
	ts := strconv.FormatInt(now.Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "audit-worker-webhook")
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(j.hook.Secret, ts, body))
	req.Header.Set(HeaderDelivery, j.deliveryID)
	resp, err := n.opts.Client.Do(req)
	if err != nil {
		// *url.Error repeats the URL, which may hold a token: keep only the cause.
		return 0, 0, fmt.Errorf("send: %w", unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, 0, nil
	}
	if s, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, retryAfter, fmt.Errorf("HTTP %s", resp.Status)
}

func unwrapURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// classify decides retry or not: 2xx is delivered; 408, 429 and 5xx are worth
// another try, as is any network failure; other answers (4xx, 3xx) will not
// change by themselves.
func classify(code int, err error) string {
	switch {
	case err == nil:
		return resultSuccess
	case code == 0, code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return resultRetry
	default:
		return resultPermanent
	}
}

// backoff is the wait after the given attempt: BaseDelay doubled per attempt,
// capped at MaxDelay, with "equal jitter" (half fixed, half random) so that
// deliveries failing together do not retry together.
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.opts.BaseDelay << min(attempt-1, 30)
	if d <= 0 || d > n.opts.MaxDelay {
		d = n.opts.MaxDelay
	}
	half := d / 2
	return half + rand.N(half+1)
}

func (n *Notifier) record(d audit.AlertDelivery) {
	if n.opts.Recorder == nil || n.ctx.Err() != nil {
		return // at shutdown the store may already be closed
	}
	ctx, cancel := context.WithTimeout(n.ctx, recordTimeout)
	defer cancel()
	if err := n.opts.Recorder.RecordDelivery(ctx, d); err != nil {
		n.log.Warn("alert delivery not recorded", "destination", d.Destination, "alert", d.AlertID, "err", err)
	}
}
