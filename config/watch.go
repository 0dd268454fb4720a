package config

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Defaults for WatcherOptions.
const (
	DefaultPollInterval = 30 * time.Second
	DefaultDebounce     = 100 * time.Millisecond
)

// WatcherOptions configure a Watcher. Only the zero value's defaults are needed
// in production; tests shorten Interval.
type WatcherOptions struct {
	// Interval between polls of the source (default 30 s). File sources are
	// polled too, as a safety net for file systems where fsnotify misses events
	// (network mounts, some container volumes).
	Interval time.Duration
	// Debounce is how long a file event waits for more before the file is
	// read (default 100 ms): editors and writers produce several events per
	// save, and reading mid-write would see half a document.
	Debounce time.Duration
	// Parse turns a document into a Config (default: Parse).
	Parse func([]byte) (Config, error)
	// CachePath, when set, receives every accepted document (see WriteCache).
	CachePath string
	// Start is the configuration already running, as LoadInitial returned it,
	// so the watcher does not deliver it again; zero: nothing is running yet
	// and the first good document is delivered.
	Start Loaded
	// Logger receives refused documents and fetch failures (default slog.Default()).
	Logger *slog.Logger
	// OnRefused, when set, is called (from Run's goroutine) with the reason
	// each time a new version is refused as invalid.
	OnRefused func(error)
}

// Status is what the watcher knows about the running configuration.
type Status struct {
	Source     string
	Version    string    // version of the running configuration
	LastReload time.Time // when the running configuration was fetched from its source
	LastCheck  time.Time // when the source was last asked, successfully or not
	// LastError is the last check's failure, or the refusal of the document
	// the source holds now (redacted); empty when the source holds the running version.
	LastError string
	// Degraded is true while the source cannot be reached (or has not been
	// reached since the worker started from the cache).
	Degraded bool
	Rejected int64  // documents refused as invalid since start
	Mode     string // "poll" or "fsnotify+poll"
}

// Watcher polls a Source (and watches a file source with fsnotify) and
// delivers each new valid configuration to a callback. Invalid documents are
// refused, logged and counted; the last good configuration stays in force.
type Watcher struct {
	src      Source
	onChange func(Config, Meta)
	parse    func([]byte) (Config, error)
	interval time.Duration
	debounce time.Duration
	cache    string
	log      *slog.Logger

	rejected atomic.Int64
	running  atomic.Bool

	// seen is the version last fetched, good or refused, and is sent as
	// If-None-Match: a refused document is then not fetched, logged and
	// counted again on every poll. Only Run's goroutine touches it.
	seen      string
	onRefused func(error)

	mu     sync.Mutex
	status Status
}

// NewWatcher returns a watcher of src that calls onChange (from Run's
// goroutine, so it should not block for long) with each new valid configuration.
func NewWatcher(src Source, onChange func(Config, Meta), opts WatcherOptions) *Watcher {
	w := &Watcher{
		src:       src,
		onChange:  onChange,
		parse:     opts.Parse,
		interval:  opts.Interval,
		debounce:  opts.Debounce,
		cache:     opts.CachePath,
		log:       opts.Logger,
		seen:      opts.Start.Meta.Version,
		onRefused: opts.OnRefused,
	}
	if w.parse == nil {
		w.parse = Parse
	}
	if w.interval <= 0 {
		w.interval = DefaultPollInterval
	}
	if w.debounce <= 0 {
		w.debounce = DefaultDebounce
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.onChange == nil {
		w.onChange = func(Config, Meta) {}
	}
	w.status = Status{
		Source:     src.String(),
		Version:    opts.Start.Meta.Version,
		LastReload: opts.Start.Meta.Time,
		LastError:  Redact(opts.Start.Reason),
		Degraded:   opts.Start.Degraded,
		Mode:       "poll",
	}
	return w
}

// Rejected is how many documents were refused as invalid (a metric).
func (w *Watcher) Rejected() int64 { return w.rejected.Load() }

// Status returns a snapshot of the watcher's state.
func (w *Watcher) Status() Status {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.status
	s.Rejected = w.rejected.Load()
	return s
}

// Run checks the source at once, then on every poll interval and file event,
// until ctx ends; it returns nil then. Everything it starts (the fsnotify
// watcher, timers) is stopped before it returns.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return errors.New("config watcher: already running")
	}
	defer w.running.Store(false)

	var events <-chan fsnotify.Event
	var watchErrs <-chan error
	var isOurFile func(string) bool
	if fs, ok := w.src.(*FileSource); ok {
		fw, match, err := watchFile(fs.Path())
		if err != nil {
			w.log.Warn("config: cannot watch the file, polling only", "source", w.src.String(), "interval", w.interval, "error", err)
		} else {
			defer fw.Close()
			events, watchErrs, isOurFile = fw.Events, fw.Errors, match
			w.mu.Lock()
			w.status.Mode = "fsnotify+poll"
			w.mu.Unlock()
		}
	}

	ticker := time.NewTicker(w.interval)
	defer ticker.Stop()
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()

	// At once: the document may have changed between LoadInitial and the
	// watch being set up, and a degraded start should recover without waiting.
	w.check(ctx)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			w.check(ctx)
		case <-settle.C:
			w.check(ctx)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if isOurFile(ev.Name) {
				settle.Reset(w.debounce)
			}
		case err, ok := <-watchErrs:
			if !ok {
				watchErrs = nil
				continue
			}
			// fsnotify errors (e.g. queue overflow) can lose events; the poll
			// catches up, so this is a warning, not a failure.
			w.log.Warn("config: file watch error, polling continues", "source", w.src.String(), "error", err)
			settle.Reset(w.debounce)
		}
	}
}

// watchFile watches the directory holding path rather than the file itself:
// editors and deploy tools replace the file (write a new one, rename it over
// the old), which ends a watch on the old inode. match tells which events in
// the directory concern the file: its own name, and Kubernetes' "..data"
// symlink swap used for mounted ConfigMaps and Secrets.
func watchFile(path string) (*fsnotify.Watcher, func(string) bool, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, nil, fmt.Errorf("watch %s: %w", path, err)
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, nil, fmt.Errorf("watch %s: %w", path, err)
	}
	dir, base := filepath.Split(abs)
	if err := fw.Add(dir); err != nil {
		fw.Close()
		return nil, nil, fmt.Errorf("watch directory %s: %w", dir, err)
	}
	match := func(name string) bool {
		b := filepath.Base(name)
		return b == base || strings.HasPrefix(b, "..data")
	}
	return fw, match, nil
}

// check fetches the source once and applies what it finds.
func (w *Watcher) check(ctx context.Context) {
	current := w.Status().Version
	doc, version, err := w.src.Fetch(ctx, w.seen)
	now := time.Now()
	switch {
	case errors.Is(err, ErrNotModified):
		w.mu.Lock()
		w.status.LastCheck, w.status.Degraded = now, false
		if w.seen == current {
			w.status.LastError = ""
		}
		w.mu.Unlock()
		return
	case err != nil:
		if ctx.Err() != nil {
			return // shutting down; not the source's fault
		}
		err = RedactError(err) // SDK and network errors can quote the endpoint URL
		w.log.Warn("config: check failed, keeping the running configuration",
			"source", w.src.String(), "version", current, "error", err)
		w.mu.Lock()
		w.status.LastCheck, w.status.LastError = now, err.Error()
		if errors.Is(err, ErrSourceUnavailable) {
			w.status.Degraded = true
		}
		w.mu.Unlock()
		return
	}

	if len(bytes.TrimSpace(doc)) == 0 {
		// An empty file is the usual middle state of a non-atomic rewrite
		// (truncate, then write): not refused or counted, and not remembered
		// as seen, so the next event or poll reads the finished document.
		w.log.Debug("config: document is empty, waiting for it to be written", "source", w.src.String())
		w.mu.Lock()
		w.status.LastCheck, w.status.LastError, w.status.Degraded = now, "document is empty", false
		w.mu.Unlock()
		return
	}
	w.seen = version
	if version == current {
		// Back to the running version (e.g. a refused document was reverted).
		w.mu.Lock()
		w.status.LastCheck, w.status.LastError, w.status.Degraded = now, "", false
		w.mu.Unlock()
		return
	}
	cfg, err := w.parse(doc)
	if err != nil {
		err = RedactError(err)
		w.rejected.Add(1)
		if w.onRefused != nil {
			w.onRefused(err)
		}
		attrs := []any{"source", w.src.String(), "version", version, "running_version", current}
		var ce *Error
		if errors.As(err, &ce) {
			problems := make([]string, len(ce.Problems))
			for i, p := range ce.Problems {
				problems[i] = p.Field + ": " + p.Rule
			}
			attrs = append(attrs, "problems", problems)
		} else {
			attrs = append(attrs, "error", err)
		}
		w.log.Error("config: new configuration refused, keeping the running one", attrs...)
		w.mu.Lock()
		w.status.LastCheck, w.status.Degraded = now, false
		w.status.LastError = fmt.Sprintf("version %s refused: %v", version, err)
		w.mu.Unlock()
		return
	}

	meta := Meta{Version: version, Source: w.src.String(), Time: now}
	if w.cache != "" {
		if err := WriteCache(w.cache, CachedDocument{Source: meta.Source, Version: version, SavedAt: now, Document: doc}); err != nil {
			// The new configuration is still applied; only the fallback copy is stale.
			w.log.Warn("config: cannot update the cache", "path", w.cache, "error", err)
		}
	}
	w.mu.Lock()
	w.status.Version, w.status.LastReload, w.status.LastCheck = version, now, now
	w.status.LastError, w.status.Degraded = "", false
	w.mu.Unlock()
	w.log.Info("config: new configuration loaded", "source", meta.Source, "version", version, "previous_version", current)
	w.onChange(cfg, meta)
}
