package postgres

import (
	"bytes"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// However COPY sizes its reads, the stream gives the same bytes: the header,
// every row once and in order, the trailer, then io.EOF.
func TestRecordStreamReadsInAnyChunks(t *testing.T) {
	g := eventgen.New(5)
	recs := g.Records(300, "test")
	recs[7].Details = bytes.Repeat([]byte("x"), 200<<10) // a row longer than a read
	lead := func(i int) int64 { return int64(1000 + i) }

	var want []byte
	for i := range recs {
		want = appendRecordRow(want, lead(i), &recs[i])
	}
	want = binary.BigEndian.AppendUint16(want, 0xffff)

	rng := rand.New(rand.NewPCG(1, 2))
	for _, maxRead := range []int{1, 7, 100, 4096, 65536, 1 << 20} {
		s := &recordStream{recs: recs, lead: lead}
		var got []byte
		for {
			p := make([]byte, 1+rng.IntN(maxRead))
			n, err := s.Read(p)
			got = append(got, p[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil || n == 0 {
				t.Fatalf("reads of up to %d: Read = %d, %v", maxRead, n, err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("reads of up to %d: %d bytes, want %d (first difference at %d)", maxRead, len(got), len(want), firstDifference(got, want))
		}
		if len(s.buf) > 2*maxRead+len(recs[7].Details)+64<<10 {
			t.Errorf("reads of up to %d: the stream holds %d bytes", maxRead, len(s.buf))
		}
	}
}

func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}
