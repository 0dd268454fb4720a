// Package transparency makes alteration of the stored audit log detectable:
// it integrates stored rows into an RFC 6962 Merkle tree (in the layout of
// golang.org/x/mod/sumdb/tlog, kept by an audit.TreeStore), signs checkpoints
// of the tree as C2SP signed notes, publishes them outside the database,
// proves inclusion and consistency, and verifies a whole store offline.
package transparency
