package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/smartlogs/audit-worker/internal/testenv"
)

// clusterQueue is the queue of the cluster test: the hash tag puts every key
// of the queue (and of its dead-letter queue, "{audit-events}-failed") in the
// slot of "audit-events".
const clusterQueue = "{audit-events}"

// redisNode is one redis-server process of the test's cluster.
type redisNode struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
}

func (n *redisNode) alive() bool {
	select {
	case <-n.done:
		return false
	default:
		return true
	}
}

// redisCluster is six local redis-server processes, three masters with one
// replica each, in temporary directories; t.Cleanup stops them.
type redisCluster struct {
	t     testing.TB
	nodes []*redisNode
}

// freePortPair returns a port that is free together with its cluster bus port
// (port + 10000).
func freePortPair(t testing.TB) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		l.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port
	}
	t.Fatal("no free port pair (port, port+10000) found")
	return 0
}

// startRedisCluster starts six nodes and joins them with redis-cli --cluster create.
func startRedisCluster(t testing.TB) *redisCluster {
	t.Helper()
	server, err := exec.LookPath("redis-server")
	if err == nil {
		_, err = exec.LookPath("redis-cli")
	}
	if err != nil {
		testenv.Unavailable(t, "redis-server and redis-cli (for a local Redis Cluster)", "apt-get install redis-server", err)
	}
	c := &redisCluster{t: t}
	t.Cleanup(c.stop)
	for i := range 6 {
		dir := filepath.Join(t.TempDir(), fmt.Sprintf("node-%d", i))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		port := freePortPair(t)
		cmd := exec.Command(server, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
			"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000",
			"--save", "", "--appendonly", "no", "--logfile", "redis.log")
		n := &redisNode{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), cmd: cmd, done: make(chan struct{})}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start redis-server: %v", err)
		}
		go func() { _ = cmd.Wait(); close(n.done) }()
		c.nodes = append(c.nodes, n)
	}
	for _, n := range c.nodes {
		testenv.Eventually(t, 20*time.Second, "redis-server "+n.addr+" to answer", func() bool {
			return c.client(n).Ping(context.Background()).Err() == nil
		})
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.addrs()...)
	args = append(args, "--cluster-replicas", "1", "--cluster-yes")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	testenv.Eventually(t, 30*time.Second, "cluster_state:ok on every node, and every replica in sync", func() bool {
		for _, n := range c.nodes {
			info, err := c.client(n).ClusterInfo(context.Background()).Result()
			if err != nil || !strings.Contains(info, "cluster_state:ok") {
				return false
			}
			repl, err := c.client(n).Info(context.Background(), "replication").Result()
			if err != nil || (strings.Contains(repl, "role:slave") && !strings.Contains(repl, "master_link_status:up")) {
				return false
			}
		}
		return true
	})
	return c
}

func (c *redisCluster) addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

// client is a short-lived plain client of one node (closed at cleanup).
func (c *redisCluster) client(n *redisNode) *redis.Client {
	cl := redis.NewClient(&redis.Options{Addr: n.addr, MaxRetries: -1, DialTimeout: time.Second})
	c.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

func (c *redisCluster) node(addr string) *redisNode {
	for _, n := range c.nodes {
		if n.addr == addr {
			return n
		}
	}
	c.t.Fatalf("no node %s in the cluster", addr)
	return nil
}

// slotOwners returns the addresses of the master serving slot and of its
// replicas, read from CLUSTER NODES of a live node.
func (c *redisCluster) slotOwners(slot int64) (master string, replicas []string) {
	c.t.Helper()
	for _, n := range c.nodes {
		if !n.alive() {
			continue
		}
		text, err := c.client(n).ClusterNodes(context.Background()).Result()
		if err != nil {
			continue
		}
		masterID := ""
		type line struct{ id, addr, flags, masterOf string }
		var lines []line
		for l := range strings.Lines(text) {
			f := strings.Fields(l)
			if len(f) < 8 {
				continue
			}
			addr, _, _ := strings.Cut(f[1], "@")
			lines = append(lines, line{id: f[0], addr: addr, flags: f[2], masterOf: f[3]})
			if !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
				continue
			}
			for _, r := range f[8:] {
				lo, hi, isRange := strings.Cut(r, "-")
				a, err1 := strconv.ParseInt(lo, 10, 64)
				b := a
				var err2 error
				if isRange {
					b, err2 = strconv.ParseInt(hi, 10, 64)
				}
				if err1 == nil && err2 == nil && a <= slot && slot <= b {
					master, masterID = addr, f[0]
				}
			}
		}
		for _, l := range lines {
			if l.masterOf == masterID && masterID != "" {
				replicas = append(replicas, l.addr)
			}
		}
		return master, replicas
	}
	c.t.Fatal("no live node answers CLUSTER NODES")
	return "", nil
}

// replOffsets returns the master's master_repl_offset and the smallest offset
// its replicas acknowledged, from the master's INFO replication.
func (c *redisCluster) replOffsets(master *redisNode) (masterOff, replicaOff int64, err error) {
	info, err := c.client(master).Info(context.Background(), "replication").Result()
	if err != nil {
		return 0, 0, err
	}
	replicaOff = -1
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		k, v, _ := strings.Cut(strings.TrimSpace(sc.Text()), ":")
		switch {
		case k == "master_repl_offset":
			masterOff, _ = strconv.ParseInt(v, 10, 64)
		case strings.HasPrefix(k, "slave"):
			for kv := range strings.SplitSeq(v, ",") {
				if off, ok := strings.CutPrefix(kv, "offset="); ok {
					o, _ := strconv.ParseInt(off, 10, 64)
					if replicaOff < 0 || o < replicaOff {
						replicaOff = o
					}
				}
			}
		}
	}
	if replicaOff < 0 {
		return masterOff, 0, errors.New("the master lists no replica")
	}
	return masterOff, replicaOff, nil
}

func (c *redisCluster) stop() {
	for _, n := range c.nodes {
		if n.alive() {
			_ = n.cmd.Process.Signal(syscall.SIGKILL)
			<-n.done
		}
	}
}

// clusterConfig writes the worker's configuration for the cluster.
func (e *env) clusterConfig(c *redisCluster) string {
	e.t.Helper()
	cfg := map[string]any{
		"redis":          map[string]any{"clusterNodes": c.addrs(), "keyPrefix": e.prefix},
		"enhancedClient": map[string]any{"connectionString": e.pgURL, "maxConnections": 10},
		"reliableProcessor": map[string]any{
			"queueName":            clusterQueue,
			"concurrency":          3,
			"batchSize":            250,
			"lockDurationMs":       5000,
			"stalledIntervalMs":    5000,
			"circuitBreakerConfig": map[string]any{"failureThreshold": 5, "recoveryTimeout": 1000},
			"deadLetterConfig":     map[string]any{"queueName": clusterQueue + "-failed"},
		},
		"worker":  map[string]any{"port": 3001, "shutdownTimeout": 10000},
		"http":    map[string]any{"address": "127.0.0.1:0", "apiKeys": []string{ingestKey}},
		"storage": map[string]any{"dataDir": filepath.Join(e.dir, "data")},
		"logging": map[string]any{"format": "json", "level": "info"},
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		e.t.Fatal(err)
	}
	path := filepath.Join(e.dir, "cluster-worker.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		e.t.Fatal(err)
	}
	return path
}

// clusterCounts returns the length of every state of the cluster queue.
func clusterCounts(ctx context.Context, rdb *redis.ClusterClient, prefix string) (map[string]int64, error) {
	base := prefix + ":" + clusterQueue + ":"
	out := map[string]int64{}
	for _, s := range []string{"wait", "active", "paused"} {
		n, err := rdb.LLen(ctx, base+s).Result()
		if err != nil {
			return nil, err
		}
		out[s] = n
	}
	for _, s := range []string{"delayed", "prioritized", "failed", "completed"} {
		n, err := rdb.ZCard(ctx, base+s).Result()
		if err != nil {
			return nil, err
		}
		out[s] = n
	}
	return out, nil
}

// keysOf reads the "id timestamp" lines a producer wrote for queue.
func keysOf(t testing.TB, path, queue string, want int) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	keys := make(map[string]bool, want)
	for line := range strings.Lines(string(data)) {
		id, ts, ok := strings.Cut(strings.TrimSpace(line), " ")
		if !ok {
			t.Fatalf("%s: bad line %q", path, line)
		}
		keys["bullmq:"+queue+":"+id+":"+ts] = true
	}
	if len(keys) != want {
		t.Fatalf("%s lists %d distinct jobs, want %d", path, len(keys), want)
	}
	return keys
}

// TestClusterFailover runs the worker against a six-node Redis Cluster (three
// masters, one replica each). Node producers add AUDIT_E2E_CLUSTER_EVENTS
// events (default 5000) over an ioredis Cluster connection; once the replica
// of the queue's master has caught up, the worker starts, and when a third of
// the rows are stored the queue's master is SIGKILLed. The replica takes over
// after the cluster node timeout (2 s) and the worker, not restarted, must
// carry on: every event stored exactly once, nothing left in wait or active,
// and the time from the kill until rows grow again bounded.
func TestClusterFailover(t *testing.T) {
	if testingParallelOK() {
		t.Parallel()
	}
	n := envInt(t, "AUDIT_E2E_CLUSTER_EVENTS", 5000)
	e := newEnv(t)
	c := startRedisCluster(t)
	ctx := context.Background()
	// The worker's slot-map refresh (go-redis's default, 60 s, would keep this
	// client on the dead master for a minute).
	rdb := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.addrs(), ClusterStateReloadInterval: 2 * time.Second})
	t.Cleanup(func() { _ = rdb.Close() })

	slot, err := c.client(c.nodes[0]).ClusterKeySlot(ctx, clusterQueue).Result()
	if err != nil {
		t.Fatal(err)
	}
	masterAddr, replicas := c.slotOwners(slot)
	if masterAddr == "" || len(replicas) == 0 {
		t.Fatalf("slot %d: master %q, replicas %v", slot, masterAddr, replicas)
	}
	t.Logf("slot of %s: %d, master %s, replica %v", clusterQueue, slot, masterAddr, replicas)

	idsFile := filepath.Join(e.dir, "ids.txt")
	var res produced
	e.nodeCluster(2*time.Minute+time.Duration(n)*time.Millisecond, &res, "cluster-produce.mjs",
		"--nodes", strings.Join(c.addrs(), ","), "--prefix", e.prefix, "--queue", clusterQueue,
		"--count", strconv.Itoa(n), "--chunk", "1000", "--out", idsFile)
	keys := keysOf(t, idsFile, clusterQueue, n)
	t.Logf("enqueued %d events over an ioredis Cluster connection in %d ms", res.Count, res.ElapsedMs)

	// Asynchronous replication: wait until the replica holds every add, so
	// that the failover cannot lose a job that was acknowledged to the producer.
	master := c.node(masterAddr)
	testenv.EventuallyNil(t, 30*time.Second, func() error {
		mo, ro, err := c.replOffsets(master)
		if err == nil && ro < mo {
			err = fmt.Errorf("replica at offset %d, master at %d", ro, mo)
		}
		return err
	})

	logPath := filepath.Join(e.dir, "worker.log")
	dumpLogOnFailure(t, logPath)
	cfg := e.clusterConfig(c)
	e.migrate(cfg)
	w := e.startWorker(cfg, logPath)

	var atKill int64
	testenv.EventuallyNil(t, 2*time.Minute+time.Duration(n)*time.Millisecond, func() error {
		if atKill, err = e.rowCount(ctx); err != nil {
			t.Fatal(err)
		}
		if atKill >= int64(n)/3 {
			return nil
		}
		return fmt.Errorf("only %d/%d rows", atKill, n)
	})
	if err := master.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	<-master.done
	// The baseline is read once the master is gone: what the worker stored
	// before then it acknowledged to the old master.
	atKill, err = e.rowCount(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("SIGKILL master %s at %d/%d rows", masterAddr, atKill, n)

	// Batches in flight at the kill may still commit: rows "grow again" once
	// they pass what those batches hold (concurrency × batch size), which only
	// jobs fetched from the new master can do.
	inFlight := int64(3 * 250)
	var resumedAt time.Time
	var rows int64
	testenv.EventuallyNil(t, time.Minute, func() error {
		if rows, err = e.rowCount(ctx); err != nil {
			t.Fatal(err)
		}
		if w.exited() {
			t.Fatalf("worker exited after the failover: %v", w.err)
		}
		if rows > atKill+inFlight || rows == int64(n) {
			resumedAt = time.Now()
			return nil
		}
		return fmt.Errorf("%d rows, %d at the kill", rows, atKill)
	})
	resume := resumedAt.Sub(killedAt)
	t.Logf("rows grew again %s after the kill (%d rows)", resume.Round(time.Millisecond), rows)

	var counts map[string]int64
	testenv.EventuallyNil(t, 2*time.Minute+time.Duration(n)*time.Millisecond, func() error {
		if rows, err = e.rowCount(ctx); err != nil {
			t.Fatal(err)
		}
		counts, err = clusterCounts(ctx, rdb, e.prefix)
		if err == nil && (rows != int64(n) || pending(counts) != 0) {
			err = fmt.Errorf("%d/%d rows, queue %v", rows, n, counts)
		}
		return err
	})
	drained := time.Since(killedAt)
	newMaster, _ := c.slotOwners(slot)
	// Jobs whose completion the dead master took with it come back (stalled,
	// or still in wait on the replica) and are processed again: the store
	// must find them already there.
	duplicates := (&goWorker{name: "cluster", baseURL: workerURL(t, logPath)}).metrics(t)["audit_events_duplicate_total"]
	if err := w.stop(t, 15*time.Second); err != nil {
		t.Errorf("worker did not stop cleanly on SIGTERM: %v", err)
	}
	e.checkStored(keys)
	t.Logf("queue after the drain: %v; duplicates the store found: %.0f; drained %s after the kill; the slot's master is now %s",
		counts, duplicates, drained.Round(time.Millisecond), newMaster)
	if counts["wait"]+counts["active"]+counts["failed"] != 0 {
		t.Errorf("queue %v: want nothing in wait, active or failed", counts)
	}
	if newMaster == masterAddr || newMaster == "" {
		t.Errorf("slot %d still served by %q after the kill, want its replica", slot, newMaster)
	}
	if bound := 30 * time.Second; resume > bound {
		t.Errorf("the worker resumed %s after the kill, want within %s", resume, bound)
	}
}

// nodeCluster runs a script that takes its own connection arguments (no
// --redis) and decodes its JSON output into out.
func (e *env) nodeCluster(timeout time.Duration, out any, script string, args ...string) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", append([]string{filepath.Join(e.root, "e2e", "node", script)}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	outBytes, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		e.t.Fatalf("node %s: %v\nstdout: %s\nstderr: %s", script, err, outBytes, stderr)
	}
	if err := json.Unmarshal(outBytes, out); err != nil {
		e.t.Fatalf("node %s: decode output %q: %v", script, outBytes, err)
	}
}
