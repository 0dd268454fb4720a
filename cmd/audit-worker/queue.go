package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/bullmq"
	"github.com/smartlogs/audit-worker/config"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/queueworker"
)

// clusterStateReload is how often the cluster client re-reads the slot map.
// A refused connection does not make go-redis re-read it (only MOVED, ASK and
// READONLY replies do), so after a failover the client keeps sending the
// queue's commands to the dead master until the next periodic reload: 60 s
// by default, 2 s here, at the cost of one CLUSTER SLOTS per period.
const clusterStateReload = 2 * time.Second

// newRedisClient connects as the configuration says: a cluster, a URL, or
// host/port/password/db as in the original's redis section.
func newRedisClient(cfg config.Config) (redis.UniversalClient, error) {
	r := cfg.Redis
	if len(r.ClusterNodes) > 0 {
		opts := &redis.ClusterOptions{Addrs: r.ClusterNodes, ClusterStateReloadInterval: clusterStateReload}
		if r.Password != nil {
			opts.Password = *r.Password
		}
		return redis.NewClusterClient(opts), nil
	}
	if r.URL != "" {
		opts, err := redis.ParseURL(r.URL)
		if err != nil {
			return nil, fmt.Errorf("redis.url: %w", config.RedactError(err))
		}
		return redis.NewClient(opts), nil
	}
	opts := &redis.Options{Addr: net.JoinHostPort(r.Host, strconv.Itoa(r.Port)), DB: r.DB}
	if r.Password != nil {
		opts.Password = *r.Password
	}
	return redis.NewClient(opts), nil
}

// queues returns the main and dead-letter queues of the configuration.
func queues(rdb redis.UniversalClient, cfg config.Config) (main, dead *bullmq.Queue) {
	opts := bullmq.QueueOptions{Prefix: cfg.Redis.KeyPrefix}
	return bullmq.NewQueue(rdb, cfg.ReliableProcessor.QueueName, opts),
		bullmq.NewQueue(rdb, cfg.ReliableProcessor.DeadLetterConfig.QueueName, opts)
}

// queueConsumer is the running BullMQ side of the worker.
type queueConsumer struct {
	rdb      redis.UniversalClient
	depths   func(ctx context.Context) (map[string]int64, error) // main and dead-letter queue depths
	consumer *bullmq.Consumer
	worker   *bullmq.Worker       // concurrency and batch size change on reload
	handler  *queueworker.Handler // so does the dead-letter alert threshold
	done     chan struct{}        // closed when run returns
}

// startQueueConsumer prepares the consumer of the main queue into proc; run
// consumes, stop waits for run to end and closes the blocking connection.
func startQueueConsumer(cfg config.Config, rdb redis.UniversalClient, proc *pipeline.Processor,
	breaker *pipeline.Breaker, obs *observability, log *slog.Logger) (*queueConsumer, error) {
	main, dead := queues(rdb, cfg)
	host, _ := os.Hostname()
	rp := cfg.ReliableProcessor
	maxStalled := *rp.MaxStalledCount
	if maxStalled == 0 {
		maxStalled = -1 // the consumer's way of saying "zero"
	}
	consumer, err := bullmq.NewConsumer(main, bullmq.ConsumerOptions{
		WorkerName:      fmt.Sprintf("audit-worker-%s-%d", host, os.Getpid()),
		LockDuration:    time.Duration(rp.LockDurationMs) * time.Millisecond,
		StalledInterval: time.Duration(rp.StalledIntervalMs) * time.Millisecond,
		MaxStalledCount: maxStalled,
	})
	if err != nil {
		return nil, err
	}
	handler := queueworker.NewHandler(queueworker.Config{
		Processor: proc, Queue: main.Name(), DeadLetters: dead,
		AlertThreshold: cfg.ReliableProcessor.DeadLetterConfig.AlertThreshold, Logger: log,
	})
	worker := bullmq.NewWorker(consumer, handler, bullmq.WorkerOptions{
		BatchSize:       cfg.ReliableProcessor.BatchSize,
		Concurrency:     cfg.ReliableProcessor.Concurrency,
		Gate:            breaker.Wait,
		ShutdownTimeout: cfg.ShutdownTimeout(),
		Logger:          log,
		Tracer:          obs.tracer("audit-worker/bullmq"),
		Observer:        obs.workerObserver(),
	})
	q := &queueConsumer{rdb: rdb, depths: queueDepths(main, dead), consumer: consumer, worker: worker,
		handler: handler, done: make(chan struct{})}
	log.Info("consuming BullMQ queue", "queue", main.Keys().Base(), "deadLetterQueue", dead.Keys().Base(),
		"batchSize", cfg.ReliableProcessor.BatchSize, "concurrency", cfg.ReliableProcessor.Concurrency)
	return q, nil
}

// connectRedis connects as the configuration says and checks that Redis answers.
func connectRedis(ctx context.Context, cfg config.Config) (redis.UniversalClient, error) {
	rdb, err := newRedisClient(cfg)
	if err != nil {
		return nil, err
	}
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("connect to Redis: %w", config.RedactError(err))
	}
	return rdb, nil
}

// run consumes until ctx ends, then lets the batches in flight finish (or
// gives them back) within the shutdown timeout.
func (q *queueConsumer) run(ctx context.Context) error {
	defer close(q.done)
	return q.worker.Run(ctx)
}

// stop waits for run (whose context has ended) and closes the blocking
// connection; the shared Redis client is closed by the worker.
func (q *queueConsumer) stop() error {
	<-q.done
	return q.consumer.Close()
}
