package config

import (
	"bytes"
	"crypto/cipher"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

// fuzzLookup is the environment of the fuzz targets: two variables, and no
// key material, so that an encrypted document is refused before the key
// derivation (100,000 rounds of PBKDF2 an execution would stall the fuzzer).
func fuzzLookup(name string) (string, bool) {
	switch name {
	case "AUDIT_FUZZ_HOST":
		return "cache", true
	case "AUDIT_FUZZ_PORT":
		return "6380", true
	}
	return "", false
}

// FuzzParse holds the configuration parser to its contract on any document:
// never a panic; a refusal is either a document that is not JSON (or not an
// object, or encrypted without a key), or an *Error whose every problem names
// its field and rule; an accepted configuration validates, and its own
// encoding parses back to the same configuration.
func FuzzParse(f *testing.F) {
	seed, err := os.ReadFile("testdata/seed-readme.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(seed)
	if enc, err := os.ReadFile("testdata/seed-readme.node-encrypted.json"); err == nil {
		f.Add(enc)
	}
	if def, err := json.Marshal(Default()); err == nil {
		f.Add(def)
	}
	f.Add([]byte(`{"redis":{"host":"${AUDIT_FUZZ_HOST}","port":"${AUDIT_FUZZ_PORT}"},"worker":{"port":"x"}}`))
	f.Add([]byte(`{"compliance":{"reports":[{"name":"monthly","report":"hipaa","organizations":["org-a"],"cron":"0 6 1 * *","timeZone":"Europe/Berlin","destination":"file:///tmp/r"}]}}`))
	f.Add([]byte(`{"compliance":{"reports":[{"name":"x","report":"gdpr","organizations":["*"],"frequency":"weekly"}]}} {}`))
	f.Add([]byte(`{"iv":"00","data":"00"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parse(data, fuzzLookup)
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				msg := err.Error()
				if !strings.HasPrefix(msg, "parse config:") && !strings.HasPrefix(msg, "the configuration is encrypted") &&
					!strings.HasPrefix(msg, "decrypt config") {
					t.Fatalf("refusal %q is neither a problem list nor about the document as a whole", msg)
				}
				return
			}
			if len(ce.Problems) == 0 {
				t.Fatal("an *Error without problems")
			}
			for _, p := range ce.Problems {
				if p.Field == "" || p.Rule == "" {
					t.Fatalf("problem %+v names no field or no rule", p)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted a configuration that does not validate: %v", err)
		}
		encoded, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted configuration cannot be encoded: %v", err)
		}
		back, err := parse(encoded, fuzzLookup)
		if err != nil {
			t.Fatalf("the accepted configuration, encoded as %s, is refused: %v", encoded, err)
		}
		if !reflect.DeepEqual(back, c) {
			t.Fatalf("the accepted configuration reads back changed:\n%+v\n%+v", c, back)
		}
	})
}

// FuzzDecryptDocument holds the encrypted configuration's decoder to its
// contract: never a panic; whatever is not the exact envelope of a document
// sealed with the key is refused with an error about decryption; what it
// opens seals again, with the same IV, to the same data and tag.
func FuzzDecryptDocument(f *testing.F) {
	password, salt := "fuzz password", []byte("fuzz salt")
	block, err := newBlock(password, salt)
	if err != nil {
		f.Fatal(err)
	}
	derive := func() (cipher.Block, error) { return block, nil }
	sealed, err := EncryptDocument([]byte(`{"worker":{"port":3001}}`), password, salt)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed)
	f.Add(bytes.Replace(sealed, []byte(`"data":"`), []byte(`"data":"00`), 1))
	f.Add([]byte(`{"algorithm":"aes-256-gcm","iv":"","data":"","authTag":"00"}`))
	f.Add([]byte(`{"data":"00"}`))
	if enc, err := os.ReadFile("testdata/seed-readme.node-encrypted.json"); err == nil {
		f.Add(enc)
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		plain, err := openDocument(doc, derive)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "decrypt config") {
				t.Fatalf("refusal %q does not say it is about decryption", err)
			}
			return
		}
		var enc encryptedDocument
		if err := json.Unmarshal(doc, &enc); err != nil {
			t.Fatalf("opened a document that is not JSON: %v", err)
		}
		iv, _ := hex.DecodeString(enc.IV)
		ct, _ := hex.DecodeString(enc.Data)
		tag, _ := hex.DecodeString(enc.AuthTag)
		gcm, err := cipher.NewGCMWithNonceSize(block, len(iv))
		if err != nil {
			t.Fatalf("opened with an IV of %d bytes: %v", len(iv), err)
		}
		if again := gcm.Seal(nil, iv, plain, nil); !bytes.Equal(again, append(ct, tag...)) {
			t.Fatalf("opened %q, which seals to other bytes", plain)
		}
	})
}
