package faultproxy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// server is a line echo server that also counts the bytes it received.
type server struct {
	ln       net.Listener
	received atomic.Int64
	wg       sync.WaitGroup
}

func startServer(t *testing.T) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadBytes('\n')
					s.received.Add(int64(len(line)))
					if err != nil {
						return
					}
					if _, err := c.Write(line); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); s.wg.Wait() })
	return s
}

func startProxy(t *testing.T, target string) *Proxy {
	t.Helper()
	p, err := Start(target, Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip sends a line and reads it back, within timeout.
func roundTrip(c net.Conn, r *bufio.Reader, msg string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	_ = c.SetDeadline(start.Add(timeout))
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		return 0, err
	}
	line, err := r.ReadString('\n')
	if err != nil {
		return time.Since(start), err
	}
	if line != msg+"\n" {
		return 0, fmt.Errorf("echo %q, want %q", line, msg)
	}
	return time.Since(start), nil
}

func TestForwardsUntouched(t *testing.T) {
	s := startServer(t)
	p := startProxy(t, s.ln.Addr().String())
	c := dial(t, p.Addr())
	r := bufio.NewReader(c)
	for i := range 50 {
		if _, err := roundTrip(c, r, fmt.Sprintf("line %d", i), 2*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if st := p.Stats(); st.Accepted != 1 || st.Bytes == 0 || st.Reset != 0 {
		t.Errorf("stats %+v, want 1 accepted, bytes > 0, none reset", st)
	}
}

func TestLatencyDelaysAndKeepsOrder(t *testing.T) {
	s := startServer(t)
	p := startProxy(t, s.ln.Addr().String())
	c := dial(t, p.Addr())
	r := bufio.NewReader(c)
	if _, err := roundTrip(c, r, "warm", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	const d = 100 * time.Millisecond
	p.Latency(Both, d)
	took, err := roundTrip(c, r, "slow", 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if took < 2*d || took > 2*d+500*time.Millisecond {
		t.Errorf("round trip with %s each way took %s", d, took)
	}
	// Many lines written back to back arrive in order, pipelined: not n round trips.
	start := time.Now()
	_ = c.SetDeadline(start.Add(5 * time.Second))
	const n = 200
	go func() {
		for i := range n {
			if _, err := fmt.Fprintf(c, "%d\n", i); err != nil {
				return
			}
		}
	}()
	for i := range n {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if line != fmt.Sprintf("%d\n", i) {
			t.Fatalf("line %d is %q: order not kept", i, line)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("%d pipelined lines took %s: latency must not serialise them", n, took)
	}
	p.Restore()
	if took, err := roundTrip(c, r, "fast", 2*time.Second); err != nil || took > d {
		t.Errorf("after Restore: round trip %s, %v", took, err)
	}
}

func TestLossStallsWithoutLosingBytes(t *testing.T) {
	s := startServer(t)
	p := startProxy(t, s.ln.Addr().String())
	c := dial(t, p.Addr())
	r := bufio.NewReader(c)
	p.Loss(Upstream, 1) // every chunk is "lost" once
	for i := range 3 {
		took, err := roundTrip(c, r, fmt.Sprintf("lost %d", i), 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if took < MinRTO || took > MaxRTO+300*time.Millisecond {
			t.Errorf("round trip with a lost chunk took %s, want %s..%s", took, MinRTO, MaxRTO)
		}
	}
	if st := p.Stats(); st.Stalls != 3 {
		t.Errorf("stalls = %d, want 3", st.Stalls)
	}
	// 1 %: about one chunk in a hundred stalls, and every byte arrives.
	p.Loss(Both, 0.01)
	before := p.Stats().Stalls
	for i := range 400 {
		if _, err := roundTrip(c, r, fmt.Sprintf("one percent %d", i), 3*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	if stalls := p.Stats().Stalls - before; stalls < 1 || stalls > 25 {
		t.Errorf("%d stalls in 800 chunks at 1 %% loss", stalls)
	}
}

func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF)
}

func TestCutResetsOpenAndNewConnections(t *testing.T) {
	s := startServer(t)
	p := startProxy(t, s.ln.Addr().String())
	c := dial(t, p.Addr())
	r := bufio.NewReader(c)
	if _, err := roundTrip(c, r, "before", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	if n := p.Cut(Cut{}); n != 1 {
		t.Errorf("Cut reset %d connections, want 1", n)
	}
	if _, err := roundTrip(c, r, "during", 2*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("open connection after the cut: %v, want a reset", err)
	}
	// ResetNew: the connection is accepted, then reset (the reset may come
	// before connect returns).
	if c2, err := net.DialTimeout("tcp", p.Addr(), 2*time.Second); err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("new connection during the cut: %v, want a reset", err)
		}
	} else {
		defer c2.Close()
		if _, err := roundTrip(c2, bufio.NewReader(c2), "new", 2*time.Second); !isReset(err) {
			t.Errorf("new connection during the cut: %v, want a reset", err)
		}
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	c3 := dial(t, p.Addr())
	if _, err := roundTrip(c3, bufio.NewReader(c3), "after", 2*time.Second); err != nil {
		t.Errorf("after Restore: %v", err)
	}
}

func TestCutRefusesNewConnections(t *testing.T) {
	s := startServer(t)
	p := startProxy(t, s.ln.Addr().String())
	p.Cut(Cut{New: RefuseNew})
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		c.Close()
		t.Fatal("connecting during a RefuseNew cut succeeded")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("connecting during the cut: %v, want connection refused", err)
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	if _, err := roundTrip(c, bufio.NewReader(c), "after", 2*time.Second); err != nil {
		t.Errorf("after Restore: %v", err)
	}
}

func TestCutAfterBytesLandsMidCommand(t *testing.T) {
	s := startServer(t)
	p := startProxy(t, s.ln.Addr().String())
	c := dial(t, p.Addr())
	r := bufio.NewReader(c)
	if _, err := roundTrip(c, r, "0123456789", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	got := s.received.Load()
	p.Cut(Cut{AfterBytes: 5, New: BudgetNew})
	if _, err := roundTrip(c, r, "abcdefghij", 2*time.Second); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("command across the budget: %v, want a reset", err)
	}
	waitFor(t, func() bool { return s.received.Load() == got+5 })
	// BudgetNew: a new connection also passes 5 bytes and is reset.
	c2 := dial(t, p.Addr())
	if _, err := roundTrip(c2, bufio.NewReader(c2), "klmnopqrst", 2*time.Second); !isReset(err) {
		t.Errorf("new connection across the budget: %v, want a reset", err)
	}
	waitFor(t, func() bool { return s.received.Load() == got+10 })
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	c3 := dial(t, p.Addr())
	if _, err := roundTrip(c3, bufio.NewReader(c3), "whole line again", 2*time.Second); err != nil {
		t.Errorf("after Restore: %v", err)
	}
}

func TestBlackholeNeverAnswers(t *testing.T) {
	s := startServer(t)
	p := startProxy(t, s.ln.Addr().String())
	c := dial(t, p.Addr())
	r := bufio.NewReader(c)
	if _, err := roundTrip(c, r, "before", 2*time.Second); err != nil {
		t.Fatal(err)
	}
	got := s.received.Load()
	p.Blackhole(Both)
	if _, err := roundTrip(c, r, "into the hole", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("open connection: %v, want no answer (deadline)", err)
	}
	// A new connection is accepted, takes bytes, and never answers.
	c2 := dial(t, p.Addr())
	if _, err := roundTrip(c2, bufio.NewReader(c2), "new one", 300*time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("new connection: %v, want no answer (deadline)", err)
	}
	waitFor(t, func() bool { return p.Stats().Discarded >= int64(len("into the hole\nnew one\n")) })
	if s.received.Load() != got {
		t.Errorf("the server received %d bytes through a blackhole", s.received.Load()-got)
	}
	if err := p.Restore(); err != nil {
		t.Fatal(err)
	}
	// The connections that lost bytes are reset; new ones work.
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := r.ReadString('\n'); !isReset(err) {
		t.Errorf("a blackholed connection after Restore: %v, want a reset", err)
	}
	c3 := dial(t, p.Addr())
	if _, err := roundTrip(c3, bufio.NewReader(c3), "after", 2*time.Second); err != nil {
		t.Errorf("after Restore: %v", err)
	}
}

func TestCloseWaitsForConnections(t *testing.T) {
	s := startServer(t)
	p, err := Start(s.ln.Addr().String(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	p.Latency(Both, time.Hour) // a chunk held for an hour must not hold Close
	fmt.Fprintf(c, "held\n")
	done := make(chan struct{})
	go func() { p.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 3 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
