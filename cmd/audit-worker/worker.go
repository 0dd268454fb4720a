package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	audit "github.com/smartlogs/audit-worker"

	"github.com/smartlogs/audit-worker/access"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/httpapi"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/postgres"
	"github.com/smartlogs/audit-worker/sqlite"
	"github.com/smartlogs/audit-worker/telemetry"
	"github.com/smartlogs/audit-worker/transparency"
)

// loadedConfig is the configuration the worker starts with, and where it came from.
type loadedConfig struct {
	cfg      config.Config
	embedded bool          // no configuration given: the embedded default
	source   config.Source // nil when embedded
	loaded   config.Loaded
}

// configCachePath is where the last good configuration document is kept, so that
// the worker can start while its source (S3) is unreachable.
func configCachePath() string {
	if p := os.Getenv("AUDIT_CONFIG_CACHE"); p != "" {
		return p
	}
	return config.CachePath("audit-data")
}

// loadConfig reads the configuration from ref (a path, file:// or s3:// URL), or
// returns the embedded default when ref is empty. From an unreachable source it
// starts from the cached last good copy and says so (loaded.Degraded).
func loadConfig(ctx context.Context, ref string) (loadedConfig, error) {
	if ref == "" {
		return loadedConfig{cfg: config.Default(), embedded: true}, nil
	}
	src, err := config.OpenSource(ref, config.SourceOptions{})
	if err != nil {
		return loadedConfig{}, err
	}
	loaded, err := config.LoadInitial(ctx, src, configCachePath(), config.Parse)
	if err != nil {
		return loadedConfig{}, err
	}
	return loadedConfig{cfg: loaded.Config, source: src, loaded: loaded}, nil
}

// newLogger builds the logger the configuration asks for ($LOG_LEVEL wins),
// writing to out with every secret redacted (see redactingHandler), and
// returns its level, which a configuration reload can change.
func newLogger(cfg config.Config, out io.Writer) (*slog.Logger, *slog.LevelVar, error) {
	level := cfg.Logging.Level
	if env := os.Getenv("LOG_LEVEL"); env != "" {
		level = env
	}
	log, lvl, err := telemetry.NewLogger(out, level, cfg.Logging.Format)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(redactingHandler{next: log.Handler()}), lvl, nil
}

// openStore opens PostgreSQL when the configuration names it, else the embedded
// SQLite store. Both apply their migrations on open (PostgreSQL also creates the
// partitions ahead). The description names the store for logs, redacted.
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (audit.EventStore, string, error) {
	if cfg.UsesPostgres() {
		store, err := postgres.Open(ctx, postgres.Config{
			URL:             cfg.EnhancedClient.ConnectionString,
			MaxConns:        int32(cfg.EnhancedClient.MaxConnections),
			PartitionsAhead: cfg.Storage.PartitionsAhead,
			Logger:          log,
		})
		if err != nil {
			return nil, "", fmt.Errorf("open PostgreSQL store: %w", config.RedactError(err))
		}
		return store, "PostgreSQL " + config.Redact(cfg.EnhancedClient.ConnectionString), nil
	}
	path := cfg.SQLitePath()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: path, Logger: log})
	if err != nil {
		return nil, "", fmt.Errorf("open SQLite store: %w", err)
	}
	abs, _ := filepath.Abs(path)
	return store, "SQLite " + abs, nil
}

// worker is a running worker: store, pipeline, queue consumer, HTTP server
// and the loops around them.
type worker struct {
	cfg       config.Config
	log       *slog.Logger
	level     *slog.LevelVar // nil in tests that pass their own logger
	reload    *reloader      // nil without a configuration source
	api       *httpapi.Server
	store     audit.EventStore
	proc      *pipeline.Processor
	batcher   *pipeline.Batcher
	server    *http.Server
	listener  net.Listener
	keys      audit.KeyStore
	bootKey   string // the admin key made for a worker configured with none; "" otherwise
	legacyKey string // a key file from before keys were kept in the store; "" otherwise
	keyFile   string // where bootKey is
	storeDesc string
	auth      *access.Authenticator
	limits    *access.Limiter
	records   *access.Recorder
	// stopRecords ends the access recorder once the HTTP server has stopped,
	// so that the last requests' records are stored before the batcher
	// closes; recordsDone is closed when it has.
	stopRecords context.CancelFunc
	recordsDone chan struct{}
	breaker     *pipeline.Breaker
	rdb         redis.UniversalClient // nil without Redis
	queue       *queueConsumer        // nil without Redis
	obs         *observability
	mon         *monitoring
	integrator  *transparency.Integrator // nil when security.checkpoint.enabled is false

	// group owns every goroutine the worker starts (see spawn); shutdown
	// waits for all of them.
	group *errgroup.Group
	// running ends when shutdown begins or a goroutine fails; the loops stop with it.
	running context.Context
	stop    context.CancelFunc
}

// startWorker opens everything and starts serving. ctx bounds the start only:
// the worker's goroutines run until shutdown, or until one of them fails
// (see run). With a configuration source (lc.source) it follows it and
// applies new versions; level, when set, is the log level they change.
func startWorker(ctx context.Context, lc loadedConfig, log *slog.Logger, level *slog.LevelVar) (*worker, error) {
	w := &worker{cfg: lc.cfg, log: log, level: level}
	base, stop := context.WithCancel(context.WithoutCancel(ctx))
	w.group, w.running = errgroup.WithContext(base)
	w.stop = stop
	if lc.source != nil {
		w.reload = newReloader(w, lc)
	}
	if err := w.start(ctx, lc.cfg); err != nil {
		w.shutdown(lc.cfg.ShutdownTimeout()) // whatever was started
		return nil, err
	}
	return w, nil
}

// spawn runs fn as one of the worker's goroutines. fn returns nil, or the
// context's error, once the worker stops; an error before that, or returning
// at all while the worker runs, is a failure: it stops the worker, and shutdown
// returns it.
func (w *worker) spawn(name string, fn func() error) {
	w.group.Go(func() error {
		err := fn()
		stopping := w.running.Err() != nil
		switch {
		case stopping && (err == nil || errors.Is(err, context.Canceled)):
			return nil
		case err == nil:
			err = errors.New("returned while the worker was running")
		}
		return audit.Wrap(audit.CodeUnavailable, name+" stopped", config.RedactError(err))
	})
}

// start opens the parts in order: each may use the ones before it. The
// processor's observers are in place before the queue consumer takes a job.
func (w *worker) start(ctx context.Context, cfg config.Config) error {
	log := w.log
	var err error
	if w.store, w.storeDesc, err = openStore(ctx, cfg, log); err != nil {
		return err
	}
	if err := w.startAccessControl(ctx, cfg); err != nil {
		return err
	}
	if pg, ok := w.store.(*postgres.Store); ok {
		// Keeps monthly partitions created ahead. It logs its own failures.
		w.spawn("partition maintenance", func() error { return pg.MaintainPartitions(w.running, time.Hour) })
	}
	if w.obs, err = startObservability(ctx, cfg, log); err != nil {
		return err
	}
	if p := newDeadLetterPruner(cfg, w.store, w.obs.metrics, log); p != nil {
		w.spawn("dead-letter pruner", func() error { return p.run(w.running, deadLetterPruneInterval) })
	}
	w.breaker = pipeline.NewBreaker(pipeline.BreakerConfig{
		FailureThreshold: cfg.ReliableProcessor.CircuitBreakerConfig.FailureThreshold,
		RecoveryTimeout:  cfg.RecoveryTimeout(),
		OnChange: func(from, to pipeline.BreakerState) {
			log.Warn("circuit breaker changed state", "from", from, "to", to)
			w.obs.breakerChanged(from, to)
		},
	})
	if cfg.UsesRedis() {
		if w.rdb, err = connectRedis(ctx, cfg); err != nil {
			return err
		}
	}
	if w.mon, err = startMonitoring(cfg, w.store, w.rdb, w.obs, w); err != nil {
		return err
	}
	w.proc = pipeline.NewProcessor(w.store, pipeline.Config{
		Rules:   cfg.Rules(),
		HMACKey: []byte(cfg.Security.EncryptionKey),
		Breaker: w.breaker,
	})
	w.proc.Instrument(pipeline.Instruments{
		Tracer:    w.obs.tracer("audit-worker/pipeline"),
		Observers: w.obs.pipelineObservers(w.mon.patterns),
	})
	if w.rdb != nil {
		if w.queue, err = startQueueConsumer(cfg, w.rdb, w.proc, w.breaker, w.obs, log); err != nil {
			return err
		}
		w.spawn("BullMQ consumer", func() error { return w.queue.run(w.running) })
	}
	w.batcher = pipeline.NewBatcher(w.proc, pipeline.BatcherConfig{
		MaxSize: cfg.Storage.BatchMaxSize,
		MaxWait: cfg.BatchMaxWait(),
	})
	w.mon.run(w.spawn)
	w.startRecorder(log)
	apiOpts := w.wireObservability(cfg)
	apiOpts.Ingester, apiOpts.Store = w.batcher, w.store
	apiOpts.Auth, apiOpts.Limits, apiOpts.Records, apiOpts.Keys = w.auth, w.limits, w.records, w.keys
	if err := w.wireReadSide(&apiOpts); err != nil {
		return err
	}
	// The integrator first: it creates the checkpoint key on first start,
	// and the reports check inclusion with it.
	if err := w.startIntegrator(cfg, &apiOpts); err != nil {
		return err
	}
	if err := w.startReports(cfg, &apiOpts); err != nil {
		return err
	}
	apiOpts.MaxBodyBytes, apiOpts.Logger, apiOpts.Config = cfg.HTTP.MaxBodyBytes, log, w
	apiOpts.MaxInFlightBytes = cfg.HTTP.MaxInFlightBytes
	apiOpts.Console = w.consoleOptions()
	if w.obs.metrics != nil {
		apiOpts.IngestObserver = w.obs.metrics
	}
	w.api = httpapi.New(apiOpts)
	if err := w.serve(cfg.HTTP.Address); err != nil {
		return err
	}
	if w.reload != nil {
		w.spawn("configuration watcher", func() error { return w.reload.watcher.Run(w.running) })
	}
	return nil
}

// startAccessControl sets up who may do what: stored keys, the
// configuration's keys and OIDC issuer, the rate limits, and — for a worker
// configured with no credentials — its own admin key.
func (w *worker) startAccessControl(ctx context.Context, cfg config.Config) error {
	keys, ok := w.store.(audit.KeyStore)
	if !ok {
		return fmt.Errorf("the store keeps no API keys")
	}
	w.keys = keys
	var err error
	if w.bootKey, w.legacyKey, w.keyFile, err = bootstrapKey(ctx, cfg, keys, w.log); err != nil {
		return err
	}
	w.auth = access.NewAuthenticator(access.Options{Keys: keys, Logger: w.log})
	w.auth.SetStaticKeys(staticKeys(cfg, w.legacyKey))
	oidc, err := newOIDC(cfg, w.log)
	if err != nil {
		return err
	}
	if oidc != nil {
		w.auth.SetOIDC(oidc)
	}
	w.limits = access.NewLimiter(limitConfig(cfg.HTTP.RateLimits))
	w.spawn("API key bookkeeping", func() error { return w.auth.Run(w.running) })
	return nil
}

// wireReadSide hands the store to the read routes: search, exports, the
// cursor key, dead letters, and the HMAC key in force for verification.
func (w *worker) wireReadSide(opts *httpapi.Options) error {
	store, ok := w.store.(cliStore)
	if !ok {
		return fmt.Errorf("the store cannot serve the read side")
	}
	secrets, ok := w.store.(audit.SecretStore)
	if !ok {
		return fmt.Errorf("the store keeps no shared secrets")
	}
	dead, ok := w.store.(httpapi.DeadLetterStore)
	if !ok {
		return fmt.Errorf("the store cannot manage dead letters")
	}
	opts.Events = httpapi.EventOptions{Reader: store, Exports: store, Secrets: secrets,
		HMACKey: func() []byte { return []byte(w.currentConfig().Security.EncryptionKey) }}
	opts.DeadLetters = dead
	return nil
}

// startRecorder starts storing access records through the pipeline.
func (w *worker) startRecorder(log *slog.Logger) {
	opts := access.RecorderOptions{Pipeline: w.batcher, Logger: log}
	if m := w.obs.metrics; m != nil {
		opts.OnLost = m.AccessRecordsLost
	}
	w.records = access.NewRecorder(opts)
	recCtx, cancel := context.WithCancel(context.WithoutCancel(w.running))
	w.stopRecords, w.recordsDone = cancel, make(chan struct{})
	w.spawn("access recorder", func() error {
		defer close(w.recordsDone)
		return w.records.Run(recCtx)
	})
}

// serve listens on address and serves the API until shutdown.
func (w *worker) serve(address string) error {
	var err error
	w.listener, err = net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", address, err)
	}
	w.server = &http.Server{
		Handler:           w.api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(w.log.Handler(), slog.LevelWarn),
	}
	w.server.RegisterOnShutdown(w.api.EndStreams) // live streams never go idle on their own
	w.spawn("HTTP server", func() error {
		if err := w.server.Serve(w.listener); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil // Shutdown was called
	})
	return nil
}

// URL is the base URL the worker serves on.
func (w *worker) URL() string { return "http://" + w.listener.Addr().String() }

// run waits until ctx ends or one of the worker's goroutines fails, then shuts
// down within the configured timeout. It returns the failure, if any, joined
// with whatever went wrong in the shutdown.
func (w *worker) run(ctx context.Context) error {
	current := w.currentConfig()
	select {
	case <-ctx.Done():
		w.log.Info("shutting down", "timeout", current.ShutdownTimeout().String())
	case <-w.running.Done():
		w.log.Error("a component of the worker failed: shutting down", "err", context.Cause(w.running))
	}
	return w.shutdown(current.ShutdownTimeout())
}

// shutdown stops taking work (HTTP requests, queue jobs), finishes what it
// accepted, sends what is pending (traces, notifications), waits for every
// goroutine and closes the connections. It closes only what was opened, so a
// failed start can call it. Its error starts with the failure that stopped
// the worker, if one did.
func (w *worker) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	// The loops (queue fetching, partition maintenance, queue sampling, the
	// configuration watcher) end with w.running; the consumer finishes or
	// gives back its batches within its own shutdown timeout.
	w.stop()
	var errs []error
	if w.queue != nil {
		errs = append(errs, w.queue.stop())
	}
	if w.server != nil {
		if err := w.server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("HTTP server shutdown: %w", err), w.server.Close())
		}
		w.api.Close()
	}
	if w.stopRecords != nil {
		w.stopRecords()
		select {
		case <-w.recordsDone:
		case <-ctx.Done():
		}
	}
	if w.batcher != nil {
		errs = append(errs, w.batcher.Close(ctx))
	}
	if w.mon != nil {
		errs = append(errs, w.mon.close(ctx)) // after the last batch: its alerts are written and queued
	}
	// Every goroutine has been told to stop; the first failure comes first.
	errs = append([]error{w.group.Wait()}, errs...)
	if w.integrator != nil && w.store != nil {
		// Every row is stored now: the last ones join a checkpoint before exit.
		if err := w.integrator.Flush(ctx); err != nil {
			errs = append(errs, fmt.Errorf("last checkpoint: %w", err))
		}
	}
	if w.obs != nil {
		errs = append(errs, w.obs.tracing.Shutdown(ctx))
	}
	if w.rdb != nil {
		errs = append(errs, w.rdb.Close())
	}
	if w.store != nil {
		errs = append(errs, w.store.Close())
	}
	return errors.Join(errs...)
}

// runWorker runs the worker until ctx ends or a component fails, logging to
// logOut.
func runWorker(ctx context.Context, configPath string, logOut io.Writer) error {
	lc, err := loadConfig(ctx, configPath)
	if err != nil {
		return err
	}
	cfg := lc.cfg
	log, level, err := newLogger(cfg, logOut)
	if err != nil {
		return err
	}
	slog.SetDefault(log) // libraries' own logs (see routeLibraryLogs) are redacted too
	if gcPercent > 0 {
		log.Info("garbage collector target set", "gcPercent", gcPercent, "override", "GOGC")
	}
	if limit := softMemoryLimit(os.LookupEnv, cfg.HTTP.MaxInFlightBytes); limit > 0 {
		debug.SetMemoryLimit(limit)
		log.Info("soft memory limit set", "bytes", limit, "override", "GOMEMLIMIT")
	}
	switch {
	case lc.embedded:
		log.Info("no configuration given (--config or CONFIG_PATH): running the embedded default")
	case lc.loaded.Degraded:
		log.Warn("configuration source unreachable: started from the cached last good copy",
			"source", lc.source.String(), "version", lc.loaded.Meta.Version, "reason", lc.loaded.Reason)
	default:
		log.Info("configuration loaded", "source", lc.source.String(), "version", lc.loaded.Meta.Version)
	}
	w, err := startWorker(ctx, lc, log, level)
	if err != nil {
		log.Error("the worker did not start", "err", err)
		return err
	}
	attrs := []any{"http", w.URL(), "console", w.URL() + "/console/", "store", w.storeDesc, "ingest", "POST " + w.URL() + "/v1/events", "health", w.URL() + "/healthz"}
	if w.keyFile != "" {
		attrs = append(attrs, "apiKeyFile", w.keyFile)
	}
	log.Info("audit worker started", attrs...)
	if err := w.run(ctx); err != nil {
		log.Error("stopped with an error", "err", err)
		return err
	}
	st := w.proc.Stats()
	log.Info("stopped", "stored", st.Stored, "duplicates", st.Duplicates,
		"rejectedValidation", st.RejectedValidation, "integrityViolations", st.IntegrityViolations, "storeRefused", st.StoreRefused)
	return nil
}
