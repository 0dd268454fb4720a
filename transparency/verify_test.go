package transparency_test

import (
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/transparency"
)

// tampered is a store with two checkpoints, published to a file, then
// changed by tamper; Verify's report on it.
func tampered(t *testing.T, e env, tamper func(t *testing.T, e env, events []audit.StoredEvent, published string)) transparency.Report {
	t.Helper()
	key := newKey(t, testOrigin)
	in, published := newIntegrator(t, e, key)
	storeRecords(t, e, 21, 12)
	integrateAll(t, in)
	storeRecords(t, e, 22, 9)
	integrateAll(t, in)
	events := allEvents(t, e.store)
	if rep := verify(t, e, key, published); !rep.OK {
		t.Fatalf("Verify before tampering: %+v", rep)
	}
	tamper(t, e, events, published)
	rep := verify(t, e, key, published)
	if rep.OK || rep.ProblemsFound == 0 {
		t.Fatalf("Verify after tampering: %+v, want problems", rep)
	}
	for _, p := range rep.Problems {
		t.Log(p)
	}
	return rep
}

func verify(t *testing.T, e env, key transparency.Key, published string) transparency.Report {
	t.Helper()
	notes, err := transparency.ReadNotes(published)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := transparency.Verify(t.Context(), e.store, transparency.VerifyOptions{Verifier: key.Verifier,
		Published: notes, HMACKey: []byte("transparency-test"), Batch: 4})
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// wantProblem fails unless rep has a problem of kind about row seq (0: any).
func wantProblem(t *testing.T, rep transparency.Report, kind string, seq int64) {
	t.Helper()
	for _, p := range rep.Problems {
		if p.Kind == kind && (seq == 0 || p.Seq == seq) {
			return
		}
	}
	t.Errorf("no %s problem about row %d in %+v", kind, seq, rep.Problems)
}

// TestVerifyFindsTampering changes the store behind the worker's back, in
// SQL or on the published file, each way an attacker with access might, and
// checks that Verify names the row or the checkpoint.
func TestVerifyFindsTampering(t *testing.T) {
	bothStores(t, func(t *testing.T, e env) {
		t.Run("DetailsUpdated", func(t *testing.T) {
			var seq int64
			rep := tampered(t, e.fresh(t), func(t *testing.T, e env, events []audit.StoredEvent, _ string) {
				seq = events[4].Seq
				e.exec(t, `UPDATE audit_log SET details = '{"reason":"nothing to see"}' WHERE id = $1`, seq)
			})
			wantProblem(t, rep, transparency.ProblemModifiedRow, seq)
		})
		t.Run("HashedFieldRewrittenWithItsHashes", func(t *testing.T) {
			var seq int64
			rep := tampered(t, e.fresh(t), func(t *testing.T, e env, events []audit.StoredEvent, _ string) {
				ev := events[7]
				seq = ev.Seq
				ev.PrincipalID = "mallory"
				ev.Hash = ev.ComputeHash()
				ev.Signature = ""
				ev.RecordHash = ev.ComputeRecordHash()
				e.exec(t, `UPDATE audit_log SET principal_id = $1, hash = $2, signature = NULL, record_hash = $3 WHERE id = $4`,
					ev.PrincipalID, ev.Hash, ev.RecordHash, seq)
			})
			wantProblem(t, rep, transparency.ProblemReplacedRow, seq)
			for _, p := range rep.Problems {
				if p.Kind == transparency.ProblemModifiedRow {
					t.Errorf("the rewritten row is self-consistent, yet: %s", p)
				}
			}
		})
		t.Run("RowDeleted", func(t *testing.T) {
			var seq int64
			rep := tampered(t, e.fresh(t), func(t *testing.T, e env, events []audit.StoredEvent, _ string) {
				seq = events[15].Seq
				e.exec(t, `DELETE FROM audit_log WHERE id = $1`, seq)
			})
			wantProblem(t, rep, transparency.ProblemDeletedRow, seq)
		})
		t.Run("ForgedRowInserted", func(t *testing.T) {
			var seq int64
			rep := tampered(t, e.fresh(t), func(t *testing.T, e env, _ []audit.StoredEvent, _ string) {
				// A row with consistent hashes, written straight to the table.
				forged := storeRecords(t, e, 99, 1)[0]
				got, err := e.store.GetEvent(t.Context(), forged.IdempotencyKey)
				if err != nil {
					t.Fatal(err)
				}
				seq = got.Seq
			})
			wantProblem(t, rep, transparency.ProblemNotInTree, seq)
		})
		t.Run("TwoRowsSwapped", func(t *testing.T) {
			var a, b int64
			rep := tampered(t, e.fresh(t), func(t *testing.T, e env, events []audit.StoredEvent, _ string) {
				a, b = events[2].Seq, events[9].Seq
				e.exec(t, `UPDATE audit_log SET id = -1 WHERE id = $1`, a)
				e.exec(t, `UPDATE audit_log SET id = $1 WHERE id = $2`, a, b)
				e.exec(t, `UPDATE audit_log SET id = $1 WHERE id = -1`, b)
			})
			// SQLite finds each leaf's id holding the other row; PostgreSQL
			// finds no row with the leaf's (id, event time).
			for _, seq := range []int64{a, b} {
				found := false
				for _, p := range rep.Problems {
					found = found || (p.Seq == seq && (p.Kind == transparency.ProblemReplacedRow || p.Kind == transparency.ProblemDeletedRow))
				}
				if !found {
					t.Errorf("no problem names swapped row %d", seq)
				}
			}
		})
		t.Run("HashTableTruncated", func(t *testing.T) {
			rep := tampered(t, e.fresh(t), func(t *testing.T, e env, _ []audit.StoredEvent, _ string) {
				e.exec(t, `DELETE FROM `+e.hashTable)
			})
			wantProblem(t, rep, transparency.ProblemStoredHash, 0)
		})
		t.Run("StoredHashRewritten", func(t *testing.T) {
			rep := tampered(t, e.fresh(t), func(t *testing.T, e env, _ []audit.StoredEvent, _ string) {
				e.setHash(t, 3, [32]byte{})
			})
			wantProblem(t, rep, transparency.ProblemStoredHash, 0)
		})
		t.Run("LeafAndRowRewrittenTogether", func(t *testing.T) {
			var seq int64
			rep := tampered(t, e.fresh(t), func(t *testing.T, e env, events []audit.StoredEvent, _ string) {
				ev := events[3]
				seq = ev.Seq
				ev.OutcomeDescription = "rewritten"
				ev.RecordHash = ev.ComputeRecordHash()
				e.exec(t, `UPDATE audit_log SET outcome_description = $1, record_hash = $2 WHERE id = $3`, ev.OutcomeDescription, ev.RecordHash, seq)
				e.exec(t, `UPDATE tlog_leaves SET leaf_data = $1 WHERE event_id = $2`, mustHex(t, ev.RecordHash), seq)
			})
			wantProblem(t, rep, transparency.ProblemStoredHash, seq)
			wantProblem(t, rep, transparency.ProblemCheckpointRoot, 0)
		})
		t.Run("CheckpointsResignedWithAnotherKey", func(t *testing.T) {
			rep := tampered(t, e.fresh(t), func(t *testing.T, e env, _ []audit.StoredEvent, _ string) {
				other := newKey(t, testOrigin)
				cs, err := e.store.Checkpoints(t.Context(), 0, 10)
				if err != nil {
					t.Fatal(err)
				}
				e.exec(t, `DELETE FROM tlog_checkpoints`)
				for _, c := range cs {
					text := c.Note[:strings.Index(c.Note, "\n\n")+1]
					signed, err := note.Sign(&note.Note{Text: text}, other.Signer)
					if err != nil {
						t.Fatal(err)
					}
					if err := e.store.AddCheckpoint(t.Context(), audit.Checkpoint{Size: c.Size, Note: string(signed)}); err != nil {
						t.Fatal(err)
					}
				}
			})
			wantProblem(t, rep, transparency.ProblemCheckpointSig, 0)
		})
		t.Run("TreeRolledBackBelowAKeptCheckpoint", func(t *testing.T) {
			// The attacker rolls the database back to the first checkpoint
			// (12 leaves), published file included; someone kept the
			// checkpoint of 21 elsewhere (verify --checkpoint).
			var kept string
			key := newKey(t, testOrigin)
			e := e.fresh(t)
			in, published := newIntegrator(t, e, key)
			storeRecords(t, e, 31, 12)
			integrateAll(t, in)
			storeRecords(t, e, 32, 9)
			integrateAll(t, in)
			notes, _ := transparency.ReadNotes(published)
			kept = notes[1]
			e.exec(t, `DELETE FROM tlog_leaves WHERE leaf_index >= 12`)
			e.dropHashesFrom(t, 12)
			e.exec(t, `DELETE FROM tlog_checkpoints WHERE size > 12`)
			e.exec(t, `DELETE FROM audit_log WHERE id NOT IN (SELECT event_id FROM tlog_leaves)`)
			if err := os.WriteFile(published, []byte(notes[0]), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := transparency.Verify(t.Context(), e.store, transparency.VerifyOptions{Verifier: key.Verifier,
				Published: []string{notes[0]}, External: []string{kept}})
			if err != nil {
				t.Fatal(err)
			}
			found := false
			for _, p := range rep.Problems {
				found = found || (p.Kind == transparency.ProblemCheckpointAhead && p.Size == 21)
			}
			if rep.OK || !found {
				t.Fatalf("the rolled-back tree is not reported against the kept checkpoint: %+v", rep)
			}
			// Without the kept checkpoint, the rolled-back store looks whole.
			if rep, _ := transparency.Verify(t.Context(), e.store, transparency.VerifyOptions{Verifier: key.Verifier,
				Published: []string{notes[0]}}); !rep.OK {
				t.Fatalf("rolled back consistently, verify still finds %+v", rep.Problems)
			}
		})
		t.Run("LeafDeletedMidPage", func(t *testing.T) {
			// Pages are read ahead from where full ones would end: a hole
			// must stop the tree at the missing leaf, however many pages
			// are read at once.
			key := newKey(t, testOrigin)
			e := e.fresh(t)
			in, _ := newIntegrator(t, e, key)
			storeRecords(t, e, 33, 21)
			integrateAll(t, in)
			e.exec(t, `DELETE FROM tlog_leaves WHERE leaf_index = 9`)
			var first []transparency.Problem
			for readers := 1; readers <= 4; readers++ {
				rep, err := transparency.Verify(t.Context(), e.store, transparency.VerifyOptions{Verifier: key.Verifier,
					Batch: 4, Readers: readers})
				if err == nil || !strings.Contains(err.Error(), "missing leaf 9") {
					t.Fatalf("%d readers: Verify = %v, want an error at missing leaf 9", readers, err)
				}
				last := rep.Problems[len(rep.Problems)-1]
				if last.Kind != transparency.ProblemMissingLeaf || *last.Leaf != 9 {
					t.Fatalf("%d readers: %+v, want missing leaf 9 last", readers, rep.Problems)
				}
				if first == nil {
					first = rep.Problems
				} else if fmt.Sprint(rep.Problems) != fmt.Sprint(first) {
					t.Fatalf("%d readers: %v, one reader: %v", readers, rep.Problems, first)
				}
			}
		})
		t.Run("PublishedFileRolledBack", func(t *testing.T) {
			rep := tampered(t, e.fresh(t), func(t *testing.T, e env, _ []audit.StoredEvent, published string) {
				notes, err := transparency.ReadNotes(published)
				if err != nil || len(notes) != 2 {
					t.Fatalf("%d notes, %v", len(notes), err)
				}
				if err := os.WriteFile(published, []byte(notes[0]), 0o644); err != nil {
					t.Fatal(err)
				}
			})
			found := false
			for _, p := range rep.Problems {
				found = found || (p.Kind == transparency.ProblemPublished && p.Size == 21 && strings.Contains(p.Detail, "rolled back"))
			}
			if !found {
				t.Errorf("the rolled-back published file is not reported: %+v", rep.Problems)
			}
		})
	})
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
