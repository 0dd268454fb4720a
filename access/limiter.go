package access

import (
	"math"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	audit "github.com/smartlogs/audit-worker"
)

// Rate is a token bucket: Requests per second on average, Burst at once.
// A zero Requests means no limit.
type Rate struct {
	Requests float64
	Burst    int
}

func (r Rate) limiter() *rate.Limiter {
	if r.Requests <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(r.Requests), max(r.Burst, 1))
}

// LimitConfig sets the rate limits.
type LimitConfig struct {
	// PerPrincipal is each principal's own limit, by its role.
	PerPrincipal map[audit.Role]Rate
	// PerRole is the limit of all principals of a role together.
	PerRole map[audit.Role]Rate
	// FailedAuthPerAddress limits failed authentications from one client
	// address: past it, the address is refused before its credentials are
	// even checked, which slows guessing without locking out anyone else.
	FailedAuthPerAddress Rate
}

// DefaultLimits are generous for producers and people, and slow guessing.
func DefaultLimits() LimitConfig {
	people := Rate{Requests: 50, Burst: 100}
	return LimitConfig{
		PerPrincipal: map[audit.Role]Rate{
			audit.RoleIngest: {Requests: 2000, Burst: 4000},
			audit.RoleReader: people, audit.RoleAuditor: people, audit.RoleOperator: people,
			audit.RoleAdmin: {Requests: 100, Burst: 200},
		},
		PerRole:              map[audit.Role]Rate{},
		FailedAuthPerAddress: Rate{Requests: 1, Burst: 20},
	}
}

// Limiter applies a LimitConfig; a nil *Limiter limits nothing. Buckets not used for idleAfter are dropped,
// so that the maps stay as small as the set of active clients.
type Limiter struct {
	mu          sync.Mutex
	cfg         LimitConfig
	principals  map[string]*bucket
	roles       map[audit.Role]*bucket
	addresses   map[netip.Addr]*bucket
	now         func() time.Time
	idleAfter   time.Duration
	lastCleanup time.Time
}

type bucket struct {
	lim  *rate.Limiter
	used time.Time
}

// NewLimiter returns a limiter for cfg.
func NewLimiter(cfg LimitConfig) *Limiter {
	l := &Limiter{now: time.Now, idleAfter: 10 * time.Minute}
	l.Reconfigure(cfg)
	return l
}

// Reconfigure applies new limits; buckets start again full.
func (l *Limiter) Reconfigure(cfg LimitConfig) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cfg = cfg
	l.principals = map[string]*bucket{}
	l.roles = map[audit.Role]*bucket{}
	l.addresses = map[netip.Addr]*bucket{}
}

// AllowPrincipal takes one request from the principal's and its role's
// buckets. When refused, retryAfter says when to come back.
func (l *Limiter) AllowPrincipal(p audit.Principal) (ok bool, retryAfter time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.cleanup(now)
	own := get(l.principals, p.ID, l.cfg.PerPrincipal[p.Role], now)
	role := get(l.roles, p.Role, l.cfg.PerRole[p.Role], now)
	return reserveBoth(own, role, now)
}

// AddressBlocked reports whether addr has used up its failed attempts.
func (l *Limiter) AddressBlocked(addr netip.Addr) (blocked bool, retryAfter time.Duration) {
	if l == nil {
		return false, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.addresses[addr]
	if !ok {
		return false, 0
	}
	now := l.now()
	if b.lim.TokensAt(now) >= 1 {
		return false, 0
	}
	return true, wait(b.lim, now)
}

// FailedAuth takes one attempt from addr's bucket.
func (l *Limiter) FailedAuth(addr netip.Addr) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.cleanup(now)
	get(l.addresses, addr, l.cfg.FailedAuthPerAddress, now).lim.AllowN(now, 1)
}

func get[K comparable](m map[K]*bucket, k K, r Rate, now time.Time) *bucket {
	b, ok := m[k]
	if !ok {
		b = &bucket{lim: r.limiter()}
		m[k] = b
	}
	b.used = now
	return b
}

// reserveBoth takes a token from both buckets or from neither.
func reserveBoth(a, b *bucket, now time.Time) (bool, time.Duration) {
	ra := a.lim.ReserveN(now, 1)
	rb := b.lim.ReserveN(now, 1)
	da, db := ra.DelayFrom(now), rb.DelayFrom(now)
	if ra.OK() && rb.OK() && da == 0 && db == 0 {
		return true, 0
	}
	ra.CancelAt(now)
	rb.CancelAt(now)
	return false, max(da, db, time.Second/10)
}

func wait(lim *rate.Limiter, now time.Time) time.Duration {
	if lim.Limit() <= 0 || lim.Limit() == rate.Inf {
		return time.Second
	}
	missing := 1 - lim.TokensAt(now)
	return time.Duration(math.Ceil(missing / float64(lim.Limit()) * float64(time.Second)))
}

func (l *Limiter) cleanup(now time.Time) {
	if now.Sub(l.lastCleanup) < time.Minute {
		return
	}
	l.lastCleanup = now
	for k, b := range l.principals {
		if now.Sub(b.used) > l.idleAfter {
			delete(l.principals, k)
		}
	}
	for k, b := range l.addresses {
		if now.Sub(b.used) > l.idleAfter {
			delete(l.addresses, k)
		}
	}
}
