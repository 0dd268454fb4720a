package access

import (
	"net/netip"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

func TestPrincipalLimits(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(LimitConfig{
		PerPrincipal: map[audit.Role]Rate{audit.RoleReader: {Requests: 1, Burst: 3}},
		PerRole:      map[audit.Role]Rate{audit.RoleReader: {Requests: 10, Burst: 4}},
	})
	l.now = func() time.Time { return now }
	alice := audit.Principal{ID: "key:alice", Role: audit.RoleReader}
	bob := audit.Principal{ID: "key:bob", Role: audit.RoleReader}
	for i := range 3 {
		if ok, _ := l.AllowPrincipal(alice); !ok {
			t.Fatalf("request %d within alice's burst refused", i)
		}
	}
	ok, retry := l.AllowPrincipal(alice)
	if ok || retry <= 0 || retry > time.Second {
		t.Fatalf("4th request: ok=%v retry=%s, want refused within 1 s", ok, retry)
	}
	if ok, _ := l.AllowPrincipal(bob); !ok {
		t.Fatal("bob has his own bucket, and the role has one token left")
	}
	if ok, _ := l.AllowPrincipal(bob); ok {
		t.Fatal("the role's shared burst of 4 is used up")
	}
	now = now.Add(time.Second)
	if ok, _ := l.AllowPrincipal(alice); !ok {
		t.Fatal("a second later alice has a token again")
	}
	// Ingest has no limit in this config.
	if ok, _ := l.AllowPrincipal(audit.Principal{ID: "p", Role: audit.RoleIngest}); !ok {
		t.Fatal("unlimited role refused")
	}
}

func TestFailedAuthSlowsAnAddress(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	l := NewLimiter(LimitConfig{FailedAuthPerAddress: Rate{Requests: 1, Burst: 5}})
	l.now = func() time.Time { return now }
	attacker, other := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.8")
	for range 5 {
		if blocked, _ := l.AddressBlocked(attacker); blocked {
			t.Fatal("blocked before the burst is used")
		}
		l.FailedAuth(attacker)
	}
	blocked, retry := l.AddressBlocked(attacker)
	if !blocked || retry != time.Second {
		t.Fatalf("after 5 failures: blocked=%v retry=%s", blocked, retry)
	}
	if blocked, _ := l.AddressBlocked(other); blocked {
		t.Fatal("another address is blocked too")
	}
	now = now.Add(time.Second)
	if blocked, _ := l.AddressBlocked(attacker); blocked {
		t.Fatal("still blocked after the bucket refilled a token")
	}
}
