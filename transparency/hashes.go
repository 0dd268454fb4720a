package transparency

import (
	"context"

	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
)

// storeHashes reads a tree's stored hashes from the store, for tlog's
// algorithms.
func storeHashes(ctx context.Context, s audit.TreeStore) tlog.HashReader {
	return tlog.HashReaderFunc(func(indexes []int64) ([]tlog.Hash, error) {
		hs, err := s.ReadHashes(ctx, indexes)
		if err != nil {
			return nil, err
		}
		out := make([]tlog.Hash, len(hs))
		for i, h := range hs {
			out[i] = h
		}
		return out, nil
	})
}

// appender computes the stored hashes of new leaves: those at or above base
// are the ones computed so far, those below are read from the store (the
// few on the tree's right edge), once.
type appender struct {
	ctx   context.Context
	store audit.TreeStore
	base  int64
	fresh [][32]byte
	read  map[int64]tlog.Hash
}

func (a *appender) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	var missing []int64
	for i, x := range indexes {
		switch h, ok := a.read[x]; {
		case x >= a.base:
			out[i] = a.fresh[x-a.base]
		case ok:
			out[i] = h
		default:
			missing = append(missing, x)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	hs, err := a.store.ReadHashes(a.ctx, missing)
	if err != nil {
		return nil, err
	}
	for i, x := range missing {
		a.read[x] = hs[i]
	}
	return a.ReadHashes(indexes)
}

// hashesFor returns the stored hashes that leaves size, size+1, ... (rows, in
// that order) add to a tree of size leaves.
func hashesFor(ctx context.Context, s audit.TreeStore, size int64, rows []audit.LeafRow) ([][32]byte, error) {
	a := &appender{ctx: ctx, store: s, base: tlog.StoredHashCount(size), read: map[int64]tlog.Hash{}}
	a.fresh = make([][32]byte, 0, 2*len(rows)+1)
	for i := range rows {
		hs, err := tlog.StoredHashes(size+int64(i), rows[i].RecordHash[:], a)
		if err != nil {
			return nil, err
		}
		for _, h := range hs {
			a.fresh = append(a.fresh, h)
		}
	}
	return a.fresh, nil
}
