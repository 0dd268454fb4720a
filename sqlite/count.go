package sqlite

import (
	"context"

	audit "github.com/smartlogs/audit-worker"
)

// CountEvents returns how many events match q's filters; its position, order
// and limit do not count. The cost grows with the matching rows (the filters'
// indexes keep it to those): a caller that needs it cheap gives it a deadline.
func (s *Store) CountEvents(ctx context.Context, q audit.EventQuery) (int64, error) {
	q.After, q.Order, q.Limit = nil, audit.OrderDesc, 1
	if err := q.Check(); err != nil {
		return 0, err
	}
	where, args := searchWhere(q)
	var n int64
	if err := s.reader.QueryRowContext(ctx, `SELECT count(*) FROM audit_log`+where, args...).Scan(&n); err != nil {
		return 0, classify("count events", err)
	}
	return n, nil
}
