package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"

	"github.com/hyvve/sidecar/schemas"
)

// File name rules of schemas/: one file per core event type.
const (
	fileSuffix = ".schema.json"
	dialect    = "https://json-schema.org/draft/2020-12/schema"
	idPrefix   = "urn:hyvve:events:"
)

// Doc is one core event's schema, read in declaration order so that
// generated code, docs and error ordering follow the order of the file.
type Doc struct {
	Type        string            // event type, e.g. "approval.requested" (the file name without .schema.json)
	File        string            // file name inside schemas/
	Description string            // what the event means
	Root        *Node             // the data object (Kind "object")
	Defs        []Def             // named object types of $defs, in declaration order
	Examples    []json.RawMessage // the "examples" entries, as written
	Raw         []byte            // the whole file
}

// Def is a named object type declared under $defs and used through $ref.
// Names are unique across all schemas: generated code has one type per name.
type Def struct {
	Name string
	Node *Node
}

// Node is one schema in the subset that the generators understand. Loading
// rejects every keyword outside it, so that nothing a schema says can be
// silently missing from the generated types and docs.
type Node struct {
	Kind        string // string, integer, number, boolean, array, object, map, ref
	Ref         string // Kind "ref": name of the Def
	Description string

	Format    string   // string: "date-time" or "email"
	Pattern   string   // string: regular expression
	Enum      []string // string: allowed values
	MinLength *int     // string
	MaxLength *int     // string
	Minimum   string   // integer or number: JSON number text, "" when absent
	Maximum   string   // integer or number

	Items    *Node // array: element schema
	MinItems *int  // array
	MaxItems *int  // array

	Properties    []*Property // object, in declaration order
	Values        *Node       // map: schema of every value (additionalProperties)
	MaxProperties *int        // map
}

// Property is one named member of an object.
type Property struct {
	Name     string
	Required bool
	Node     *Node
}

// Docs loads every schema embedded from schemas/, sorted by event type.
func Docs() ([]*Doc, error) {
	return Load(schemas.FS)
}

// Load reads every *.schema.json file at the root of fsys, sorted by event
// type, and checks the house rules: draft 2020-12, $id and title naming the
// type of the file name, a description on the event and on every field, at
// least one example, required fields that exist, and only the keywords of
// Node. It does not check that the examples are valid (see Validator).
func Load(fsys fs.FS) ([]*Doc, error) {
	names, err := fs.Glob(fsys, "*"+fileSuffix)
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	if len(names) == 0 {
		return nil, errors.New("no *" + fileSuffix + " files")
	}
	slices.Sort(names) // Glob sorts already; the generated files depend on it
	docs := make([]*Doc, 0, len(names))
	defNames := make(map[string]string) // def name → file that declares it
	for _, name := range names {
		raw, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, fmt.Errorf("read schema: %w", err)
		}
		d, err := parseDoc(name, raw)
		if err != nil {
			return nil, fmt.Errorf("schemas/%s: %w", name, err)
		}
		for _, def := range d.Defs {
			if other, dup := defNames[def.Name]; dup {
				return nil, fmt.Errorf("schemas/%s: $defs/%s is also declared in %s; names must be unique", name, def.Name, other)
			}
			defNames[def.Name] = name
		}
		docs = append(docs, d)
	}
	return docs, nil
}

// object is a JSON object with its keys in document order.
type object struct {
	keys []string
	m    map[string]any
}

// decodeOrdered reads one JSON value, keeping object keys in order. Numbers
// are json.Number; duplicate keys are an error.
func decodeOrdered(dec *json.Decoder) (any, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok {
	case json.Delim('{'):
		o := &object{m: make(map[string]any)}
		for dec.More() {
			kt, err := dec.Token()
			if err != nil {
				return nil, err
			}
			k := kt.(string)
			if _, dup := o.m[k]; dup {
				return nil, fmt.Errorf("key %q appears twice", k)
			}
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			o.keys = append(o.keys, k)
			o.m[k] = v
		}
		_, err := dec.Token() // '}'
		return o, err
	case json.Delim('['):
		var a []any
		for dec.More() {
			v, err := decodeOrdered(dec)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := dec.Token() // ']'
		return a, err
	}
	return tok, nil
}

func parseDoc(file string, raw []byte) (*Doc, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	v, err := decodeOrdered(dec)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid JSON: data after the schema object")
	}
	root, ok := v.(*object)
	if !ok {
		return nil, errors.New("the schema is not a JSON object")
	}
	typ := strings.TrimSuffix(file, fileSuffix)
	d := &Doc{Type: typ, File: file, Raw: raw}
	if s, _ := root.m["$schema"].(string); s != dialect {
		return nil, fmt.Errorf("$schema must be %q", dialect)
	}
	if s, _ := root.m["$id"].(string); s != idPrefix+typ {
		return nil, fmt.Errorf("$id must be %q", idPrefix+typ)
	}
	if s, _ := root.m["title"].(string); s != typ {
		return nil, fmt.Errorf("title must be the event type %q", typ)
	}
	exs, _ := root.m["examples"].([]any)
	if len(exs) == 0 {
		return nil, errors.New(`"examples" must hold at least one example of data`)
	}
	// The raw text of each example, compacted, in the order of the file.
	var rawEx struct{ Examples []json.RawMessage }
	if err := json.Unmarshal(raw, &rawEx); err != nil {
		return nil, fmt.Errorf("examples: %w", err)
	}
	for _, ex := range rawEx.Examples {
		var buf bytes.Buffer
		if err := json.Compact(&buf, ex); err != nil {
			return nil, fmt.Errorf("examples: %w", err)
		}
		d.Examples = append(d.Examples, buf.Bytes())
	}

	if defs, ok := root.m["$defs"]; ok {
		do, ok := defs.(*object)
		if !ok {
			return nil, errors.New("$defs must be an object")
		}
		for _, name := range do.keys {
			if !isTypeName(name) {
				return nil, fmt.Errorf("$defs/%s: the name must be an UpperCamelCase type name", name)
			}
			n, err := parseNode(do.m[name], "/$defs/"+name, nodeKeywords, root)
			if err != nil {
				return nil, err
			}
			if n.Kind != "object" {
				return nil, fmt.Errorf("$defs/%s: must be an object type", name)
			}
			d.Defs = append(d.Defs, Def{Name: name, Node: n})
		}
	}
	d.Root, err = parseNode(root, "", rootKeywords, root)
	if err != nil {
		return nil, err
	}
	if d.Root.Kind != "object" || len(d.Root.Properties) == 0 {
		return nil, errors.New(`the root must be {"type":"object"} with properties`)
	}
	d.Description = d.Root.Description
	return d, nil
}

// Where a keyword may appear.
const (
	nodeKeywords = iota // any schema
	rootKeywords        // the root of a file
)

// allowedKeyword reports whether keyword k is in the subset the generators
// understand, at a node of the given kind.
func allowedKeyword(k string, where int) bool {
	switch k {
	case "description", "type", "$ref", "format", "pattern", "enum", "minLength", "maxLength", "minimum",
		"maximum", "items", "minItems", "maxItems", "properties", "required", "additionalProperties",
		"maxProperties":
		return true
	case "$schema", "$id", "title", "examples", "$defs":
		return where == rootKeywords
	}
	return false
}

// parseNode interprets the schema v found at pointer at.
func parseNode(v any, at string, where int, root *object) (*Node, error) {
	o, ok := v.(*object)
	if !ok {
		return nil, fmt.Errorf("%s: a schema must be a JSON object", at)
	}
	for _, k := range o.keys {
		if !allowedKeyword(k, where) {
			return nil, fmt.Errorf("%s: keyword %q is not supported by the generator (internal/schema)", at, k)
		}
	}
	errf := func(format string, args ...any) error {
		return fmt.Errorf("%s: "+format, append([]any{at}, args...)...)
	}
	n := &Node{}
	n.Description, _ = o.m["description"].(string)
	if ref, ok := o.m["$ref"]; ok {
		s, _ := ref.(string)
		name, ok := strings.CutPrefix(s, "#/$defs/")
		defs, _ := root.m["$defs"].(*object)
		if !ok || defs == nil || defs.m[name] == nil {
			return nil, errf("$ref %q must name an entry of this file's $defs", s)
		}
		if len(o.keys) != 1 && !(len(o.keys) == 2 && o.m["description"] != nil) {
			return nil, errf("$ref may only be accompanied by a description")
		}
		n.Kind, n.Ref = "ref", name
		return n, nil
	}
	n.Kind, _ = o.m["type"].(string)
	var err error
	intKw := func(k string) *int {
		if err != nil || o.m[k] == nil {
			return nil
		}
		num, ok := o.m[k].(json.Number)
		i, perr := num.Int64()
		if !ok || perr != nil || i < 0 {
			err = errf("%s must be a non-negative integer", k)
			return nil
		}
		x := int(i)
		return &x
	}
	numKw := func(k string) string {
		if o.m[k] == nil {
			return ""
		}
		num, ok := o.m[k].(json.Number)
		if !ok && err == nil {
			err = errf("%s must be a number", k)
		}
		return string(num)
	}
	only := func(kind string, kws ...string) {
		for _, k := range kws {
			if o.m[k] != nil && err == nil {
				err = errf("%s applies to type %s only", k, kind)
			}
		}
	}
	switch n.Kind {
	case "string":
		n.Format, _ = o.m["format"].(string)
		if n.Format != "" && n.Format != "date-time" && n.Format != "email" {
			return nil, errf("format %q is not supported (date-time, email)", n.Format)
		}
		n.Pattern, _ = o.m["pattern"].(string)
		if e, ok := o.m["enum"]; ok {
			vals, _ := e.([]any)
			for _, v := range vals {
				s, ok := v.(string)
				if !ok {
					return nil, errf("enum values must be strings")
				}
				n.Enum = append(n.Enum, s)
			}
			if len(n.Enum) == 0 {
				return nil, errf("enum must list at least one string")
			}
		}
		n.MinLength, n.MaxLength = intKw("minLength"), intKw("maxLength")
		only("string", "minimum", "maximum", "items", "minItems", "maxItems", "properties", "required",
			"additionalProperties", "maxProperties")
	case "integer", "number":
		n.Minimum, n.Maximum = numKw("minimum"), numKw("maximum")
		only(n.Kind, "format", "pattern", "enum", "minLength", "maxLength", "items", "minItems", "maxItems",
			"properties", "required", "additionalProperties", "maxProperties")
	case "boolean":
		only("boolean", "format", "pattern", "enum", "minLength", "maxLength", "minimum", "maximum", "items",
			"minItems", "maxItems", "properties", "required", "additionalProperties", "maxProperties")
	case "array":
		if o.m["items"] == nil {
			return nil, errf("an array needs items")
		}
		if n.Items, err = parseNode(o.m["items"], at+"/items", nodeKeywords, root); err != nil {
			return nil, err
		}
		if n.Items.Kind == "array" || n.Items.Kind == "object" || n.Items.Kind == "map" {
			return nil, errf("items must be a scalar or a $ref")
		}
		n.MinItems, n.MaxItems = intKw("minItems"), intKw("maxItems")
		only("array", "format", "pattern", "enum", "minLength", "maxLength", "minimum", "maximum",
			"properties", "required", "additionalProperties", "maxProperties")
	case "object":
		if err := parseObject(n, o, at, root); err != nil {
			return nil, err
		}
		if n.Kind == "map" {
			n.MaxProperties = intKw("maxProperties")
		} else {
			only("object with properties", "maxProperties")
		}
		only("object", "format", "pattern", "enum", "minLength", "maxLength", "minimum", "maximum", "items",
			"minItems", "maxItems")
	default:
		return nil, errf(`"type" must be one of string, integer, number, boolean, array, object (a single name)`)
	}
	if err != nil {
		return nil, err
	}
	return n, nil
}

// parseObject fills n from an object schema: either properties (a struct;
// additional properties are allowed and ignored by the generated types) or
// additionalProperties with a schema (a map from string to that schema).
func parseObject(n *Node, o *object, at string, root *object) error {
	props, hasProps := o.m["properties"].(*object)
	add, hasAdd := o.m["additionalProperties"]
	switch {
	case hasProps && hasAdd:
		return fmt.Errorf("%s: additionalProperties is not supported beside properties: data objects stay "+
			"open so that a schema can gain optional fields without breaking older sidecars", at)
	case hasAdd:
		if o.m["required"] != nil {
			return fmt.Errorf("%s: required is not supported on a map", at)
		}
		values, err := parseNode(add, at+"/additionalProperties", nodeKeywords, root)
		if err != nil {
			return err
		}
		if values.Kind != "string" && values.Kind != "integer" && values.Kind != "number" && values.Kind != "boolean" {
			return fmt.Errorf("%s: map values must be scalars", at)
		}
		n.Kind, n.Values = "map", values
		return nil
	case !hasProps:
		return fmt.Errorf("%s: an object needs properties or additionalProperties", at)
	}
	var required []string
	if r, ok := o.m["required"]; ok {
		list, _ := r.([]any)
		for _, v := range list {
			s, ok := v.(string)
			if !ok {
				return fmt.Errorf("%s: required must list property names", at)
			}
			if props.m[s] == nil {
				return fmt.Errorf("%s: required property %q is not declared in properties", at, s)
			}
			required = append(required, s)
		}
	}
	for _, name := range props.keys {
		if !isPropertyName(name) {
			return fmt.Errorf("%s/properties/%s: property names must be lowerCamelCase ASCII", at, name)
		}
		pn, err := parseNode(props.m[name], at+"/properties/"+name, nodeKeywords, root)
		if err != nil {
			return err
		}
		if strings.TrimSpace(pn.Description) == "" {
			return fmt.Errorf("%s/properties/%s: every field needs a description", at, name)
		}
		n.Properties = append(n.Properties, &Property{Name: name, Required: slices.Contains(required, name), Node: pn})
	}
	return nil
}

// isPropertyName reports whether s is lowerCamelCase ASCII: the one form
// that is a valid identifier in Go (after upper-casing), TypeScript and Python.
func isPropertyName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// isTypeName reports whether s is UpperCamelCase ASCII.
func isTypeName(s string) bool {
	return s != "" && 'A' <= s[0] && s[0] <= 'Z' && isPropertyName(strings.ToLower(s[:1])+s[1:])
}

// pointerOrder numbers the JSON pointers of every declared field of d in
// declaration order, depth first (a field before its sub-fields, which come
// before the next field). The root is 0.
func pointerOrder(d *Doc) map[string]int {
	order := map[string]int{"": 0}
	defs := make(map[string]*Node, len(d.Defs))
	for _, def := range d.Defs {
		defs[def.Name] = def.Node
	}
	var walk func(n *Node, at string)
	walk = func(n *Node, at string) {
		if n.Kind == "ref" {
			n = defs[n.Ref]
		}
		for _, p := range n.Properties {
			ptr := at + "/" + escapePointer(p.Name)
			order[ptr] = len(order)
			walk(p.Node, ptr)
		}
	}
	walk(d.Root, "")
	return order
}

// escapePointer escapes one JSON pointer token (RFC 6901).
func escapePointer(tok string) string {
	if !strings.ContainsAny(tok, "~/") {
		return tok
	}
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(tok)
}

// parentPointer returns the parent of a JSON pointer, "" for a top-level one.
func parentPointer(p string) string {
	return p[:max(strings.LastIndexByte(p, '/'), 0)]
}
