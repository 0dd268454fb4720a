package pipeline_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/pipeline"
	"github.com/smartlogs/audit-worker/sqlite"
)

// A processor over the embedded SQLite store takes a batch of events and,
// once the batch is durable, tells each its outcome: stored with its sequence
// number, a duplicate of one stored before, or rejected with the reason (the
// rejected ones are kept as dead letters, bytes and reasons).
func ExampleProcessor_Process() {
	dir, err := os.MkdirTemp("", "audit-example-")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.RemoveAll(dir)
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "audit.db")})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	p := pipeline.NewProcessor(store, pipeline.Config{Rules: audit.DefaultRules()})

	login := `{"timestamp":"2023-10-26T10:30:00.000Z","action":"userLogin","status":"success","principalId":"user-12345",
		"hash":"d1259f73beb8f1be36570a1e4d0a5cc666c7eb406cbdca9a284876ca7e00c3e7"}`
	logout := `{"timestamp":"2023-10-26T10:45:00.000Z","action":"userLogout","status":"success","principalId":"user-12345"}`
	out, err := p.Process(ctx, []pipeline.Input{
		{Payload: []byte(login), Source: "example"},
		{Payload: []byte(logout), Source: "example"},
		{Payload: []byte(login), Source: "example"}, // the same bytes again
		{Payload: []byte(`{"timestamp":"2023-10-26T10:50:00.000Z","status":"success"}`), Source: "example"},
		{Payload: []byte(strings.Replace(login, "user-12345", "user-666", 1)), Source: "example"}, // changed after hashing
	})
	if err != nil {
		fmt.Println("not stored, retry later:", err)
		return
	}
	for _, o := range out {
		switch o.Status {
		case pipeline.StatusStored:
			fmt.Println(o.Status, o.Seq)
		case pipeline.StatusRejected:
			fmt.Println(o.Status, o.Reason)
			for _, fe := range o.Errors {
				fmt.Printf("  %s: %s (%s)\n", fe.Field, fe.Message, fe.Code)
			}
		default:
			fmt.Println(o.Status)
		}
	}
	events, _ := store.ListEvents(ctx, 0, 10)
	dead, _ := store.ListDeadLetters(ctx, 0, 10)
	fmt.Println(len(events), "events stored,", len(dead), "dead letters")
	// Output:
	// stored 1
	// stored 2
	// duplicate
	// rejected validation_failed
	//   action: is required (REQUIRED_FIELD_MISSING)
	// rejected integrity_violation
	// 2 events stored, 2 dead letters
}
