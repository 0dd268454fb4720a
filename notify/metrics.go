package notify

import (
	"github.com/prometheus/client_golang/prometheus"

	audit "github.com/smartlogs/audit-worker"
)

// metrics are the notifier's Prometheus series; all methods are no-ops on nil.
type metrics struct {
	deliveries *prometheus.CounterVec // by destination and final outcome
	attempts   *prometheus.CounterVec // HTTP requests sent, by destination and result
	drops      *prometheus.CounterVec // deliveries never sent, by reason
	queue      prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_alert_deliveries_total",
			Help: "Alert notifications by destination and final outcome (delivered, failed, dropped).",
		}, []string{"destination", "outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_alert_delivery_attempts_total",
			Help: "HTTP requests sent to alert webhooks, by destination and result (success, retry, permanent).",
		}, []string{"destination", "result"}),
		drops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "audit_alert_notifications_dropped_total",
			Help: "Alert notifications dropped before sending, by reason (queue_full, closed, shutdown).",
		}, []string{"reason"}),
		queue: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "audit_alert_notification_queue_length",
			Help: "Alert notifications waiting for a delivery worker.",
		}),
	}
	reg.MustRegister(m.deliveries, m.attempts, m.drops, m.queue)
	return m
}

func (m *metrics) outcome(dest string, s audit.DeliveryStatus) {
	if m != nil {
		m.deliveries.WithLabelValues(dest, string(s)).Inc()
	}
}

func (m *metrics) attempt(dest, result string) {
	if m != nil {
		m.attempts.WithLabelValues(dest, result).Inc()
	}
}

func (m *metrics) dropped(dest, reason string) {
	if m != nil {
		m.drops.WithLabelValues(reason).Inc()
		m.deliveries.WithLabelValues(dest, string(audit.DeliveryDropped)).Inc()
	}
}

func (m *metrics) queueLen(n int) {
	if m != nil {
		m.queue.Set(float64(n))
	}
}
