package config

import (
	"encoding/json"
	"testing"
)

// TestSchemaReloadFlagsMatchDiff keeps the schema's "x-reload" (which the
// configuration reference prints) and EffectOf (which the reloader obeys)
// in step: a field documented as reloadable must reload, and the other way
// round.
func TestSchemaReloadFlagsMatchDiff(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal(Schema(), &root); err != nil {
		t.Fatal(err)
	}
	checked := 0
	// An array's items inherit its flag, as the reference prints them.
	var walk func(prefix string, node map[string]any, inherited *bool)
	walk = func(prefix string, node map[string]any, inherited *bool) {
		props, _ := node["properties"].(map[string]any)
		for name, raw := range props {
			prop, _ := raw.(map[string]any)
			path := prefix + name
			flag, ok := prop["x-reload"].(bool)
			if !ok && inherited != nil {
				flag, ok = *inherited, true
			}
			if items, isArray := prop["items"].(map[string]any); isArray && items["properties"] != nil {
				walk(path+"[0].", items, &flag)
			}
			if prop["properties"] != nil {
				walk(path+".", prop, inherited)
				continue
			}
			if !ok {
				t.Errorf("%s: no boolean x-reload in the schema", path)
				continue
			}
			checked++
			if now := EffectOf(path) == EffectNow; now != flag {
				t.Errorf("%s: the schema says x-reload %v, EffectOf says reloads now %v", path, flag, now)
			}
		}
	}
	walk("", root, nil)
	if checked < 50 {
		t.Fatalf("only %d fields checked; the walk missed the schema's shape", checked)
	}
}
