package main

import (
	"encoding/json"
	"fmt"
	"io"

	audit "github.com/smartlogs/audit-worker"
)

// hashEvent prints the producer hash (and signature) of the event on in:
// events hash, and event hash as before.
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
