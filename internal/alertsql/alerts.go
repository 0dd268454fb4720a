package alertsql

import (
	"context"
	"strconv"
	"time"

	audit "github.com/smartlogs/audit-worker"
)

// DB runs a store's statements for Alerts.
type DB interface {
	// InTx runs fn in a write transaction.
	InTx(ctx context.Context, fn func(tx Tx) error) error
	// Query runs a query of this package and scans its alerts.
	Query(ctx context.Context, query string, args []any) ([]audit.Alert, error)
	// Count runs the query of AlertStatistics and calls add for each of its rows.
	Count(ctx context.Context, query string, args []any, add func(status, severity, typ string, n int64)) error
	// Wrap gives a driver's error its domain code and says what was being done.
	Wrap(op string, err error) error
}

// Tx runs a store's statements inside the transaction of DB.InTx.
type Tx interface {
	// Lock holds dedup keys until the transaction ends, so that raisers of
	// the same condition, in any process, read, decide and write one after
	// the other.
	Lock(ctx context.Context, keys []string) error
	// Query runs a query of this package and scans its alerts; the rows it
	// reads stay as they are until the transaction ends.
	Query(ctx context.Context, query string, args []any) ([]audit.Alert, error)
	// Write stores the changes of a raise or a transition: the updated alerts
	// in order, then the created ones (see audit.AlertBatch.Changes).
	Write(ctx context.Context, updated, created []*audit.Alert) error
}

// Alerts implements the audit.AlertBatchStore methods over a store's DB.
type Alerts struct {
	DB      DB
	Dialect Dialect
}

var _ audit.AlertBatchStore = Alerts{}

// RaiseAlert is RaiseAlerts with one condition.
func (s Alerts) RaiseAlert(ctx context.Context, c audit.AlertCondition) (audit.AlertRaise, error) {
	return audit.RaiseOne(ctx, s, c)
}

// RaiseAlerts records conditions in one transaction: it holds their keys,
// reads their open alerts, decides in memory (audit.AlertBatch) and writes
// what changed.
func (s Alerts) RaiseAlerts(ctx context.Context, cs []audit.AlertCondition) ([]audit.AlertRaise, error) {
	if len(cs) == 0 {
		return nil, nil
	}
	conds, err := audit.NormalizeAll(cs, time.Now())
	if err != nil {
		return nil, err
	}
	keys := audit.AlertDedupKeys(conds)
	out := make([]audit.AlertRaise, len(conds))
	err = s.DB.InTx(ctx, func(tx Tx) error {
		if err := tx.Lock(ctx, keys); err != nil {
			return err
		}
		query, args := s.Dialect.open(keys)
		open, err := tx.Query(ctx, query, args)
		if err != nil {
			return err
		}
		b := audit.NewAlertBatch(open)
		now := time.Now().UTC().Truncate(time.Microsecond)
		for i, c := range conds {
			if out[i], err = b.Raise(c, now); err != nil {
				return err
			}
		}
		updated, created := b.Changes()
		return tx.Write(ctx, updated, created)
	})
	if err != nil {
		return nil, s.err(raiseOp(conds), err)
	}
	return out, nil
}

// GetAlert returns the alert with this id, CodeNotFound when there is none.
func (s Alerts) GetAlert(ctx context.Context, id string) (audit.Alert, error) {
	query, args := s.Dialect.get(id)
	found, err := s.DB.Query(ctx, query, args)
	if err != nil {
		return audit.Alert{}, s.err("get alert "+id, err)
	}
	if len(found) == 0 {
		return audit.Alert{}, notFound("get alert " + id)
	}
	return found[0], nil
}

// TransitionAlert moves an alert along its lifecycle inside a transaction
// that holds its row, so that the status it checks is the status it changes.
func (s Alerts) TransitionAlert(ctx context.Context, id string, to audit.AlertStatus, by, note string) (audit.Alert, error) {
	var out audit.Alert
	err := s.DB.InTx(ctx, func(tx Tx) error {
		query, args := s.Dialect.get(id)
		found, err := tx.Query(ctx, query, args)
		if err != nil {
			return err
		}
		if len(found) == 0 {
			return notFound("transition alert " + id)
		}
		a := found[0]
		if err := a.Transition(to, by, note, time.Now()); err != nil {
			return err
		}
		out = a
		return tx.Write(ctx, []*audit.Alert{&a}, nil)
	})
	if err != nil {
		return audit.Alert{}, s.err("transition alert "+id, err)
	}
	return out, nil
}

// ListAlerts returns one page of alerts, newest first, and the cursor of the
// next page ("" on the last one).
func (s Alerts) ListAlerts(ctx context.Context, f audit.AlertFilter) ([]audit.Alert, string, error) {
	f, err := f.Normalize()
	if err != nil {
		return nil, "", err
	}
	query, args := s.Dialect.list(f)
	alerts, err := s.DB.Query(ctx, query, args)
	if err != nil {
		return nil, "", s.err("list alerts", err)
	}
	alerts, next := audit.AlertPage(alerts, f.Limit)
	return alerts, next, nil
}

// AlertStatistics counts the alerts that match f (Limit and After ignored).
func (s Alerts) AlertStatistics(ctx context.Context, f audit.AlertFilter) (audit.AlertStatistics, error) {
	f, err := f.Normalize()
	if err != nil {
		return audit.AlertStatistics{}, err
	}
	query, args := s.Dialect.statistics(f)
	st := audit.NewAlertStatistics()
	err = s.DB.Count(ctx, query, args, func(status, severity, typ string, n int64) {
		st.Add(audit.AlertStatus(status), audit.Severity(severity), audit.AlertType(typ), n)
	})
	if err != nil {
		return audit.AlertStatistics{}, s.err("alert statistics", err)
	}
	return st, nil
}

// err keeps domain errors (a refused transition, a missing alert) as they
// are and hands the rest to the store's Wrap.
func (s Alerts) err(op string, err error) error {
	if audit.ErrorCode(err) != "" {
		return err
	}
	return s.DB.Wrap(op, err)
}

func notFound(op string) error { return audit.Errorf(audit.CodeNotFound, "%s: no such alert", op) }

// raiseOp names a RaiseAlerts call in its errors.
func raiseOp(cs []audit.AlertCondition) string {
	if len(cs) == 1 {
		return "raise alert " + cs[0].DedupKey
	}
	return "raise " + strconv.Itoa(len(cs)) + " alerts"
}
