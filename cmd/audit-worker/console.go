package main

import (
	"github.com/smartlogs/audit-worker/console"
	"github.com/smartlogs/audit-worker/httpapi"
)

// consoleOptions serve the web console at /console/: its pages, and the
// live overview fed by the metrics and the store's dead-letter count.
func (w *worker) consoleOptions() httpapi.ConsoleOptions {
	opts := httpapi.ConsoleOptions{Assets: console.Handler()}
	if w.obs.metrics != nil {
		opts.Overview = w.obs.metrics
	}
	if c, ok := w.store.(httpapi.DeadLetterCounter); ok {
		opts.DeadLetterUsage = c
	}
	return opts
}
