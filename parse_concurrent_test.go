package audit_test

import (
	"reflect"
	"sync"
	"testing"
	"time"

	audit "github.com/smartlogs/audit-worker"
	"github.com/smartlogs/audit-worker/internal/eventgen"
)

// ParseEvent reuses its working memory across calls: parsed concurrently, in
// any order, valid and invalid events alike must come out exactly as each does
// alone (nothing of one event may leak into another).
func TestParseEventConcurrentlyMatchesAlone(t *testing.T) {
	g := eventgen.New(11)
	now := time.Now()
	type parsed struct {
		ev       audit.Event
		warnings []string
		err      string
	}
	parse := func(p []byte) parsed {
		ev, w, err := audit.ParseEvent(p, audit.DefaultRules(), now)
		r := parsed{ev: ev, warnings: w}
		if err != nil {
			r.err = err.Error()
		}
		return r
	}
	var payloads [][]byte
	for i := range 200 {
		if i%3 == 0 {
			p, _ := g.Invalid()
			payloads = append(payloads, p)
		} else {
			payloads = append(payloads, g.Valid())
		}
	}
	payloads = append(payloads, []byte(`{"action":"a",`), []byte(`{"a":1,"a":2}`), []byte(`{"s":[{"a":1,"a":2}]}`)) // decode failures
	alone := make([]parsed, len(payloads))
	for i, p := range payloads {
		alone[i] = parse(p)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for k := range 4 * len(payloads) {
				i := (k*7 + w*13) % len(payloads)
				if got := parse(payloads[i]); !reflect.DeepEqual(got, alone[i]) {
					t.Errorf("payload %d parsed concurrently differs:\n got %+v\nwant %+v", i, got, alone[i])
					return
				}
			}
		})
	}
	wg.Wait()
}
