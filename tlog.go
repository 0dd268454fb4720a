package audit

import (
	"context"
	"time"
)

// LeafRow is a stored row as the Merkle tree sees it: its Seq, its event time
// (which, with Seq, finds the row in a partitioned table) and its record hash.
type LeafRow struct {
	Seq        int64
	Time       time.Time
	RecordHash [32]byte
}

// Leaf is a row's place in the Merkle tree. Index is the leaf index: the order
// rows were integrated in, which need not be Seq order.
type Leaf struct {
	Index int64
	LeafRow
}

// LeafEvent is a leaf with the row it names, as read back for verification;
// Event is nil when the row is gone.
type LeafEvent struct {
	Leaf
	Event *StoredEvent
}

// Checkpoint is a signed statement of the tree: a C2SP signed note whose text
// names the tree size and root hash.
type Checkpoint struct {
	Size      int64
	Note      string
	CreatedAt time.Time
}

// TxHorizon describes the transactions of the store when it was read: every
// transaction that started before Xmin has ended, every one that started at
// or after Xmax had not started. A store without concurrent writers reports
// zeros.
type TxHorizon struct {
	Xmin, Xmax int64
}

// TreeStore keeps the Merkle tree of the stored rows (golang.org/x/mod/sumdb/tlog
// layout: leaves in leaf order and about two stored hashes per leaf) and its
// signed checkpoints. Implementations: postgres, sqlite.
type TreeStore interface {
	// PendingRows returns up to limit stored rows with afterSeq < Seq <=
	// throughSeq that are not leaves yet, in Seq order.
	PendingRows(ctx context.Context, afterSeq, throughSeq int64, limit int) ([]LeafRow, error)
	// Floor returns the floor the integrator saved (0 if none): every row
	// with a Seq at or below it is a leaf, or will never be visible.
	Floor(ctx context.Context) (int64, error)
	// SaveFloor records a floor, if it is above the one saved.
	SaveFloor(ctx context.Context, floor int64) error
	// Horizon reads the store's transaction horizon (see TxHorizon).
	Horizon(ctx context.Context) (TxHorizon, error)
	// TreeSize returns the number of leaves.
	TreeSize(ctx context.Context) (int64, error)
	// AppendLeaves adds rows as leaves size, size+1, ... and the stored hashes
	// that follow the first tlog.StoredHashCount(size), in one transaction.
	// CodeConflict when the tree no longer has size leaves (another
	// integrator appended) or a row is a leaf already.
	AppendLeaves(ctx context.Context, size int64, rows []LeafRow, hashes [][32]byte) error
	// ReadHashes returns the stored hashes at these indexes, in that order
	// (CodeNotFound if one is missing).
	ReadHashes(ctx context.Context, indexes []int64) ([][32]byte, error)
	// LeafOf returns the leaf of the row with this Seq (CodeNotFound if the row
	// is not a leaf yet).
	LeafOf(ctx context.Context, seq int64) (Leaf, error)
	// LeafEvents returns up to limit leaves with Index >= from, in leaf order,
	// each with its row (SessionContext may be left undecoded in Details).
	LeafEvents(ctx context.Context, from int64, limit int) ([]LeafEvent, error)
	// AddCheckpoint stores a checkpoint; CodeConflict if one of that size exists.
	AddCheckpoint(ctx context.Context, c Checkpoint) error
	// LatestCheckpoint returns the checkpoint of the largest size (CodeNotFound if none).
	LatestCheckpoint(ctx context.Context) (Checkpoint, error)
	// CheckpointAt returns the checkpoint of this size (CodeNotFound if none).
	CheckpointAt(ctx context.Context, size int64) (Checkpoint, error)
	// Checkpoints returns up to limit checkpoints with Size > afterSize, by size.
	Checkpoints(ctx context.Context, afterSize int64, limit int) ([]Checkpoint, error)
	// LockIntegrator makes the caller the only integrator of the tree until
	// unlock is called or its connection is lost; CodeConflict if another
	// holds it.
	LockIntegrator(ctx context.Context) (unlock func(), err error)
}
