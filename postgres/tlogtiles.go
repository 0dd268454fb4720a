package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
)

// The tree's stored hashes live in tiles (migration 009): a row of
// tlog_hash_tiles holds up to tileWidth consecutive hashes of one level.
// Appends add full tiles and grow the last tile of each level in place;
// reads fetch the tiles that hold the wanted hashes.
const tileWidth = 32

// tileAt says where hash n of a level is: in tile n/tileWidth, at
// position n%tileWidth.
type tileAt struct {
	level int16
	tile  int64
}

// appendTiles stores the hashes that leaves size .. size+added-1 add to
// the tree (hashes, in tlog's stored order from tlog.StoredHashCount(size)).
// At each level the new hashes are n = size>>L .. (size+added)>>L - 1: the
// first may belong to a tile that exists, which grows if its length is what
// the tree's size says; the rest start new tiles.
func appendTiles(ctx context.Context, tx pgx.Tx, size, added int64, hashes [][32]byte) error {
	first := tlog.StoredHashCount(size)
	if want := tlog.StoredHashCount(size+added) - first; int64(len(hashes)) != want {
		return fmt.Errorf("append tiles: %d hashes for %d leaves, want %d", len(hashes), added, want)
	}
	var grow pgx.Batch
	var levels []int16
	var tiles []int64
	var datas [][]byte
	for level := 0; (size+added)>>level > 0; level++ {
		lo, hi := size>>level, (size+added)>>level
		for n := lo; n < hi; {
			tile, pos := n/tileWidth, n%tileWidth
			end := min(hi, (tile+1)*tileWidth)
			data := make([]byte, 0, (end-n)*32)
			for k := n; k < end; k++ {
				h := hashes[tlog.StoredHashIndex(level, k)-first]
				data = append(data, h[:]...)
			}
			if pos > 0 {
				// The tile has pos hashes already, unless the tree is not what
				// the caller thinks (checked below: no row updated).
				grow.Queue(`UPDATE tlog_hash_tiles SET hashes = hashes || $1
					WHERE level = $2 AND tile = $3 AND length(hashes) = $4`, data, int16(level), tile, pos*32)
			} else {
				levels, tiles, datas = append(levels, int16(level)), append(tiles, tile), append(datas, data)
			}
			n = end
		}
	}
	if grow.Len() > 0 {
		br := tx.SendBatch(ctx, &grow)
		for range grow.Len() {
			tag, err := br.Exec()
			if err != nil {
				br.Close()
				return err
			}
			if tag.RowsAffected() != 1 {
				br.Close()
				return audit.Errorf(audit.CodeConflict, "append tiles: the last tile of a level does not hold the hashes of a tree of %d leaves", size)
			}
		}
		if err := br.Close(); err != nil {
			return err
		}
	}
	if len(levels) == 0 {
		return nil
	}
	_, err := tx.CopyFrom(ctx, pgx.Identifier{"tlog_hash_tiles"}, []string{"level", "tile", "hashes"},
		pgx.CopyFromSlice(len(levels), func(i int) ([]any, error) {
			return []any{levels[i], tiles[i], datas[i]}, nil
		}))
	return err
}

// ReadHashes returns the stored hashes at indexes, in that order: it reads
// each tile that holds one of them once.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([][32]byte, error) {
	type place struct {
		at  tileAt
		pos int64
	}
	places := make([]place, len(indexes))
	want := make(map[tileAt][]byte)
	var levels []int16
	var tiles []int64
	for i, x := range indexes {
		if x < 0 {
			return nil, audit.Errorf(audit.CodeNotFound, "stored tree hash %d is missing", x)
		}
		level, n := tlog.SplitStoredHashIndex(x)
		at := tileAt{int16(level), n / tileWidth}
		places[i] = place{at, n % tileWidth}
		if _, ok := want[at]; !ok {
			want[at] = nil
			levels, tiles = append(levels, at.level), append(tiles, at.tile)
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT t.level, t.tile, t.hashes FROM tlog_hash_tiles t
		JOIN unnest($1::smallint[], $2::bigint[]) AS w(level, tile) ON t.level = w.level AND t.tile = w.tile`, levels, tiles)
	if err != nil {
		return nil, wrapErr("read tree hashes", err)
	}
	defer rows.Close()
	for rows.Next() {
		var at tileAt
		var data []byte
		if err := rows.Scan(&at.level, &at.tile, &data); err != nil {
			return nil, wrapErr("read tree hashes", err)
		}
		want[at] = data
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("read tree hashes", err)
	}
	out := make([][32]byte, len(indexes))
	for i, p := range places {
		data := want[p.at]
		if int64(len(data)) < (p.pos+1)*32 {
			return nil, audit.Errorf(audit.CodeNotFound, "stored tree hash %d is missing", indexes[i])
		}
		copy(out[i][:], data[p.pos*32:])
	}
	return out, nil
}
