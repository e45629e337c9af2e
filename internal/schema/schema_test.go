package schema

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// newValidator returns a Validator over the shipped schemas or stops the test.
func newValidator(tb testing.TB) *Validator {
	tb.Helper()
	v, err := New()
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	return v
}

// mustDocs returns the shipped schemas or stops the test.
func mustDocs(tb testing.TB) []*Doc {
	tb.Helper()
	docs, err := Docs()
	if err != nil {
		tb.Fatalf("Docs: %v", err)
	}
	return docs
}

// exampleMap returns the first example of d as a generic JSON object.
func exampleMap(t *testing.T, d *Doc) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(d.Examples[0], &m); err != nil {
		t.Fatalf("%s example: %v", d.Type, err)
	}
	return m
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// schemaError returns err as a *Error or fails the test.
func schemaError(t *testing.T, err error) *Error {
	t.Helper()
	var se *Error
	if !errors.As(err, &se) {
		t.Fatalf("got error %v (%T), want a *schema.Error", err, err)
	}
	return se
}

func TestValidator_knows_exactly_the_core_events_of_the_spec(t *testing.T) {
	v := newValidator(t)
	want := []string{"agent.completed", "agent.error", "agent.started", "approval.expired", "approval.granted",
		"approval.rejected", "approval.requested", "user.invited", "user.joined"}
	if got := v.Types(); !slices.Equal(got, want) {
		t.Fatalf("Types() = %v, want %v", got, want)
	}
	for _, typ := range want {
		if !v.Known(typ) {
			t.Errorf("Known(%q) = false, want true", typ)
		}
	}
	for _, typ := range []string{"crm.deal.won", "approval", "approval.requested.v2", ""} {
		if v.Known(typ) {
			t.Errorf("Known(%q) = true, want false", typ)
		}
		if err := v.Validate(typ, []byte(`{"anything":1}`)); err != nil {
			t.Errorf("Validate(%q) = %v, want nil for a type without a schema", typ, err)
		}
	}
	got := v.Types()
	got[0] = "changed"
	if v.Types()[0] != want[0] {
		t.Errorf("Types() shares its slice with the Validator")
	}
}

func TestValidator_accepts_every_schema_example(t *testing.T) {
	v := newValidator(t)
	for _, d := range mustDocs(t) {
		for i, ex := range d.Examples {
			if err := v.Validate(d.Type, ex); err != nil {
				t.Errorf("%s example %d: got %v, want valid", d.Type, i, err)
			}
		}
	}
}

// TestValidator_missing_required_field_is_named removes, one at a time, each
// required field (also of nested objects) from each event's example.
func TestValidator_missing_required_field_is_named(t *testing.T) {
	v := newValidator(t)
	for _, d := range mustDocs(t) {
		defs := map[string]*Node{}
		for _, def := range d.Defs {
			defs[def.Name] = def.Node
		}
		for _, p := range d.Root.Properties {
			if p.Required {
				t.Run(d.Type+"/"+p.Name, func(t *testing.T) {
					m := exampleMap(t, d)
					delete(m, p.Name)
					se := schemaError(t, v.Validate(d.Type, mustJSON(t, m)))
					if se.Pointer != "/"+p.Name || !strings.Contains(se.Message, "data/"+p.Name+" is required") {
						t.Errorf("got %+v, want pointer /%s and a message saying it is required", se, p.Name)
					}
				})
			}
			if p.Node.Kind != "ref" {
				continue
			}
			for _, sub := range defs[p.Node.Ref].Properties {
				if !sub.Required {
					continue
				}
				t.Run(d.Type+"/"+p.Name+"/"+sub.Name, func(t *testing.T) {
					m := exampleMap(t, d)
					delete(m[p.Name].(map[string]any), sub.Name)
					se := schemaError(t, v.Validate(d.Type, mustJSON(t, m)))
					if want := "/" + p.Name + "/" + sub.Name; se.Pointer != want {
						t.Errorf("got pointer %q, want %q (%s)", se.Pointer, want, se.Message)
					}
				})
			}
		}
	}
}

// TestValidator_wrong_type_is_named gives each field of each example a value
// of another JSON type.
func TestValidator_wrong_type_is_named(t *testing.T) {
	v := newValidator(t)
	wrong := map[string]any{"string": 12345, "integer": "12", "number": "1.5", "boolean": "true",
		"array": "x", "object": "x", "map": []any{"x"}, "ref": "x"}
	for _, d := range mustDocs(t) {
		for _, p := range d.Root.Properties {
			t.Run(d.Type+"/"+p.Name, func(t *testing.T) {
				m := exampleMap(t, d)
				m[p.Name] = wrong[p.Node.Kind]
				se := schemaError(t, v.Validate(d.Type, mustJSON(t, m)))
				if se.Pointer != "/"+p.Name || !strings.Contains(se.Message, "must be") {
					t.Errorf("got %+v, want pointer /%s and a message saying what it must be", se, p.Name)
				}
			})
		}
	}
}

func TestValidator_rules(t *testing.T) {
	v := newValidator(t)
	const req = `"approvalId":"a-1","resourceType":"invoice","resourceId":"i-1","requestedBy":"u-1"`
	const fail = `"agentId":"ag","runId":"r","retryable":false`
	tests := []struct {
		name        string
		typ, data   string
		wantPointer string // "-" means valid
		wantInMsg   string
	}{
		{"minimal payload", "approval.requested", `{` + req + `}`, "-", ""},
		{"undeclared fields are allowed", "approval.requested", `{` + req + `,"futureField":{"x":[1]}}`, "-", ""},
		{"empty data is an empty object", "approval.granted", ``, "/approvalId", "approval.granted: data/approvalId is required"},
		{"empty object", "approval.granted", `{}`, "/approvalId", "is required"},
		{"data is an array", "approval.granted", `[]`, "", "must be an object, not an array"},
		{"data is not JSON", "approval.granted", `{"a":`, "", "not valid JSON"},
		{"null for a required string", "approval.granted", `{"approvalId":null,"decidedBy":"u"}`, "/approvalId", "must be a string, not null"},
		{"empty string", "approval.granted", `{"approvalId":"","decidedBy":"u"}`, "/approvalId", "at least 1 character long, got 0"},
		{"too long", "approval.requested", `{` + req + `,"title":"` + strings.Repeat("é", 201) + `"}`, "/title", "at most 200 characters long, got 201"},
		{"email format", "user.joined", `{"userId":"u","email":"dana.example.com"}`, "/email", "not valid email"},
		{"date-time format", "approval.expired", `{"approvalId":"a","expiredAt":"2026-11-26 10:00"}`, "/expiredAt", "not valid date-time"},
		{"date-time with offset", "approval.expired", `{"approvalId":"a","expiredAt":"2026-11-26T10:00:00+02:00"}`, "-", ""},
		{"integer below minimum", "agent.completed", `{"agentId":"a","runId":"r","durationMs":-1}`, "/durationMs", "at least 0, got -1"},
		{"integer with a fraction", "agent.completed", `{"agentId":"a","runId":"r","durationMs":1.5}`, "/durationMs", "must be an integer, not a number"},
		{"integer written as 2.0", "agent.completed", `{"agentId":"a","runId":"r","durationMs":2.0}`, "-", ""},
		{"big integer", "agent.completed", `{"agentId":"a","runId":"r","durationMs":123456789012345678901234567890}`, "-", ""},
		{"nested field", "agent.error", `{` + fail + `,"error":{"code":"Timeout","message":"m"}}`, "/error/code", "does not match pattern"},
		{"nested object of the wrong type", "agent.error", `{` + fail + `,"error":"timeout"}`, "/error", "must be an object, not a string"},
		{"array element", "approval.requested", `{` + req + `,"approvers":["u-1",7]}`, "/approvers/1", "must be a string, not a number"},
		{"array too long", "approval.requested", `{` + req + `,"approvers":[` + strings.Repeat(`"u",`, 100) + `"u"]}`, "/approvers", "at most 100 items, got 101"},
		{"map value", "approval.requested", `{` + req + `,"metadata":{"a":"x","b":true}}`, "/metadata/b", "must be a string, not a boolean"},
		{"map key that needs escaping", "approval.requested", `{` + req + `,"metadata":{"a/b~c":1}}`, "/metadata/a~1b~0c", "must be a string"},
		{
			"first failing field in declaration order, not document order",
			"approval.requested", `{"metadata":{"k":1},"requestedBy":7,"approvalId":"a","resourceId":"r"}`,
			"/resourceType", "is required",
		},
		{
			"a field before its sub-fields, sub-fields before the next field",
			"agent.error", `{"retryable":"no","error":{"code":"X"},"runId":"r","agentId":"a"}`,
			"/error/code", "does not match pattern",
		},
		{
			"array indexes compare as numbers",
			"approval.requested", `{` + req + `,"approvers":["u","u","u","u","u","u","u","u","u","u",1,"u",2]}`,
			"/approvers/10", "must be a string",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := v.Validate(tt.typ, []byte(tt.data))
			if tt.wantPointer == "-" {
				if err != nil {
					t.Fatalf("got %v, want valid", err)
				}
				return
			}
			se := schemaError(t, err)
			if se.Pointer != tt.wantPointer {
				t.Errorf("got pointer %q, want %q (message %q)", se.Pointer, tt.wantPointer, se.Message)
			}
			if !strings.Contains(se.Message, tt.wantInMsg) || !strings.HasPrefix(se.Message, tt.typ+": ") {
				t.Errorf("got message %q, want it to start with %q and contain %q", se.Message, tt.typ+": ", tt.wantInMsg)
			}
			if se.Error() != se.Message {
				t.Errorf("Error() = %q, want the message", se.Error())
			}
		})
	}
}

func TestValidator_message_is_bounded(t *testing.T) {
	v := newValidator(t)
	long := strings.Repeat("A", 10000)
	err := v.Validate("agent.error", []byte(`{"agentId":"a","runId":"r","retryable":true,"error":{"code":"`+long+`","message":"m"}}`))
	se := schemaError(t, err)
	if n := len([]rune(se.Message)); n > maxMessage+1 {
		t.Errorf("got a message of %d characters, want at most %d", n, maxMessage+1)
	}
}

func TestValidator_answer_does_not_depend_on_map_order(t *testing.T) {
	v := newValidator(t)
	data := []byte(`{"approvalId":1,"resourceType":2,"resourceId":3,"requestedBy":4,"title":5,"reason":6}`)
	for range 50 {
		se := schemaError(t, v.Validate("approval.requested", data))
		if se.Pointer != "/approvalId" {
			t.Fatalf("got pointer %q, want /approvalId every time", se.Pointer)
		}
	}
}

func TestValidator_is_safe_for_concurrent_use(t *testing.T) {
	v := newValidator(t)
	docs := mustDocs(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for j := range 50 {
				d := docs[(i+j)%len(docs)]
				if err := v.Validate(d.Type, d.Examples[0]); err != nil {
					t.Errorf("%s: %v", d.Type, err)
					return
				}
				if err := v.Validate(d.Type, []byte(`{}`)); err == nil {
					t.Errorf("%s: {} accepted", d.Type)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestComparePointers(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"/a/2", "/a/10", -1},
		{"/a/10", "/a/9", 1},
		{"/a/01", "/a/1", -1}, // not indexes: compared as strings
		{"/a", "/a/0", -1},
		{"/a/b", "/a/b", 0},
		{"/b", "/a/z", 1},
	}
	for _, tt := range tests {
		if got := comparePointers(tt.a, tt.b); got != tt.want {
			t.Errorf("comparePointers(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

// BenchmarkValidate measures the validation that a publish of a core event
// adds: a minimal payload and the full example of approval.requested.
func BenchmarkValidate(b *testing.B) {
	v := newValidator(b)
	var full []byte
	for _, d := range mustDocs(b) {
		if d.Type == "approval.requested" {
			full = d.Examples[0]
		}
	}
	for _, bc := range []struct {
		name string
		data []byte
	}{
		{"minimal", []byte(`{"approvalId":"apr-7f3c","resourceType":"invoice","resourceId":"inv-2026-0042","requestedBy":"u-42"}`)},
		{"full", full},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bc.data)))
			for b.Loop() {
				if err := v.Validate("approval.requested", bc.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("unknown-type", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := v.Validate("crm.deal.won", full); err != nil {
				b.Fatal(err)
			}
		}
	})
}
