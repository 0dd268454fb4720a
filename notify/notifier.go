package notify

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	audit "github.com/smartlogs/audit-worker"
)

// Options configure a Notifier. Zero values take the defaults.
type Options struct {
	Webhooks  []Webhook
	QueueSize int           // deliveries waiting at most; default 1000
	Workers   int           // deliveries in flight at once; default 4
	Attempts  int           // HTTP attempts per delivery; default 5
	BaseDelay time.Duration // backoff before the second attempt, doubling after; default 1 s
	MaxDelay  time.Duration // longest backoff; default 1 min
	Timeout   time.Duration // per request; default 10 s
	// Client sends the requests; default one that never follows redirects
	// (a redirected POST becomes a GET, and the signature covers one URL's body).
	Client *http.Client
	// Recorder, if set, stores the outcome of each attempt.
	Recorder   audit.DeliveryRecorder
	Registerer prometheus.Registerer // nil: no metrics
	Logger     *slog.Logger
}

// job is one alert for one destination. The webhook is copied when the alert
// is queued, so a configuration reload never changes a delivery half-way.
type job struct {
	alert      audit.Alert
	hook       Webhook
	deliveryID string
}

// Notifier sends alerts to webhooks in the background.
type Notifier struct {
	opts    Options
	log     *slog.Logger
	metrics *metrics
	hooks   atomic.Pointer[[]Webhook]

	mu     sync.RWMutex // guards closed against Notify sending on a closed queue
	closed bool
	queue  chan job

	ctx    context.Context // cancelled when Close gives up: aborts requests and backoffs
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New validates the webhooks and starts the delivery workers; Close stops them.
func New(opts Options) (*Notifier, error) {
	if err := validateAll(opts.Webhooks); err != nil {
		return nil, err
	}
	setDefault(&opts.QueueSize, 1000)
	setDefault(&opts.Workers, 4)
	setDefault(&opts.Attempts, 5)
	setDefault(&opts.BaseDelay, time.Second)
	setDefault(&opts.MaxDelay, time.Minute)
	setDefault(&opts.Timeout, 10*time.Second)
	if opts.Client == nil {
		opts.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{opts: opts, log: opts.Logger, metrics: newMetrics(opts.Registerer), queue: make(chan job, opts.QueueSize)}
	hooks := append([]Webhook(nil), opts.Webhooks...)
	n.hooks.Store(&hooks)
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for range opts.Workers {
		n.wg.Go(n.work)
	}
	return n, nil
}

func setDefault[T int | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// SetWebhooks replaces the destinations (configuration reload). Deliveries
// already queued keep the destination they were queued for. An invalid list
// changes nothing.
func (n *Notifier) SetWebhooks(ws ...Webhook) error {
	if err := validateAll(ws); err != nil {
		return err
	}
	hooks := append([]Webhook(nil), ws...)
	n.hooks.Store(&hooks)
	return nil
}

// Notify queues a for every destination that wants it and returns at once: when
// the queue is full the delivery is dropped with a warning and a metric, so a
// slow or dead webhook can never hold up the code raising alerts. ctx is only
// consulted for cancellation; delivery runs on the Notifier's own lifetime.
func (n *Notifier) Notify(ctx context.Context, a audit.Alert) {
	if ctx.Err() != nil {
		return
	}
	n.mu.RLock()
	defer n.mu.RUnlock()
	for _, h := range *n.hooks.Load() {
		if !h.Wants(a) {
			continue
		}
		j := job{alert: a, hook: h, deliveryID: newDeliveryID()}
		if n.closed {
			n.drop(j, "closed")
			continue
		}
		select {
		case n.queue <- j:
			n.metrics.queueLen(len(n.queue))
		default:
			n.drop(j, "queue_full")
		}
	}
}

// drop accounts for a delivery that is never sent. It is not stored: that
// would be I/O on the caller's path, which Notify promises not to do.
func (n *Notifier) drop(j job, reason string) {
	n.metrics.dropped(j.hook.Name, reason)
	n.log.Warn("alert notification dropped", "reason", reason, "destination", j.hook.Name,
		"alert", j.alert.ID, "delivery", j.deliveryID)
}

// Close stops taking alerts and waits for the queued ones to be delivered. At
// ctx's deadline it gives up: requests and backoffs in progress are abandoned,
// what is still queued is dropped (logged and counted), and ctx's error is
// returned. Notify after Close drops. The client's idle connections are closed.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.queue)
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	// The kept-alive connections to the destinations have goroutines of
	// their own; nothing uses them once the workers are done.
	defer n.opts.Client.CloseIdleConnections()
	select {
	case <-done:
		n.cancel()
		return nil
	case <-ctx.Done():
		n.cancel()
		<-done // workers return promptly once n.ctx is cancelled
		return ctx.Err()
	}
}

func (n *Notifier) work() {
	for j := range n.queue {
		n.metrics.queueLen(len(n.queue))
		if n.ctx.Err() != nil {
			n.drop(j, "shutdown")
			continue
		}
		n.deliver(j)
	}
}

func newDeliveryID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return "dlv_" + hex.EncodeToString(b[:])
}
