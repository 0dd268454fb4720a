package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// object is a JSON object that remembers the order of its members, so that
// the reference lists the sections and fields in the order the schema gives
// them (the original worker's sections first).
type object struct {
	keys   []string
	values map[string]any
}

func (o *object) get(key string) (any, bool) {
	v, ok := o.values[key]
	return v, ok
}

// str returns the member key when it is a string.
func (o *object) str(key string) string {
	s, _ := o.values[key].(string)
	return s
}

// obj returns the member key when it is an object.
func (o *object) obj(key string) *object {
	v, _ := o.values[key].(*object)
	return v
}

// parseOrdered decodes JSON into *object, []any and scalars (numbers as
// json.Number, so that defaults print exactly as the schema writes them).
func parseOrdered(data []byte) (*object, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("schema: data after the top-level value")
	}
	o, ok := v.(*object)
	if !ok {
		return nil, fmt.Errorf("schema: the top-level value is not an object")
	}
	return o, nil
}

func parseValue(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, fmt.Errorf("schema: %w", err)
	}
	switch tok {
	case json.Delim('{'):
		o := &object{values: map[string]any{}}
		for dec.More() {
			keyTok, err := dec.Token()
			if err != nil {
				return nil, fmt.Errorf("schema: %w", err)
			}
			key := keyTok.(string) // inside an object the decoder only yields string keys
			v, err := parseValue(dec)
			if err != nil {
				return nil, err
			}
			if _, dup := o.values[key]; !dup {
				o.keys = append(o.keys, key)
			}
			o.values[key] = v
		}
		_, err := dec.Token() // '}'
		return o, err
	case json.Delim('['):
		var list []any
		for dec.More() {
			v, err := parseValue(dec)
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
		_, err := dec.Token() // ']'
		return list, err
	}
	return tok, nil
}

// compactJSON renders a decoded value back as compact JSON, members in order.
func compactJSON(v any) string {
	switch v := v.(type) {
	case *object:
		var b bytes.Buffer
		b.WriteByte('{')
		for i, k := range v.keys {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(compactJSON(k))
			b.WriteByte(':')
			b.WriteString(compactJSON(v.values[k]))
		}
		b.WriteByte('}')
		return b.String()
	case []any:
		var b bytes.Buffer
		b.WriteByte('[')
		for i, e := range v {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(compactJSON(e))
		}
		b.WriteByte(']')
		return b.String()
	case json.Number:
		return v.String()
	case nil:
		return "null"
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false) // a default such as "<none>" reads as written
	_ = enc.Encode(v)        // strings and booleans always encode
	return string(bytes.TrimSuffix(b.Bytes(), []byte("\n")))
}
