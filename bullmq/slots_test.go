package bullmq

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// acquirers starts n goroutines that each take a slot of l and counts those
// that got one. synctest.Wait then tells how many are through: the others
// are blocked for good until a slot frees.
func acquirers(t *testing.T, ctx context.Context, l *slotLimiter, n int) *atomic.Int64 {
	var got atomic.Int64
	for range n {
		go func() {
			if err := l.acquire(ctx); err == nil {
				got.Add(1)
			} else if !errors.Is(err, context.Canceled) {
				t.Errorf("acquire: %v", err)
			}
		}()
	}
	return &got
}

func TestSlotLimiter(t *testing.T) {
	for _, c := range []struct {
		name    string
		limit   int
		waiting int                  // goroutines asking for a slot
		change  func(l *slotLimiter) // what happens next
		through []int64              // acquired before, and after the change
		used    int                  // slots taken at the end
	}{
		{"the limit bounds the slots taken", 2, 3, func(*slotLimiter) {}, []int64{2, 2}, 2},
		{"a release lets one waiter in", 2, 3, (*slotLimiter).release, []int64{2, 3}, 2},
		{"a higher limit lets waiters in at once", 1, 3, func(l *slotLimiter) { l.setLimit(3) }, []int64{1, 3}, 3},
		{"a lower limit lets none in until enough are released", 3, 4,
			func(l *slotLimiter) { l.setLimit(1); l.release(); l.release() }, []int64{3, 3}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithCancel(t.Context())
				defer cancel() // the waiters still blocked give up
				var l slotLimiter
				l.setLimit(c.limit)
				got := acquirers(t, ctx, &l, c.waiting)
				synctest.Wait()
				before := got.Load()
				c.change(&l)
				synctest.Wait()
				after := got.Load()
				if before != c.through[0] || after != c.through[1] {
					t.Errorf("%d then %d acquired, want %d then %d", before, after, c.through[0], c.through[1])
				}
				l.mu.Lock()
				defer l.mu.Unlock()
				if l.used != c.used {
					t.Errorf("%d slots taken, want %d", l.used, c.used)
				}
			})
		})
	}
}

// A waiter whose context ends gives up without taking a slot.
func TestSlotLimiterAcquireHonoursTheContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l slotLimiter
		l.setLimit(1)
		if err := l.acquire(t.Context()); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), time.Second)
		defer cancel()
		start := time.Now()
		if err := l.acquire(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Fatalf("acquire with every slot taken = %v after %s, want the deadline after 1s", err, time.Since(start))
		}
		l.release()
		if err := l.acquire(t.Context()); err != nil {
			t.Fatalf("the slot given up was taken: %v", err)
		}
	})
}
