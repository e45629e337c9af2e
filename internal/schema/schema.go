// Package schema owns the validation of core platform events' data against
// their JSON Schemas (SPEC §1, §6) and the schema model that the generators
// read. The schemas themselves live in the top-level schemas/ directory and
// are embedded in the binary; they are compiled once, by New.
//
// Data objects are open: a field a schema does not declare is allowed, so
// that a schema can gain optional fields without breaking older sidecars.
// Declared fields are checked for presence (required), type, length, range,
// pattern and format (date-time, email).
//
// go generate in this directory regenerates pkg/events, docs/events.md and
// the Node and Python typings from the schemas (see ./gen).
package schema

//go:generate go run ./gen -root ../..

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
)

// Error is the failure of a core event's data to match its schema. The local
// API answers it with 422 schema_violation and Pointer as the field.
type Error struct {
	// Pointer is the JSON pointer (RFC 6901), relative to data, of the first
	// failing field in the schema's declaration order: "/approvalId",
	// "/error/code"; "" when data as a whole is wrong (not an object).
	Pointer string
	// Message says for humans what is wrong, naming the event type and the
	// field, e.g. `approval.requested: data/approvalId is required`.
	Message string
}

// Error returns the human-readable message.
func (e *Error) Error() string { return e.Message }

// Validator validates data against the compiled core event schemas. It is
// immutable after New and safe for concurrent use.
type Validator struct {
	byType map[string]*compiled
	types  []string // sorted
}

// compiled is the schema of one event type.
type compiled struct {
	typ    string
	schema *jsonschema.Schema
	order  map[string]int // see pointerOrder
}

// New loads and compiles every embedded schema. It fails only when a schema
// is broken, which the tests of this package rule out for the shipped ones.
func New() (*Validator, error) {
	docs, err := Docs()
	if err != nil {
		return nil, fmt.Errorf("load schemas: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{}) // every schema is added below; nothing may be fetched
	v := &Validator{byType: make(map[string]*compiled, len(docs))}
	for _, d := range docs {
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(d.Raw))
		if err != nil {
			return nil, fmt.Errorf("schemas/%s: %w", d.File, err)
		}
		url := idPrefix + d.Type
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("schemas/%s: %w", d.File, err)
		}
		sch, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("schemas/%s: compile: %w", d.File, err)
		}
		v.byType[d.Type] = &compiled{typ: d.Type, schema: sch, order: pointerOrder(d)}
		v.types = append(v.types, d.Type)
	}
	slices.Sort(v.types)
	return v, nil
}

// noLoader refuses to load any URL: the validator never does I/O.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema %s is not embedded", url)
}

// Known reports whether eventType is a core event type with a schema.
func (v *Validator) Known(eventType string) bool {
	_, ok := v.byType[eventType]
	return ok
}

// Types returns the core event types, sorted. The caller owns the slice.
func (v *Validator) Types() []string {
	return slices.Clone(v.types)
}

// Validate checks data, the raw JSON of an event's data, against the schema
// of eventType. It returns nil for a type without a schema (whether such
// types are allowed is the caller's decision) and for valid data; empty data
// counts as {}. Otherwise the error is a *Error naming the first failing
// field.
func (v *Validator) Validate(eventType string, data []byte) error {
	c, ok := v.byType[eventType]
	if !ok {
		return nil
	}
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	// encoding/json.Unmarshal costs half as much as the library's decoder;
	// numbers become float64, exact for the integers of real payloads (the
	// library accepts 2.0 as an integer either way).
	var inst any
	if err := json.Unmarshal(data, &inst); err != nil {
		return &Error{Message: c.typ + ": data is not valid JSON"}
	}
	err := c.schema.Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &Error{Message: fmt.Sprintf("%s: data cannot be validated: %v", c.typ, err)}
	}
	return c.first(ve)
}

// failure is one leaf of a validation error tree.
type failure struct {
	pointer string
	rank    int // pointerOrder of the pointer or of its closest declared ancestor
	message string
}

// first picks, among the leaves of the error tree, the failure at the field
// declared first in the schema (depth first), so that the answer does not
// depend on map order. A missing required field is reported at its own
// pointer, like a field with a wrong value.
func (c *compiled) first(ve *jsonschema.ValidationError) *Error {
	var best *failure
	consider := func(f failure) {
		ptr := f.pointer
		for {
			if r, ok := c.order[ptr]; ok {
				f.rank = r
				break
			}
			ptr = parentPointer(ptr)
		}
		if best == nil || f.before(best) {
			best = &f
		}
	}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, cause := range e.Causes {
				walk(cause)
			}
			return
		}
		at := instancePointer(e.InstanceLocation)
		if req, ok := e.ErrorKind.(*kind.Required); ok {
			for _, name := range req.Missing {
				ptr := at + "/" + escapePointer(name)
				consider(failure{pointer: ptr,
					message: fmt.Sprintf("%s: data%s is required", c.typ, ptr)})
			}
			return
		}
		consider(failure{pointer: at, message: fmt.Sprintf("%s: data%s is invalid: %s", c.typ, at, kindText(e.ErrorKind))})
	}
	walk(ve)
	if best == nil { // a tree without leaves: not produced by the library, but never return nil
		return &Error{Message: fmt.Sprintf("%s: data does not match the schema", c.typ)}
	}
	return &Error{Pointer: best.pointer, Message: truncate(best.message)}
}

// before orders failures: by declaration rank, then by pointer (array
// indexes numerically), then by message, so the choice is deterministic.
func (f *failure) before(g *failure) bool {
	if f.rank != g.rank {
		return f.rank < g.rank
	}
	if c := comparePointers(f.pointer, g.pointer); c != 0 {
		return c < 0
	}
	return f.message < g.message
}

// comparePointers compares JSON pointers token by token; tokens that are
// both array indexes compare as numbers, so /a/2 comes before /a/10.
func comparePointers(a, b string) int {
	at, bt := strings.Split(a, "/"), strings.Split(b, "/")
	for i := range min(len(at), len(bt)) {
		x, y := at[i], bt[i]
		if x == y {
			continue
		}
		if isIndex(x) && isIndex(y) && len(x) != len(y) {
			return cmp.Compare(len(x), len(y)) // no leading zeros: longer is larger
		}
		return strings.Compare(x, y)
	}
	return cmp.Compare(len(at), len(bt))
}

// isIndex reports whether tok is an array index token (RFC 6901: 0 or no leading zero).
func isIndex(tok string) bool {
	if tok == "" || len(tok) > 1 && tok[0] == '0' {
		return false
	}
	for _, c := range []byte(tok) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// instancePointer returns the JSON pointer of an instance location.
func instancePointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		sb.WriteString(escapePointer(t))
	}
	return sb.String()
}

// kindText says what is wrong with a value, for the common keywords in our
// own words and otherwise in the library's English text.
func kindText(k jsonschema.ErrorKind) string {
	plural := func(n int, one, many string) string {
		if n == 1 {
			return "1 " + one
		}
		return fmt.Sprintf("%d %s", n, many)
	}
	switch k := k.(type) {
	case *kind.Type:
		return fmt.Sprintf("must be %s, not %s", article(strings.Join(k.Want, " or ")), article(k.Got))
	case *kind.MinLength:
		return fmt.Sprintf("must be at least %s long, got %d", plural(k.Want, "character", "characters"), k.Got)
	case *kind.MaxLength:
		return fmt.Sprintf("must be at most %s long, got %d", plural(k.Want, "character", "characters"), k.Got)
	case *kind.MinItems:
		return fmt.Sprintf("must hold at least %s, got %d", plural(k.Want, "item", "items"), k.Got)
	case *kind.MaxItems:
		return fmt.Sprintf("must hold at most %s, got %d", plural(k.Want, "item", "items"), k.Got)
	case *kind.MaxProperties:
		return fmt.Sprintf("must hold at most %s, got %d", plural(k.Want, "entry", "entries"), k.Got)
	case *kind.Minimum:
		return fmt.Sprintf("must be at least %s, got %s", k.Want.RatString(), k.Got.RatString())
	case *kind.Maximum:
		return fmt.Sprintf("must be at most %s, got %s", k.Want.RatString(), k.Got.RatString())
	}
	// The library prefixes the location, which is empty here: "at '': ".
	return strings.TrimPrefix((&jsonschema.ValidationError{ErrorKind: k}).Error(), "at '': ")
}

// article prefixes a JSON type name with "a" or "an".
func article(typ string) string {
	switch {
	case typ == "null":
		return "null"
	case strings.HasPrefix(typ, "a") || strings.HasPrefix(typ, "i") || strings.HasPrefix(typ, "o"):
		return "an " + typ
	}
	return "a " + typ
}

// maxMessage bounds a message: texts such as "'…' does not match pattern"
// repeat the published value, which may be long.
const maxMessage = 300

// truncate cuts s to maxMessage runes, marking the cut with "…".
func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	n := 0
	for i := range s {
		if n == maxMessage {
			return s[:i] + "…"
		}
		n++
	}
	return s
}
