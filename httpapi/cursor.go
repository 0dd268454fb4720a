package httpapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// A search cursor is the position of the last event of a page, the order,
// the time range the search started with, and a digest of its filters, all
// under an HMAC made with a key every replica shares: the server can tell a
// cursor it issued, and refuses one reused with other filters.
type cursor struct {
	order   audit.Order
	after   audit.Position
	since   time.Time // zero: no bound
	until   time.Time
	filters [16]byte
	issued  time.Time
}

const (
	cursorVersion = 1
	cursorBody    = 1 + 1 + 8 + 8 + 8 + 8 + 16 + 8 // version, order, time, seq, since, until, filters, issued
	cursorMAC     = 16
	// cursorMaxAge is how long a cursor stays good: a day of paging.
	cursorMaxAge = 24 * time.Hour
)

// errBadCursor is the answer to every cursor the server did not issue.
var errBadCursor = errors.New("cursor: not a cursor this server issued (use nextCursor as it was returned)")

func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

func fromMicrosOrZero(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMicro(v).UTC()
}

func (c cursor) encode(key []byte) string {
	b := make([]byte, 0, cursorBody+cursorMAC)
	b = append(b, cursorVersion)
	if c.order == audit.OrderAsc {
		b = append(b, 'a')
	} else {
		b = append(b, 'd')
	}
	b = binary.BigEndian.AppendUint64(b, uint64(c.after.Time.UnixMicro()))
	b = binary.BigEndian.AppendUint64(b, uint64(c.after.Seq))
	b = binary.BigEndian.AppendUint64(b, uint64(micros(c.since)))
	b = binary.BigEndian.AppendUint64(b, uint64(micros(c.until)))
	b = append(b, c.filters[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.issued.Unix()))
	mac := hmac.New(sha256.New, key)
	mac.Write(b)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(b)[:cursorBody+cursorMAC])
}

// decodeCursor checks a cursor's MAC, its filters and its age.
func decodeCursor(s string, key []byte, filters [16]byte, now time.Time) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	// The decoder skips CR and LF and ignores stray low bits in the last
	// character: only the text encodeCursor writes is taken, so one
	// position has one cursor.
	if err != nil || len(b) != cursorBody+cursorMAC || b[0] != cursorVersion || base64.RawURLEncoding.EncodeToString(b) != s {
		return c, errBadCursor
	}
	mac := hmac.New(sha256.New, key)
	mac.Write(b[:cursorBody])
	if !hmac.Equal(mac.Sum(nil)[:cursorMAC], b[cursorBody:]) {
		return c, errBadCursor
	}
	switch b[1] {
	case 'a':
		c.order = audit.OrderAsc
	case 'd':
		c.order = audit.OrderDesc
	default:
		return c, errBadCursor
	}
	u := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[i:])) }
	c.after = audit.Position{Time: time.UnixMicro(u(2)).UTC(), Seq: u(10)}
	c.since, c.until = fromMicrosOrZero(u(18)), fromMicrosOrZero(u(26))
	copy(c.filters[:], b[34:50])
	c.issued = time.Unix(u(50), 0)
	if c.filters != filters {
		return c, errors.New("cursor: made for other filters; a cursor continues the search it came from")
	}
	if now.Sub(c.issued) > cursorMaxAge {
		return c, errors.New("cursor: expired (cursors are good for 24 hours); start the search again")
	}
	return c, nil
}

// filterDigest identifies a search's filters: every parameter but the cursor
// and the page size, in a canonical order.
func filterDigest(q url.Values) [16]byte {
	names := make([]string, 0, len(q))
	for name := range q {
		if name != "cursor" && name != "limit" {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	h := sha256.New()
	for _, name := range names {
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write([]byte(strings.Join(q[name], "\x00")))
		h.Write([]byte{1})
	}
	var d [16]byte
	copy(d[:], h.Sum(nil))
	return d
}
