package telemetry

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/smartlogs/audit-worker/pipeline"
)

// StageTiming is what the stage histogram holds for one stage since start.
type StageTiming struct {
	Stage   string
	Batches uint64
	Total   time.Duration // sum over all batches
	Buckets []Bucket      // cumulative, by increasing bound; the +Inf bucket is Batches
}

// Bucket is one cumulative histogram bucket.
type Bucket struct {
	UpperBound float64 // seconds
	Count      uint64  // observations <= UpperBound
}

// Average is the mean duration of the stage per batch.
func (t StageTiming) Average() time.Duration {
	if t.Batches == 0 {
		return 0
	}
	return t.Total / time.Duration(t.Batches)
}

// Quantile estimates the q-quantile from the buckets the way PromQL's
// histogram_quantile does: linear interpolation inside the bucket that holds
// the rank. A rank beyond the last finite bound reports that bound.
func (t StageTiming) Quantile(q float64) time.Duration {
	if t.Batches == 0 {
		return 0
	}
	rank := q * float64(t.Batches)
	lower, below := 0.0, uint64(0)
	for _, b := range t.Buckets {
		if float64(b.Count) >= rank {
			inBucket := float64(b.Count - below)
			frac := 1.0
			if inBucket > 0 {
				frac = (rank - float64(below)) / inBucket
			}
			return durationOfSeconds(lower + (b.UpperBound-lower)*frac)
		}
		lower, below = b.UpperBound, b.Count
	}
	return durationOfSeconds(lower)
}

func durationOfSeconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// StageTimings reads the stage histogram (validate, verify, store, ack): the
// stages that have seen at least one batch, in no particular order.
func (m *Metrics) StageTimings() []StageTiming {
	families, err := m.stageReg.Gather()
	if err != nil {
		m.log.Warn("read stage histogram", "err", err)
		return nil
	}
	var out []StageTiming
	for _, mf := range families {
		for _, metric := range mf.GetMetric() {
			h := metric.GetHistogram()
			if h.GetSampleCount() == 0 {
				continue
			}
			t := StageTiming{Batches: h.GetSampleCount(), Total: durationOfSeconds(h.GetSampleSum())}
			for _, l := range metric.GetLabel() {
				if l.GetName() == "stage" {
					t.Stage = l.GetValue()
				}
			}
			for _, b := range h.GetBucket() {
				t.Buckets = append(t.Buckets, Bucket{UpperBound: b.GetUpperBound(), Count: b.GetCumulativeCount()})
			}
			out = append(out, t)
		}
	}
	return out
}

// StageBottleneck is one stage's part of a batch's time.
type StageBottleneck struct {
	Stage     string  `json:"stage"`
	Batches   uint64  `json:"batches"`
	AverageMs float64 `json:"averageMs"`
	P95Ms     float64 `json:"p95Ms"` // estimated from the histogram buckets
	// Share is the stage's part of an average batch's time (the sum of the
	// stages' averages), from 0 to 1.
	Share          float64 `json:"share"`
	Dominant       bool    `json:"dominant"`
	Recommendation string  `json:"recommendation,omitempty"` // for the dominant stage
}

// BottleneckReport ranks the stages by their share of a batch's time.
type BottleneckReport struct {
	Stages    []StageBottleneck `json:"stages"` // largest share first; empty without data
	Dominant  string            `json:"dominant,omitempty"`
	Summary   string            `json:"summary"`
	Timestamp time.Time         `json:"timestamp"`
}

// Bottlenecks analyses the stage timings collected since start.
func (m *Metrics) Bottlenecks() BottleneckReport {
	return AnalyzeBottlenecks(m.StageTimings(), m.now())
}

// AnalyzeBottlenecks ranks stages by their share of an average batch's time
// and says which one dominates. Averages rather than totals are compared
// because not every batch passes every stage (only BullMQ batches are acked).
func AnalyzeBottlenecks(timings []StageTiming, now time.Time) BottleneckReport {
	r := BottleneckReport{Stages: []StageBottleneck{}, Timestamp: now.UTC()}
	var sum time.Duration
	for _, t := range timings {
		if t.Batches > 0 {
			sum += t.Average()
		}
	}
	if sum <= 0 {
		r.Summary = "no batches timed yet: nothing to analyse"
		return r
	}
	for _, t := range timings {
		if t.Batches == 0 {
			continue
		}
		r.Stages = append(r.Stages, StageBottleneck{
			Stage: t.Stage, Batches: t.Batches,
			AverageMs: msOf(t.Average()), P95Ms: msOf(t.Quantile(0.95)),
			Share: roundTo(float64(t.Average())/float64(sum), 4),
		})
	}
	slices.SortFunc(r.Stages, func(a, b StageBottleneck) int {
		if a.Share != b.Share {
			return cmpDesc(a.Share, b.Share)
		}
		return strings.Compare(a.Stage, b.Stage)
	})
	top := &r.Stages[0]
	top.Dominant, top.Recommendation = true, recommendation(top.Stage)
	r.Dominant = top.Stage
	r.Summary = fmt.Sprintf("%s takes %.0f%% of batch time (%.1f ms of %.1f ms per batch)",
		top.Stage, top.Share*100, top.AverageMs, msOf(sum))
	if len(r.Stages) > 1 {
		next := r.Stages[1]
		if next.AverageMs > 0 {
			r.Summary += fmt.Sprintf(", %.1f× the next stage (%s)", top.AverageMs/next.AverageMs, next.Stage)
		}
	} else {
		r.Summary += "; it is the only stage timed so far"
	}
	return r
}

func cmpDesc(a, b float64) int {
	if a > b {
		return -1
	}
	return 1
}

// recommendation says where to look when stage dominates a batch's time.
func recommendation(stage string) string {
	switch stage {
	case pipeline.StageStore:
		return "The store dominates: check the database's I/O (disk latency, WAL and checkpoints on PostgreSQL), " +
			"the batch size (storage.batchMaxSize: larger batches amortise each transaction) and the connection pool; " +
			"SQLite has a single writer, so move heavy loads to PostgreSQL."
	case pipeline.StageValidate:
		return "Validation dominates: it is CPU-bound, so give the worker more CPU or run more replicas on the same queue."
	case pipeline.StageVerify:
		return "Hash and signature verification dominate: they are CPU-bound, so give the worker more CPU or run more replicas on the same queue."
	case StageAck:
		return "Acknowledging jobs dominates: check Redis latency (network round trips, SLOWLOG, persistence and memory pressure)."
	}
	return ""
}

// msOf is d in milliseconds, rounded to microseconds for readable JSON.
func msOf(d time.Duration) float64 { return roundTo(float64(d)/float64(time.Millisecond), 3) }

func roundTo(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
