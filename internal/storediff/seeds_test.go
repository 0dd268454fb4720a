package storediff

import (
	"encoding/json"
	"strings"

	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// incompressible returns n letters and digits that PostgreSQL's compression
// of index entries cannot shrink.
func incompressible(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = alphabet[x%uint64(len(alphabet))]
	}
	return string(b)
}

// seeds are realistic events, valid, hashed and signed or not, and invalid,
// and the edge cases of what the stores hold: the bounds of the accepted
// times, numbers that a float64 does or does not keep, strings a text column
// does or does not take, details that PostgreSQL's json must accept as they
// are.
func seeds() [][]byte {
	g := eventgen.New(7)
	var out [][]byte
	for range 8 {
		out = append(out, g.Valid())
	}
	g.HMACKey = []byte("storediff-hmac-key-of-some-length")
	for range 4 {
		out = append(out, g.Valid())
		bad, _ := g.Invalid()
		out = append(out, bad, g.Tampered())
	}

	base := func(fields map[string]any) []byte {
		m := g.Fields()
		for k, v := range fields {
			if v == nil {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		data, err := json.Marshal(m)
		if err != nil {
			panic(err)
		}
		return data
	}
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	for _, ts := range []string{
		"1970-01-01T00:00:00Z", "1970-01-01T23:59:00+23:59", "9999-12-31T23:59:59.999999999Z", "9999-12-31T23:59:59+23:59",
		"2023-10-26t10:30:00.123456789z", "2023-10-26T10:30:00.1234567-00:00", "2024-02-29T12:00:00.5+05:45",
		"0001-01-01T00:00:00Z", "0001-01-01T05:30:00+05:30", "0000-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
		"1969-12-31T23:59:59.999999999Z", "2016-12-31T23:59:60Z", "2023-10-26T10:30:00.1234567891Z",
		"2023-10-26T10:30:00,5Z", "2023-10-26T1:30:00Z", "2023-10-26T10:30:00+24:00",
	} {
		out = append(out, base(map[string]any{"timestamp": ts}))
	}
	for _, n := range []string{"0", "-0", "-0.0e5", "1.50", "1E3", "0.1", "0.30000000000000004", "5e-324", "3e-324",
		"1.7976931348623157e308", "1e400", "1e-400", "0.1000000000000000055511151231257827", "123456789012345680000",
		"12345678901234567890", "0e999999999"} {
		out = append(out,
			base(map[string]any{"processingLatency": raw(n)}),
			base(map[string]any{"queueDepth": raw(n)}),
			base(map[string]any{"retentionPolicy": raw(n), "custom": map[string]any{"n": raw(n), "list": []any{raw(n)}}}))
	}
	for _, s := range []string{"\uFFFE\uFFFF", "\U0010FFFF😀", "\u2028\u2029", "<&>'\"\\/", "\x7f\t\n", strings.Repeat("é", 600),
		strings.Repeat("p", 1024), strings.Repeat("p", 1025), incompressible(3000)} {
		out = append(out, base(map[string]any{"principalId": s, "targetResourceId": s, "outcomeDescription": s,
			"custom": map[string]any{s: s}}))
	}
	deep := strings.Repeat(`{"d":`, 64) + "1" + strings.Repeat("}", 64)
	sample := string(g.Valid())
	for _, extra := range []string{
		`"details":` + deep,
		`"details":` + strings.Repeat("[", 63) + strings.Repeat("]", 63),
		`"escapes":"\u00e9\ud83d\ude00\/\b\f\n\r\t\"\\\u001f"`,
		`"escapedKey\u0041":{"\u00e9":1,"e\u0301":2}`,
		`"cu\u0073tom":1`,
		`"n":[-0,0.0,1E+2,1e-7,-1.5e-300,100000000000000000000000000000000]`,
		`"nested":{"a":1,"a":2}`,
		`"nested":[{"id":1},{"id":1,"id":2}]`,
		`"nul":{"x":"\u0000"}`,
		`"lone":{"\ud800":1}`,
		"\"ws\" : \t\n\r [ 1 , { \"a\" : \"b\" } ] ",
	} {
		out = append(out, []byte(strings.TrimSuffix(sample, "}")+","+extra+"}"))
	}
	out = append(out,
		[]byte(strings.Replace(sample, `"ipAddress":"`, `"ipAddress":"not-an-ip<script>","ipAddress":"`, 1)),
		[]byte(`{"timestamp":"2023-10-26T10:30:00.000Z","action":"a","status":"success"}`),
		[]byte(`{"timestamp":"2023-10-26T10:30:00.000Z","action":"a","status":"success","status":"failure"}`),
		[]byte(`{"timestamp":"2023-10-26T10:30:00.000Z","action":"a","status":"success","sessionContext":{"sessionId":"s","ipAddress":"::1","userAgent":"u","geolocation":null}}`),
		[]byte(`[]`), []byte(`{`), []byte("{\"action\":\"\xff\"}"),
	)
	return out
}
