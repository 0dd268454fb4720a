// Package faultproxy is a TCP proxy that injects network faults between a
// client and a server, for tests: added latency, loss, connections cut (also
// in the middle of a command), and a server that accepts and never answers.
// Faults are switched while traffic flows, per direction.
//
// The faults are made in user space because the test hosts have no netem
// (tc qdisc), and a proxy needs no privileges.
//
// Toxiproxy (github.com/Shopify/toxiproxy/v2) was considered as an
// in-process library. It is not used: it has no fault that turns a lost
// segment into a retransmission stall (its faults drop bytes or close), its
// cuts act on data flowing after the toxic is added rather than resetting
// every open connection at once, and using it in-process brings its HTTP API
// router, its CLI and its zerolog logging into the module, for about as much
// code as this package has.
//
// # Faults
//
//   - Latency: every chunk read in a direction is held for d before it is
//     written on; chunks keep their order, and reads go on meanwhile, so the
//     link is slow but not narrow.
//   - Loss: with probability p a chunk is held for a retransmission timeout,
//     drawn uniformly from 200 ms to 1 s (Linux's minimum RTO to the initial
//     one), and the chunks after it wait behind it. On TCP a lost segment is
//     sent again by the kernel: the application never sees missing bytes,
//     only a stall followed by a burst, which is what this produces.
//   - Blackhole: the bytes of a direction are read and thrown away. A new
//     connection made while the upstream direction is blackholed is accepted
//     and read, but no connection to the server is made. Since those bytes
//     are gone and no real network loses bytes silently on TCP, Restore
//     resets every connection that lost any.
//   - Cut: every open connection is reset (RST), at once or after a number
//     of further bytes so that the reset lands inside a command. New
//     connections are then reset on accept, refused (the listener closes
//     until Restore), or forwarded with the same byte budget.
//
// Restore ends every fault.
package faultproxy

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Direction is the way bytes flow through the proxy.
type Direction int

const (
	Upstream   Direction = 1 << iota // client to server
	Downstream                       // server to client
	Both       = Upstream | Downstream
)

func (d Direction) String() string {
	switch d {
	case Upstream:
		return "upstream"
	case Downstream:
		return "downstream"
	case Both:
		return "both"
	}
	return fmt.Sprintf("Direction(%d)", int(d))
}

// Faults are the faults of one direction. The zero value forwards untouched.
type Faults struct {
	Latency   time.Duration // added to every chunk
	Loss      float64       // probability (0–1) that a chunk stalls for a retransmission timeout
	Blackhole bool          // read and discard
}

// NewConns says what a cut does to connections made while it lasts.
type NewConns int

const (
	ResetNew  NewConns = iota // accept, then reset at once
	RefuseNew                 // close the listener until Restore: connecting is refused
	BudgetNew                 // forward them, with the same byte budget as the open ones
)

// Cut describes a cut.
type Cut struct {
	// AfterBytes, when > 0, lets each connection forward this many more bytes
	// in Count's direction before it is reset; 0 resets at once.
	AfterBytes int64
	// Count is the direction whose bytes AfterBytes counts; default Upstream.
	Count Direction
	// New is what happens to connections made during the cut.
	New NewConns
}

// Minimum and maximum retransmission timeouts of a lost chunk.
const (
	MinRTO = 200 * time.Millisecond
	MaxRTO = time.Second
)

// Options configure a proxy.
type Options struct {
	// Listen is the address to listen on; default 127.0.0.1:0.
	Listen string
	// DialTimeout bounds connecting to the target; default 5 s.
	DialTimeout time.Duration
	// Seed makes the loss draws repeatable; 0 seeds from the clock.
	Seed   uint64
	Logger *slog.Logger
}

// Stats are counts since the proxy started.
type Stats struct {
	Accepted  int64 // connections forwarded to the target
	Reset     int64 // connections reset by a cut (open ones, and new ones reset on accept)
	Sunk      int64 // connections accepted while upstream was blackholed, never forwarded
	Bytes     int64 // bytes forwarded, both directions
	Discarded int64 // bytes thrown away by a blackhole
	Stalls    int64 // chunks held for a retransmission timeout
}

// Proxy forwards TCP connections to a target and injects faults.
type Proxy struct {
	target string
	opts   Options
	log    *slog.Logger

	mu       sync.Mutex
	addr     string
	ln       net.Listener
	faults   [2]Faults // by direction index: 0 upstream, 1 downstream
	cut      *Cut
	links    map[*link]struct{}
	rng      *rand.Rand
	closed   bool
	serveEnd chan struct{} // closed when the current accept loop ends

	wg sync.WaitGroup // the accept loop and every link's goroutines

	accepted, reset, sunk, bytes, discarded, stalls atomic.Int64
}

// Start listens and forwards every connection to target.
func Start(target string, opts Options) (*Proxy, error) {
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 5 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	seed := opts.Seed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen on %s: %w", opts.Listen, err)
	}
	p := &Proxy{
		target: target, opts: opts, log: opts.Logger, addr: ln.Addr().String(),
		links: map[*link]struct{}{}, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
	}
	p.serveOn(ln)
	return p, nil
}

// Addr is the address clients connect to.
func (p *Proxy) Addr() string { return p.addr }

// Target is the address connections are forwarded to.
func (p *Proxy) Target() string { return p.target }

// Stats returns the counts so far.
func (p *Proxy) Stats() Stats {
	return Stats{
		Accepted: p.accepted.Load(), Reset: p.reset.Load(), Sunk: p.sunk.Load(),
		Bytes: p.bytes.Load(), Discarded: p.discarded.Load(), Stalls: p.stalls.Load(),
	}
}

// Set replaces the faults of the directions in dir; chunks already held keep
// their release time.
func (p *Proxy) Set(dir Direction, f Faults) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range 2 {
		if dir&(1<<i) != 0 {
			p.faults[i] = f
		}
	}
}

// Latency adds d to every chunk in dir.
func (p *Proxy) Latency(dir Direction, d time.Duration) { p.Set(dir, Faults{Latency: d}) }

// Loss stalls a chunk in dir with probability prob.
func (p *Proxy) Loss(dir Direction, prob float64) { p.Set(dir, Faults{Loss: prob}) }

// Blackhole discards every byte in dir.
func (p *Proxy) Blackhole(dir Direction) { p.Set(dir, Faults{Blackhole: true}) }

// Cut resets the open connections as c says and treats new ones per c.New
// until Restore. It returns how many open connections it reset now or armed
// to reset after c.AfterBytes.
func (p *Proxy) Cut(c Cut) int {
	if c.Count == 0 {
		c.Count = Upstream
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = &c
	n := len(p.links)
	for l := range p.links {
		if c.AfterBytes > 0 {
			l.arm(c.AfterBytes, c.Count)
		} else {
			l.resetNow()
		}
	}
	if c.New == RefuseNew && p.ln != nil {
		_ = p.ln.Close() // the accept loop ends; Restore listens again
		p.ln = nil
	}
	p.log.Info("faultproxy: cut", "target", p.target, "connections", n, "afterBytes", c.AfterBytes)
	return n
}

// Restore ends every fault: no latency, loss or blackhole, no cut. Connections
// that lost bytes to a blackhole are reset. It fails only when the listener
// closed by a RefuseNew cut cannot listen on its address again.
func (p *Proxy) Restore() error {
	p.mu.Lock()
	p.faults = [2]Faults{}
	p.cut = nil
	for l := range p.links {
		l.disarm()
		if l.lostBytes.Load() {
			l.resetNow()
		}
	}
	relisten := p.ln == nil && !p.closed
	oldLoop := p.serveEnd
	p.mu.Unlock()
	if !relisten {
		return nil
	}
	<-oldLoop // the old accept loop is gone (it may have been waiting for p.mu)
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("faultproxy: listen again on %s: %w", p.addr, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil || p.closed { // another Restore or Close came first
		_ = ln.Close()
		return nil
	}
	p.serveOnLocked(ln)
	return nil
}

// Close stops listening, resets every connection and waits for the proxy's
// goroutines.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for l := range p.links {
		l.resetNow()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

func (p *Proxy) serveOn(ln net.Listener) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serveOnLocked(ln)
}

func (p *Proxy) serveOnLocked(ln net.Listener) {
	p.ln = ln
	end := make(chan struct{})
	p.serveEnd = end
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		defer close(end)
		p.serve(ln)
	}()
}

func (p *Proxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return // listener closed
		}
		p.admit(c)
	}
}

// admit decides what becomes of an accepted connection.
func (p *Proxy) admit(client net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || (p.cut != nil && p.cut.New != BudgetNew) {
		p.reset.Add(1)
		resetConn(client)
		return
	}
	l := &link{p: p, client: client, budget: -1, gone: make(chan struct{})}
	if p.cut != nil {
		l.arm(p.cut.AfterBytes, p.cut.Count)
	}
	p.links[l] = struct{}{}
	p.wg.Add(1)
	if p.faults[0].Blackhole {
		p.sunk.Add(1)
		go l.sink()
		return
	}
	p.accepted.Add(1)
	go l.run()
}

func (p *Proxy) drop(l *link) {
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// faultsFor returns the faults now in force in dir and, for a lossy
// direction, whether this chunk is lost and its retransmission timeout.
func (p *Proxy) faultsFor(dir Direction) (f Faults, stall time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f = p.faults[dirIndex(dir)]
	if f.Loss > 0 && p.rng.Float64() < f.Loss {
		stall = MinRTO + time.Duration(p.rng.Int64N(int64(MaxRTO-MinRTO)+1))
	}
	return f, stall
}

func dirIndex(d Direction) int {
	if d == Downstream {
		return 1
	}
	return 0
}

// link is one client connection and, once dialled, its server connection.
type link struct {
	p      *Proxy
	client net.Conn

	mu       sync.Mutex
	server   net.Conn
	budget   int64 // bytes left before a reset; -1 unlimited
	countDir Direction
	done     bool
	gone     chan struct{} // closed with the link: wakes writers holding chunks

	lostBytes atomic.Bool // a blackhole discarded some of its bytes
}

// arm gives the link a byte budget in dir (p.mu held).
func (l *link) arm(n int64, dir Direction) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.budget < 0 || n < l.budget {
		l.budget, l.countDir = n, dir
	}
}

func (l *link) disarm() {
	l.mu.Lock()
	l.budget = -1
	l.mu.Unlock()
}

// take returns how many of n bytes in dir may pass and whether the budget is
// spent after them.
func (l *link) take(dir Direction, n int) (allowed int, spent bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.budget < 0 || l.countDir != dir {
		return n, false
	}
	allowed = int(min(int64(n), l.budget))
	l.budget -= int64(allowed)
	return allowed, l.budget == 0
}

// resetNow closes both ends with a TCP RST.
func (l *link) resetNow() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	l.done = true
	close(l.gone)
	l.p.reset.Add(1)
	resetConn(l.client)
	if l.server != nil {
		resetConn(l.server)
	}
}

// closeBoth closes both ends normally (one side closed or failed).
func (l *link) closeBoth() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.done {
		return
	}
	l.done = true
	close(l.gone)
	_ = l.client.Close()
	if l.server != nil {
		_ = l.server.Close()
	}
}

// sink reads and discards what a client sends while upstream is blackholed;
// it ends when the client goes or Restore resets it.
func (l *link) sink() {
	defer l.p.wg.Done()
	defer l.p.drop(l)
	l.lostBytes.Store(true) // never forwarded: Restore resets it
	buf := make([]byte, 32<<10)
	for {
		n, err := l.client.Read(buf)
		l.p.discarded.Add(int64(n))
		if err != nil {
			break
		}
	}
	l.closeBoth()
}

func (l *link) run() {
	defer l.p.wg.Done()
	defer l.p.drop(l)
	ctx, cancel := context.WithTimeout(context.Background(), l.p.opts.DialTimeout)
	server, err := (&net.Dialer{}).DialContext(ctx, "tcp", l.p.target)
	cancel()
	if err != nil {
		l.p.log.Warn("faultproxy: dial target", "target", l.p.target, "err", err)
		l.resetNow()
		return
	}
	l.mu.Lock()
	if l.done { // reset while dialling
		l.mu.Unlock()
		resetConn(server)
		return
	}
	l.server = server
	l.mu.Unlock()

	var pipes sync.WaitGroup
	pipes.Add(2)
	go func() { defer pipes.Done(); l.pipe(Upstream, l.client, server) }()
	go func() { defer pipes.Done(); l.pipe(Downstream, server, l.client) }()
	pipes.Wait()
}

// chunk is bytes read in one direction and the time they may be written on.
type chunk struct {
	data    []byte
	release time.Time
}

// pipe forwards src to dst in dir: a reader stamps each chunk with its release
// time, a writer waits for it. Either end failing closes the link.
func (l *link) pipe(dir Direction, src, dst net.Conn) {
	queue := make(chan chunk, 256)
	var writer sync.WaitGroup
	writer.Add(1)
	go func() {
		defer writer.Done()
		l.write(dir, dst, queue)
	}()
	defer writer.Wait()
	defer close(queue)
	var last time.Time
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			f, stall := l.p.faultsFor(dir)
			if f.Blackhole {
				l.lostBytes.Store(true)
				l.p.discarded.Add(int64(n))
			} else {
				release := time.Now().Add(f.Latency)
				if release.Before(last) {
					release = last // order kept: never before the chunk ahead
				}
				if stall > 0 {
					l.p.stalls.Add(1)
					release = release.Add(stall)
				}
				last = release
				queue <- chunk{data: append([]byte(nil), buf[:n]...), release: release}
			}
		}
		if err != nil {
			return
		}
	}
}

// write sends the chunks on at their release time, honouring a cut's budget.
func (l *link) write(dir Direction, dst net.Conn, queue <-chan chunk) {
	defer l.closeBoth()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for c := range queue {
		if wait := time.Until(c.release); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-l.gone:
				l.drain(queue)
				return
			}
		}
		allowed, spent := l.take(dir, len(c.data))
		if allowed > 0 {
			if _, err := dst.Write(c.data[:allowed]); err != nil {
				l.drain(queue)
				return
			}
			l.p.bytes.Add(int64(allowed))
		}
		if spent {
			l.resetNow()
			l.drain(queue)
			return
		}
	}
}

// drain empties the queue so that the reader never blocks on a dead writer.
func (l *link) drain(queue <-chan chunk) {
	l.closeBoth()
	for range queue {
	}
}

// resetConn closes a connection with a TCP RST, as a crashed server or a broken
// path does, instead of an orderly FIN.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
