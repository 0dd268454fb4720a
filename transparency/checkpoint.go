package transparency

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	audit "github.com/smartlogs/audit-worker"
)

// Tree is what a checkpoint states: the log's origin, the number of leaves
// and the root hash.
type Tree struct {
	Origin string
	Size   int64
	Root   tlog.Hash
}

// Text is the C2SP tlog-checkpoint body: origin, size and base64 root, one a
// line.
func (t Tree) Text() string {
	return t.Origin + "\n" + strconv.FormatInt(t.Size, 10) + "\n" + base64.StdEncoding.EncodeToString(t.Root[:]) + "\n"
}

// ParseTree reads a checkpoint body (extension lines after the root are
// allowed and ignored).
func ParseTree(text string) (Tree, error) {
	lines := strings.SplitN(text, "\n", 4)
	if len(lines) < 4 || lines[0] == "" {
		return Tree{}, audit.Errorf(audit.CodeInvalid, "checkpoint: want an origin, a size and a root hash, one a line")
	}
	size, err := strconv.ParseInt(lines[1], 10, 64)
	if err != nil || size < 0 || lines[1] != strconv.FormatInt(size, 10) {
		return Tree{}, audit.Errorf(audit.CodeInvalid, "checkpoint: size %q is not a non-negative decimal", lines[1])
	}
	root, err := base64.StdEncoding.DecodeString(lines[2])
	// Only the canonical text: the decoder would also skip a CR inside it.
	if err != nil || len(root) != tlog.HashSize || base64.StdEncoding.EncodeToString(root) != lines[2] {
		return Tree{}, audit.Errorf(audit.CodeInvalid, "checkpoint: root %q is not a base64 SHA-256 hash", lines[2])
	}
	t := Tree{Origin: lines[0], Size: size}
	copy(t.Root[:], root)
	return t, nil
}

// Sign signs the checkpoint of t as a signed note.
func Sign(t Tree, signer note.Signer) (string, error) {
	msg, err := note.Sign(&note.Note{Text: t.Text()}, signer)
	if err != nil {
		return "", fmt.Errorf("sign checkpoint: %w", err)
	}
	return string(msg), nil
}

// Open checks a signed checkpoint's signature with verifier and reads its
// tree. The error says whether the signature is missing, wrong or made by
// another key.
func Open(signed string, verifier note.Verifier) (Tree, error) {
	n, err := note.Open([]byte(signed), note.VerifierList(verifier))
	if err != nil {
		var unknown *note.UnknownVerifierError
		var unverified *note.UnverifiedNoteError
		switch {
		case errors.As(err, &unknown), errors.As(err, &unverified):
			return Tree{}, audit.Errorf(audit.CodeIntegrity, "checkpoint is not signed by %s (key id %08x)", verifier.Name(), verifier.KeyHash())
		default:
			return Tree{}, audit.Errorf(audit.CodeIntegrity, "checkpoint signature: %w", err)
		}
	}
	return ParseTree(n.Text)
}

// VerifierKeyOf returns the verifier key of a note private key.
func VerifierKeyOf(skey string) (string, error) {
	// PRIVATE+KEY+name+hash+base64(alg || private key)
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return "", audit.Errorf(audit.CodeInvalid, "checkpoint signing key is not a note private key (PRIVATE+KEY+name+hash+key)")
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return "", audit.Errorf(audit.CodeInvalid, "checkpoint signing key: %w", err)
	}
	// The note package derives no verifier from a signer: the public key
	// comes from the Ed25519 seed the private key holds.
	pub, err := ed25519PublicOf(parts[4])
	if err != nil {
		return "", err
	}
	return note.NewEd25519VerifierKey(signer.Name(), pub)
}

// Key is a signer with its verifier.
type Key struct {
	Signer      note.Signer
	Verifier    note.Verifier
	VerifierKey string // name+hexid+base64, the text GET /v1/checkpoints/key serves
}

// ParseKey reads a note private key.
func ParseKey(skey string) (Key, error) {
	skey = strings.TrimSpace(skey)
	vkey, err := VerifierKeyOf(skey)
	if err != nil {
		return Key{}, err
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		return Key{}, audit.Errorf(audit.CodeInvalid, "checkpoint signing key: %w", err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		return Key{}, audit.Errorf(audit.CodeInvalid, "checkpoint verifier key: %w", err)
	}
	return Key{Signer: signer, Verifier: verifier, VerifierKey: vkey}, nil
}

// LoadOrCreateKey reads the note private key in path, creating it (mode
// 0600, a fresh Ed25519 key named name) when the file does not exist.
// created says whether it did.
func LoadOrCreateKey(path, name string) (k Key, created bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		skey, _, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			return Key{}, false, fmt.Errorf("generate checkpoint key: %w", err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			return Key{}, false, fmt.Errorf("checkpoint key directory: %w", err)
		}
		// Written beside, then linked into place: another process sharing
		// the directory either sees the whole key or makes its own link fail.
		f, err := os.CreateTemp(filepath.Dir(path), ".checkpoint-key-*")
		if err != nil {
			return Key{}, false, fmt.Errorf("create checkpoint key: %w", err)
		}
		defer os.Remove(f.Name())
		_, werr := f.WriteString(skey + "\n")
		if serr := f.Sync(); werr == nil {
			werr = serr
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return Key{}, false, fmt.Errorf("write checkpoint key: %w", werr)
		}
		if err := os.Link(f.Name(), path); errors.Is(err, os.ErrExist) {
			return LoadOrCreateKey(path, name)
		} else if err != nil {
			return Key{}, false, fmt.Errorf("create checkpoint key: %w", err)
		}
		k, err := ParseKey(skey)
		return k, true, err
	}
	if err != nil {
		return Key{}, false, fmt.Errorf("read checkpoint key: %w", err)
	}
	k, err = ParseKey(string(bytes.TrimSpace(b)))
	return k, false, err
}

// ed25519PublicOf returns the public key of a note private key's last field,
// base64(algorithm byte 1 || 32-byte Ed25519 seed).
func ed25519PublicOf(field string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(field)
	if err != nil || len(b) != 1+ed25519.SeedSize || b[0] != 1 {
		return nil, audit.Errorf(audit.CodeInvalid, "checkpoint signing key is not an Ed25519 note key")
	}
	return ed25519.NewKeyFromSeed(b[1:]).Public().(ed25519.PublicKey), nil
}
