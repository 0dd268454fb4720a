package main

import "testing"

// The worker sets a soft memory limit from the ingest budget only when the
// operator has not: GOMEMLIMIT, even "off", is theirs.
func TestSoftMemoryLimitLeavesGOMEMLIMITToTheOperator(t *testing.T) {
	env := func(vars map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := vars[k]; return v, ok }
	}
	for _, tc := range []struct {
		vars   map[string]string
		budget int64
		want   int64
	}{
		{nil, 64 << 20, 256 << 20},
		{map[string]string{"GOGC": "100"}, 8 << 20, 144 << 20},
		{map[string]string{"GOMEMLIMIT": "96MiB"}, 64 << 20, -1},
		{map[string]string{"GOMEMLIMIT": "off"}, 64 << 20, -1},
		{map[string]string{"GOMEMLIMIT": ""}, 64 << 20, -1},
	} {
		if got := softMemoryLimit(env(tc.vars), tc.budget); got != tc.want {
			t.Errorf("env %v, budget %d: limit %d, want %d", tc.vars, tc.budget, got, tc.want)
		}
	}
}
