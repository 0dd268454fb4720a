package config

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Effect says when a changed field takes effect in a running worker.
type Effect string

const (
	// EffectNow: the worker applies the field as soon as the new version is loaded.
	EffectNow Effect = "now"
	// EffectRestart: the field is read once, at start; it applies from the next restart.
	EffectRestart Effect = "restart"
)

// Change is one field that differs between two configurations.
type Change struct {
	// Path is the field's dotted path, arrays as path[i]: "http.apiKeys[0]".
	Path string `json:"path"`
	// Old and New are the JSON text of the values, secrets masked; a secret
	// that changed shows as "***" and "*** (changed)". A field present on
	// one side only has "" on the other.
	Old    string `json:"old"`
	New    string `json:"new"`
	Effect Effect `json:"effect"`
}

// NeedsRestart reports whether the change waits for the next restart.
func (c Change) NeedsRestart() bool { return c.Effect == EffectRestart }

// reloadable lists the fields a running worker applies without a restart, by
// path prefix (a trailing dot: the whole section). Everything else
// (connections, ports, queue names, the data directory) waits for a restart.
var reloadable = []string{
	"logging.level",
	"monitoring.",
	"reliableProcessor.concurrency",
	"reliableProcessor.batchSize",
	"reliableProcessor.circuitBreakerConfig.",
	"reliableProcessor.deadLetterConfig.alertThreshold",
	"storage.batchMaxSize",
	"storage.batchMaxWaitMs",
	"validation.",
	"security.encryptionKey",
	"http.apiKeys",
	"http.keys",
	"http.oidc.",
	"http.rateLimits.",
}

// restartOnly are exceptions inside the reloadable prefixes: turning the
// detectors on or off changes what observes the pipeline, and where their
// windows live is chosen once; both are fixed at start.
var restartOnly = []string{"monitoring.enabled", "monitoring.patternDetection.state"}

// EffectOf says when a change to the field at path (as in Change.Path) takes effect.
func EffectOf(path string) Effect {
	if slices.Contains(restartOnly, path) {
		return EffectRestart
	}
	for _, p := range reloadable {
		if path == p || (strings.HasSuffix(p, ".") && strings.HasPrefix(path, p)) ||
			strings.HasPrefix(path, p+"[") {
			return EffectNow
		}
	}
	return EffectRestart
}

// Diff lists the fields that differ between old and new, sorted by path, with
// their values masked (see Masked) and when each takes effect.
func Diff(old, new Config) []Change {
	fo, fn := flatten(old), flatten(new)
	mo, mn := flatten(old.Masked()), flatten(new.Masked())
	paths := make([]string, 0, len(fo)+len(fn))
	for p := range fo {
		paths = append(paths, p)
	}
	for p := range fn {
		if _, ok := fo[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	var out []Change
	for _, p := range paths {
		if fo[p] == fn[p] {
			continue
		}
		from, to := mo[p], mn[p]
		if from == to { // both masked: say that it changed without showing it
			from, to = Mask, Mask+" (changed)"
		}
		out = append(out, Change{Path: p, Old: from, New: to, Effect: EffectOf(p)})
	}
	return out
}

// flatten turns a configuration into dotted paths (arrays as path[i], with
// the array itself as "n items") and the JSON text of their values.
func flatten(c Config) map[string]string {
	// A Config holds strings, numbers, booleans, slices and string maps, so it
	// encodes; the only failure, a NaN or infinite number, is refused by Validate.
	data, _ := json.Marshal(c)
	var v any
	_ = json.Unmarshal(data, &v)
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, e := range t {
				p := k
				if prefix != "" {
					p = prefix + "." + k
				}
				walk(p, e)
			}
		case []any:
			out[prefix] = fmt.Sprint(len(t)) + " items"
			for i, e := range t {
				walk(fmt.Sprintf("%s[%d]", prefix, i), e)
			}
		default:
			b, _ := json.Marshal(t) // a value json.Unmarshal produced encodes again
			out[prefix] = string(b)
		}
	}
	walk("", v)
	return out
}

// ReloadStatus is the state of a running worker's configuration, as served
// at /observability/config.
type ReloadStatus struct {
	// Source is where the configuration comes from (redacted), or
	// "embedded default".
	Source string `json:"source"`
	// PendingRestart lists the fields whose new values wait for a restart,
	// measured against what the worker started with.
	PendingRestart []string `json:"pendingRestart"`
	// *SourceStatus is nil for the embedded default, which has no source to follow.
	*SourceStatus
}

// SourceStatus is what is known about a followed configuration source.
type SourceStatus struct {
	Version   string    `json:"version"`
	LoadedAt  time.Time `json:"loadedAt"`
	FromCache bool      `json:"fromCache"`
	Degraded  bool      `json:"degraded"`
	// LastReload is when a new version was last applied; nil before the first.
	LastReload *time.Time `json:"lastReload,omitempty"`
	LastCheck  time.Time  `json:"lastCheck"`
	LastError  string     `json:"lastError"` // redacted
	Rejected   int64      `json:"rejected"`
	WatchMode  string     `json:"watchMode"`
}
