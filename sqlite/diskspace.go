package sqlite

import audit "github.com/smartlogs/audit-worker"

// minFreeBytes is the free space below which the store reports itself
// unavailable: less than the WAL frames of one large batch (1,000 events of
// about 700 bytes, with their index entries, in 16 KiB pages). Writes start
// failing with SQLITE_FULL at about this point, and readiness says so
// before and while they do instead of answering ready.
const minFreeBytes = 1 << 20

// checkDiskRoom returns a CodeUnavailable error when the file system holding
// the database has less than minFreeBytes left for it. Where free space
// cannot be read (another OS, an error from statfs), it reports nothing: the
// writes themselves still fail with SQLITE_FULL and are retried.
func (s *Store) checkDiskRoom() error {
	free, ok := freeBytes(s.dir)
	if !ok || free >= minFreeBytes {
		return nil
	}
	return audit.Errorf(audit.CodeUnavailable,
		"sqlite store: disk full: %d bytes free in %s, writes need at least %d", free, s.dir, minFreeBytes)
}
