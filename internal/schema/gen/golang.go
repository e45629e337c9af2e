package main

import (
	"fmt"
	"go/format"
	"strings"

	"github.com/hyvve/sidecar/internal/schema"
)

// genGo returns pkg/events/events.go: a constant per event type, a struct
// per payload and per $defs type, Types and NewData.
func genGo(docs []*schema.Doc) ([]byte, error) {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("// %s\n\n", header)
	p(`// Package events holds the Go types of the core platform events' data
// (SPEC §6), generated from the JSON Schemas in schemas/, which are the single
// source of truth. Other modules import it to build and read payloads:
//
//	data, _ := json.Marshal(events.ApprovalGranted{ApprovalID: "apr-7f3c", DecidedBy: "u-7"})
//	// publish {"type": events.TypeApprovalGranted, "data": data}
//
// Required fields are plain values; optional ones are omitted when empty
// (pointers where the zero value is meaningful). Decoding ignores fields a
// type does not know, so a newer schema's optional fields do not break older
// code. The types hold no state; everything here is safe for concurrent use.
package events

`)
	if usesTime(docs) {
		p("import \"time\"\n\n")
	}
	p("// Event types of the core platform events.\nconst (\n")
	for _, d := range docs {
		p("\t// %s is the type of %s events; data: %s.\n", "Type"+typeName(d.Type), d.Type, typeName(d.Type))
		p("\t%s = %q\n", "Type"+typeName(d.Type), d.Type)
	}
	p(")\n\n")

	p("// Types returns every core event type, sorted. The caller owns the slice.\nfunc Types() []string {\n\treturn []string{\n")
	for _, d := range docs {
		p("\t\t%s,\n", "Type"+typeName(d.Type))
	}
	p("\t}\n}\n\n")

	p(`// NewData returns a pointer to a new zero value of the data type of
// eventType (for json.Unmarshal), or nil when eventType is not a core event.
func NewData(eventType string) any {
	switch eventType {
`)
	for _, d := range docs {
		p("\tcase %s:\n\t\treturn &%s{}\n", "Type"+typeName(d.Type), typeName(d.Type))
	}
	p("\t}\n\treturn nil\n}\n")

	for _, d := range docs {
		p("\n// %s is the data of %s %s event.\n//\n", typeName(d.Type), indefinite(d.Type), d.Type)
		comment(&b, "", sentence(d.Description))
		writeStruct(&b, typeName(d.Type), d.Root)
	}
	for _, nd := range defsOf(docs) {
		p("\n// %s is declared in schemas/%s.\n//\n", nd.Name, nd.Doc.File)
		comment(&b, "", sentence(nd.Node.Description))
		writeStruct(&b, nd.Name, nd.Node)
	}
	src, err := format.Source([]byte(b.String()))
	if err != nil {
		return nil, fmt.Errorf("format %s: %w", goPath, err)
	}
	return src, nil
}

// writeStruct writes the struct type of an object node.
func writeStruct(b *strings.Builder, name string, n *schema.Node) {
	fmt.Fprintf(b, "type %s struct {\n", name)
	for i, p := range n.Properties {
		if i > 0 {
			b.WriteString("\n")
		}
		comment(b, "\t", sentence(p.Node.Description)+" "+fieldNote(p))
		typ, omit := goType(p.Node, p.Required)
		tag := p.Name
		if omit {
			tag += ",omitempty"
		}
		fmt.Fprintf(b, "\t%s %s `json:%q`\n", goFieldName(p.Name), typ, tag)
	}
	b.WriteString("}\n")
}

// comment writes text as a // comment wrapped at 100 columns.
func comment(b *strings.Builder, indent, text string) {
	for _, l := range wrap(text, 96-len(indent)*4) {
		fmt.Fprintf(b, "%s// %s\n", indent, l)
	}
}

// goType returns the Go type of a node and whether the field is omitempty.
// Optional fields whose zero value is a valid value are pointers.
func goType(n *schema.Node, required bool) (typ string, omitempty bool) {
	switch n.Kind {
	case "string":
		if n.Format == "date-time" {
			typ = "time.Time"
			break
		}
		return "string", !required // optional strings have minLength ≥ 1 or are meaningless empty
	case "integer":
		typ = "int64"
	case "number":
		typ = "float64"
	case "boolean":
		typ = "bool"
	case "array":
		t, _ := goType(n.Items, true)
		return "[]" + t, !required
	case "map":
		t, _ := goType(n.Values, true)
		return "map[string]" + t, !required
	case "ref":
		typ = n.Ref
	}
	if required {
		return typ, false
	}
	return "*" + typ, true
}

// usesTime reports whether any field is a date-time.
func usesTime(docs []*schema.Doc) bool {
	var has func(n *schema.Node) bool
	has = func(n *schema.Node) bool {
		switch {
		case n == nil:
			return false
		case n.Format == "date-time":
			return true
		}
		for _, p := range n.Properties {
			if has(p.Node) {
				return true
			}
		}
		return has(n.Items) || has(n.Values)
	}
	for _, d := range docs {
		if has(d.Root) {
			return true
		}
		for _, def := range d.Defs {
			if has(def.Node) {
				return true
			}
		}
	}
	return false
}
