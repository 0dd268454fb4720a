package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	audit "github.com/smartlogs/audit-worker"
)

func newEventCommand() *cobra.Command {
	event := &cobra.Command{Use: "event", Short: "Tools for single events"}
	var hmacKey string
	hash := &cobra.Command{
		Use:   "hash",
		Short: "Print the producer hash (and HMAC signature) of one event read on stdin",
		Long: `Reads one event JSON on stdin and prints {"hash":"…"} computed exactly as the
Node producer does, plus "signature" (HMAC-SHA256 over the hash) when a key is
given with --hmac-key or $AUDIT_HMAC_KEY. Use it to debug a producer whose
events are refused with integrity_violation.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return hashEvent(cmd.InOrStdin(), cmd.OutOrStdout(), hmacKey)
		},
	}
	hash.Flags().StringVar(&hmacKey, "hmac-key", os.Getenv("AUDIT_HMAC_KEY"),
		"security.encryptionKey to sign with (prefer $AUDIT_HMAC_KEY: flags show in ps)")
	event.AddCommand(hash)
	return event
}

func hashEvent(in io.Reader, out io.Writer, hmacKey string) error {
	data, err := io.ReadAll(io.LimitReader(in, 64<<20))
	if err != nil {
		return fmt.Errorf("read event: %w", err)
	}
	hash, err := audit.HashPayload(data)
	if err != nil {
		return fmt.Errorf("hash event: %w", err)
	}
	result := struct {
		Hash      string `json:"hash"`
		Signature string `json:"signature,omitempty"`
	}{Hash: hash}
	if hmacKey != "" {
		result.Signature = audit.Sign(hash, []byte(hmacKey))
	}
	return json.NewEncoder(out).Encode(result)
}
