package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	audit "github.com/smartlogs/audit-worker"

	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/httpapi"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/postgres"
	"github.com/smartlogs/audit-worker/sqlite"
	"github.com/smartlogs/audit-worker/telemetry"
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

// newLogger builds the logger the configuration asks for ($LOG_LEVEL wins) and
// returns its level, which a configuration reload can change.
func newLogger(cfg config.Config) (*slog.Logger, *slog.LevelVar, error) {
	level := cfg.Logging.Level
	if env := os.Getenv("LOG_LEVEL"); env != "" {
		level = env
	}
	return telemetry.NewLogger(os.Stderr, level, cfg.Logging.Format)
}

// openStore opens PostgreSQL when the configuration names it, else the embedded
// SQLite store. Both apply their migrations on open (PostgreSQL also creates the
// partitions ahead).
func openStore(ctx context.Context, cfg config.Config, log *slog.Logger) (audit.EventStore, string, error) {
	if cfg.UsesPostgres() {
		store, err := postgres.Open(ctx, postgres.Config{
			URL:             cfg.EnhancedClient.ConnectionString,
			MaxConns:        int32(cfg.EnhancedClient.MaxConnections),
			PartitionsAhead: cfg.Storage.PartitionsAhead,
			Logger:          log,
		})
		if err != nil {
			return nil, "", fmt.Errorf("open PostgreSQL store: %w", err)
		}
		return store, "PostgreSQL " + redactURL(cfg.EnhancedClient.ConnectionString), nil
	}
	path := cfg.SQLitePath()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: path, Logger: log})
	if err != nil {
		return nil, "", fmt.Errorf("open SQLite store: %w", err)
	}
	abs, _ := filepath.Abs(path)
	return store, "SQLite " + abs, nil
}

// redactURL hides the password of a connection URL, for logs.
func redactURL(raw string) string {
	i := strings.Index(raw, "://")
	at := strings.LastIndex(raw, "@")
	if i < 0 || at < i {
		return raw
	}
	userinfo := raw[i+3 : at]
	if user, _, ok := strings.Cut(userinfo, ":"); ok {
		return raw[:i+3] + user + ":***" + raw[at:]
	}
	return raw
}

// apiKeys returns the configured ingest keys or, when there are none, the key
// kept in the data directory, creating it (mode 0600) on first start.
func apiKeys(cfg config.Config) (keys []string, keyFile string, err error) {
	if len(cfg.HTTP.APIKeys) > 0 {
		return cfg.HTTP.APIKeys, "", nil
	}
	keyFile = filepath.Join(cfg.Storage.DataDir, "api-key")
	data, err := os.ReadFile(keyFile)
	if err == nil {
		key := strings.TrimSpace(string(data))
		if len(key) < 16 {
			return nil, keyFile, fmt.Errorf("API key file %s holds a key shorter than 16 characters", keyFile)
		}
		return []string{key}, keyFile, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, keyFile, fmt.Errorf("read API key: %w", err)
	}
	if err := os.MkdirAll(cfg.Storage.DataDir, 0o700); err != nil {
		return nil, keyFile, fmt.Errorf("create data directory: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, keyFile, fmt.Errorf("generate API key: %w", err)
	}
	key := "awk_" + base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(keyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, keyFile, fmt.Errorf("save API key: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		return nil, keyFile, fmt.Errorf("save API key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, keyFile, fmt.Errorf("save API key: %w", err)
	}
	return []string{key}, keyFile, nil
}

// worker is a running worker: store, pipeline and HTTP server.
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
	keys      []string
	keyFile   string
	storeDesc string
	breaker   *pipeline.Breaker
	rdb       redis.UniversalClient // nil without Redis
	queue     *queueConsumer        // nil without Redis
	stopQueue context.CancelFunc
	obs       *observability
	mon       *monitoring
	dead      *deadLetterPruner // nil until started
}

// startWorker opens everything and starts serving; ctx bounds background loops.
func startWorker(ctx context.Context, cfg config.Config, log *slog.Logger) (*worker, error) {
	w := &worker{cfg: cfg, log: log}
	if err := w.start(ctx, cfg); err != nil {
		w.shutdown(cfg.ShutdownTimeout()) // whatever was started
		return nil, err
	}
	return w, nil
}

// start opens the parts in order: each may use the ones before it. The
// processor's observers are in place before the queue consumer takes a job.
func (w *worker) start(ctx context.Context, cfg config.Config) error {
	log := w.log
	var err error
	if w.keys, w.keyFile, err = apiKeys(cfg); err != nil {
		return err
	}
	if w.store, w.storeDesc, err = openStore(ctx, cfg, log); err != nil {
		return err
	}
	if pg, ok := w.store.(*postgres.Store); ok {
		// Keeps monthly partitions created ahead; stops with ctx. It logs its own failures.
		go pg.MaintainPartitions(ctx, time.Hour)
	}
	if w.obs, err = startObservability(ctx, cfg, log); err != nil {
		return err
	}
	w.dead = startDeadLetterPruner(ctx, cfg, w.store, w.obs.metrics, log)
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
		queueCtx, cancel := context.WithCancel(ctx)
		w.stopQueue = cancel
		if w.queue, err = startQueueConsumer(queueCtx, cfg, w.rdb, w.proc, w.breaker, w.obs, log); err != nil {
			return err
		}
	}
	w.batcher = pipeline.NewBatcher(w.proc, pipeline.BatcherConfig{
		MaxSize: cfg.Storage.BatchMaxSize,
		MaxWait: cfg.BatchMaxWait(),
	})
	w.mon.run()
	apiOpts := w.wireObservability(ctx, cfg)
	apiOpts.Ingester, apiOpts.Store, apiOpts.APIKeys = w.batcher, w.store, w.keys
	apiOpts.MaxBodyBytes, apiOpts.Logger, apiOpts.Config = cfg.HTTP.MaxBodyBytes, log, w
	apiOpts.MaxInFlightBytes = cfg.HTTP.MaxInFlightBytes
	if w.obs.metrics != nil {
		apiOpts.IngestObserver = w.obs.metrics
	}
	w.api = httpapi.New(apiOpts)
	w.listener, err = net.Listen("tcp", cfg.HTTP.Address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP.Address, err)
	}
	w.server = &http.Server{
		Handler:           w.api,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		if err := w.server.Serve(w.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "err", err)
		}
	}()
	return nil
}

// URL is the base URL the worker serves on.
func (w *worker) URL() string { return "http://" + w.listener.Addr().String() }

// shutdown stops taking work (HTTP requests, queue jobs), finishes what it
// accepted, sends what is pending (traces, notifications) and closes the
// connections. It closes only what was opened, so a failed start can call it.
func (w *worker) shutdown(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var errs []error
	if w.stopQueue != nil {
		w.stopQueue() // the consumer finishes or gives back its batches within timeout
	}
	if w.queue != nil {
		errs = append(errs, w.queue.stop())
	}
	if w.server != nil {
		errs = append(errs, w.server.Shutdown(ctx))
		w.api.Close()
	}
	if w.batcher != nil {
		errs = append(errs, w.batcher.Close(ctx))
	}
	if w.mon != nil {
		errs = append(errs, w.mon.close(ctx)) // after the last batch: its alerts are written and queued
	}
	if w.obs != nil {
		errs = append(errs, w.obs.tracing.Shutdown(ctx))
	}
	if w.rdb != nil {
		errs = append(errs, w.rdb.Close())
	}
	w.dead.stop()
	if w.store != nil {
		errs = append(errs, w.store.Close())
	}
	return errors.Join(errs...)
}

func runWorker(ctx context.Context, configPath string) error {
	lc, err := loadConfig(ctx, configPath)
	if err != nil {
		return err
	}
	cfg := lc.cfg
	log, level, err := newLogger(cfg)
	if err != nil {
		return err
	}
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
	w, err := startWorker(ctx, cfg, log)
	if err != nil {
		return err
	}
	w.level = level
	if lc.source != nil {
		w.reload = newReloader(w, lc)
		go w.reload.watch(ctx)
	}
	attrs := []any{"http", w.URL(), "store", w.storeDesc, "ingest", "POST " + w.URL() + "/v1/events", "health", w.URL() + "/healthz"}
	if w.keyFile != "" {
		attrs = append(attrs, "apiKeyFile", w.keyFile)
	}
	log.Info("audit worker started", attrs...)
	<-ctx.Done()
	log.Info("shutting down", "timeout", cfg.ShutdownTimeout().String())
	current := w.currentConfig()
	if err := w.shutdown(current.ShutdownTimeout()); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	st := w.proc.Stats()
	log.Info("stopped", "stored", st.Stored, "duplicates", st.Duplicates,
		"rejectedValidation", st.RejectedValidation, "integrityViolations", st.IntegrityViolations)
	return nil
}
