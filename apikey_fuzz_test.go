package audit

import (
	"strings"
	"testing"
)

// FuzzParseAPIKey holds ParseAPIKey to the awk_<id>_<secret> form: what it
// accepts is put together again from its parts, with an id of the public id
// alphabet and a secret of the issued length; keys it issues are accepted.
func FuzzParseAPIKey(f *testing.F) {
	_, token, _ := NewAPIKeySecret()
	f.Add(token)
	f.Add(strings.Replace(token, "_", "-", 2))
	f.Add("awk_" + strings.Repeat("a", 16) + "__" + strings.Repeat("b", 42))
	f.Add("Bearer " + token)
	f.Fuzz(func(t *testing.T, token string) {
		id, secret, ok := ParseAPIKey(token)
		if !ok {
			if id != "" || secret != "" {
				t.Fatalf("refused %q but returned id %q, secret %q", token, id, secret)
			}
			return
		}
		if APIKeyPrefix+id+"_"+secret != token {
			t.Fatalf("%q split into %q and %q", token, id, secret)
		}
		if !ValidAPIKeyID(id) || len(id) != apiKeyIDLength || len(secret) != apiKeySecretLength {
			t.Fatalf("%q: id %q or secret %q has the wrong form", token, id, secret)
		}
		if strings.Trim(id, apiKeyIDAlphabet) != "" {
			t.Fatalf("id %q has characters outside %q", id, apiKeyIDAlphabet)
		}
	})
}
