package main

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
)

// reloadKeyword is the schema's custom keyword that says whether a running
// worker applies a new value of a field without a restart. JSON Schema
// validators ignore keywords they do not know.
const reloadKeyword = "x-reload"

// row is one field of a table.
type row struct {
	path, typ, def, reload, desc string
}

// section is one object of the configuration: a heading, the object's
// description and a table of its fields that are not objects themselves.
type section struct {
	level int
	title string
	desc  string
	rows  []row
}

// render turns the configuration's JSON Schema into the Markdown reference.
// Every property must have a description and every field a reload flag, so
// that nothing reaches the reference undocumented.
func render(schema []byte) ([]byte, error) {
	root, err := parseOrdered(schema)
	if err != nil {
		return nil, err
	}
	props := root.obj("properties")
	if props == nil {
		return nil, errors.New("schema: no properties")
	}
	var problems []string
	var sections []section
	top := section{level: 2, title: "Top level", desc: "Fields outside any section."}
	for _, name := range props.keys {
		node, ok := props.values[name].(*object)
		if !ok {
			problems = append(problems, name+": not a schema object")
			continue
		}
		if node.obj("properties") != nil {
			sections = append(sections, objectSections(name, node, 2, nil, &problems)...)
			continue
		}
		top.rows = append(top.rows, leafRow(name, node, nil, &problems))
		sections = append(sections, itemSections(name, node, 3, nil, &problems)...)
	}
	if len(top.rows) > 0 {
		sections = append([]section{top}, sections...)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("schema: %s", strings.Join(problems, "; "))
	}

	var b bytes.Buffer
	writeIntro(&b, root)
	writeRules(&b, root)
	writeContents(&b, sections)
	for _, s := range sections {
		writeSection(&b, s)
	}
	return b.Bytes(), nil
}

// objectSections returns the section of the object at path and, after it, the
// sections of the objects inside it. inherited is the reload flag of an
// enclosing array (the fields of its items reload with it).
func objectSections(path string, node *object, level int, inherited *bool, problems *[]string) []section {
	s := section{level: level, title: path, desc: describe(path, node, problems)}
	var nested []section
	props := node.obj("properties")
	for _, name := range props.keys {
		childPath := path + "." + name
		child, ok := props.values[name].(*object)
		if !ok {
			*problems = append(*problems, childPath+": not a schema object")
			continue
		}
		if child.obj("properties") != nil {
			nested = append(nested, objectSections(childPath, child, min(level+1, 3), inherited, problems)...)
			continue
		}
		s.rows = append(s.rows, leafRow(childPath, child, inherited, problems))
		nested = append(nested, itemSections(childPath, child, min(level+1, 3), inherited, problems)...)
	}
	return append([]section{s}, nested...)
}

// itemSections returns a section for the items of an array of objects, whose
// fields reload as the array does.
func itemSections(path string, node *object, level int, inherited *bool, problems *[]string) []section {
	items := node.obj("items")
	if items == nil || items.obj("properties") == nil {
		return nil
	}
	reload := reloadFlag(path, node, inherited, problems)
	return objectSections(path+"[]", items, level, reload, problems)
}

func leafRow(path string, node *object, inherited *bool, problems *[]string) row {
	r := row{path: path, typ: typeOf(node), def: "—", desc: describe(path, node, problems)}
	if d, ok := node.get("default"); ok {
		r.def = "`" + compactJSON(d) + "`"
	}
	r.reload = "restart"
	if f := reloadFlag(path, node, inherited, problems); f != nil && *f {
		r.reload = "yes"
	}
	return r
}

// reloadFlag is the field's own x-reload, or the one it inherits from the
// array it is an item of.
func reloadFlag(path string, node *object, inherited *bool, problems *[]string) *bool {
	v, ok := node.get(reloadKeyword)
	if !ok {
		if inherited == nil {
			*problems = append(*problems, path+": no "+reloadKeyword)
		}
		return inherited
	}
	f, ok := v.(bool)
	if !ok {
		*problems = append(*problems, path+": "+reloadKeyword+" is not a boolean")
		return inherited
	}
	return &f
}

func describe(path string, node *object, problems *[]string) string {
	d := strings.TrimSpace(node.str("description"))
	if d == "" {
		*problems = append(*problems, path+": no description")
	}
	return d
}

// typeOf names the field's JSON type with its range or its allowed values.
func typeOf(node *object) string {
	t := typeName(node)
	var rules []string
	if values := enumOf(node); len(values) > 0 {
		quoted := make([]string, len(values))
		for i, v := range values {
			quoted[i] = "`" + compactJSON(v) + "`"
		}
		rules = append(rules, "one of "+strings.Join(quoted, ", "))
	}
	lo, hasLo := node.get("minimum")
	hi, hasHi := node.get("maximum")
	switch {
	case hasLo && hasHi:
		rules = append(rules, compactJSON(lo)+"–"+compactJSON(hi))
	case hasLo:
		rules = append(rules, "≥ "+compactJSON(lo))
	case hasHi:
		rules = append(rules, "≤ "+compactJSON(hi))
	}
	if len(rules) == 0 {
		return t
	}
	return t + ", " + strings.Join(rules, ", ")
}

// enumOf returns the allowed values of the field, also when they are one
// branch of an anyOf (the other being a ${NAME} reference).
func enumOf(node *object) []any {
	if values, ok := node.values["enum"].([]any); ok {
		return values
	}
	branches, _ := node.values["anyOf"].([]any)
	for _, b := range branches {
		if o, ok := b.(*object); ok {
			if values, ok := o.values["enum"].([]any); ok {
				return values
			}
		}
	}
	return nil
}

func typeName(node *object) string {
	var names []string
	switch t := node.values["type"].(type) {
	case string:
		names = []string{t}
	case []any:
		for _, e := range t {
			if s, ok := e.(string); ok {
				names = append(names, s)
			}
		}
	}
	for i, n := range names {
		switch n {
		case "array":
			if items := node.obj("items"); items != nil {
				if items.obj("properties") != nil {
					names[i] = "array of objects"
				} else if it := typeName(items); it != "" {
					names[i] = "array of " + it
				}
			}
		case "object":
			if values := node.obj("additionalProperties"); values != nil {
				if vt := typeName(values); vt != "" {
					names[i] = "object of " + vt
				}
			}
		}
	}
	return strings.Join(names, " or ")
}

func writeIntro(b *bytes.Buffer, root *object) {
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("<!-- Generated from config/schema.json by `go generate ./config`. Do not edit: change the schema and regenerate. -->\n\n")
	if d := root.str("description"); d != "" {
		b.WriteString(escapeText(d) + "\n\n")
	}
	b.WriteString("A field left out takes its default; a field written is validated as written (an explicit `0` or `\"\"` is checked, " +
		"not replaced by the default). A file that breaks a rule is refused with every field and rule listed, " +
		"for example `invalid configuration: redis.port: must be between 1 and 65535 (is 70000)`.\n\n")
	b.WriteString("The same rules are published as a JSON Schema (draft 2020-12): [config.schema.json](config.schema.json), " +
		"also printed by `audit-worker config schema`. Point an editor at it for completion and checks.\n\n")
	b.WriteString("In the tables, **reload** says what a running worker does when the field changes in its configuration source: " +
		"`yes`, it applies the new value at once; `restart`, it logs the field as pending restart and shows it in " +
		"`GET /observability/config` until the next start. How sources, reload, secrets and the encrypted file work is in " +
		"[operations.md](operations.md#configuration-sources-and-reload).\n\n")
}

// writeRules lists the conditional rules of the schema (allOf), such as the
// rules that apply in production.
func writeRules(b *bytes.Buffer, root *object) {
	all, _ := root.values["allOf"].([]any)
	for _, e := range all {
		rule, ok := e.(*object)
		if !ok {
			continue
		}
		b.WriteString("## " + escapeText(strings.TrimSuffix(rule.str("description"), ".")) + "\n\n")
		if then := rule.obj("then"); then != nil {
			writeRuleFields(b, "", then)
		}
		b.WriteString("\n")
	}
}

func writeRuleFields(b *bytes.Buffer, path string, node *object) {
	props := node.obj("properties")
	if props == nil {
		return
	}
	for _, name := range props.keys {
		child, ok := props.values[name].(*object)
		if !ok {
			continue
		}
		p := name
		if path != "" {
			p = path + "." + name
		}
		if d := child.str("description"); d != "" && child.obj("properties") == nil {
			b.WriteString("- `" + p + "`: " + escapeText(d) + "\n")
		}
		writeRuleFields(b, p, child)
	}
}

func writeContents(b *bytes.Buffer, sections []section) {
	b.WriteString("## Sections\n\n")
	for _, s := range sections {
		if s.level == 2 {
			b.WriteString("- [" + s.title + "](#" + anchor(s.title) + ")\n")
		}
	}
	b.WriteString("\n")
}

func writeSection(b *bytes.Buffer, s section) {
	b.WriteString(strings.Repeat("#", s.level) + " " + s.title + "\n\n")
	if s.desc != "" {
		b.WriteString(escapeText(s.desc) + "\n\n")
	}
	if len(s.rows) == 0 {
		return
	}
	b.WriteString("| field | type | default | reload | description |\n")
	b.WriteString("|---|---|---|---|---|\n")
	for _, r := range s.rows {
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n",
			r.path, escapeCell(r.typ), escapeCell(r.def), r.reload, escapeCell(escapeText(r.desc)))
	}
	b.WriteString("\n")
}

// anchor is the fragment GitHub gives a heading: lower case, punctuation
// other than '-' and '_' dropped, spaces turned into '-'.
func anchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// escapeText keeps prose from being read as Markdown: '*' in names such as
// auth.* would start emphasis, and '<' a tag.
var textEscaper = strings.NewReplacer(`*`, `\*`, `<`, `\<`)

func escapeText(s string) string { return textEscaper.Replace(s) }

// escapeCell keeps a '|' from ending a table cell.
func escapeCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
