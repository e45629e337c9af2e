package events_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/pkg/events"
	"github.com/hyvve/sidecar/schemas"
)

// schemaExamples returns the examples of every schema file by event type.
func schemaExamples(t *testing.T) map[string][]json.RawMessage {
	t.Helper()
	names, err := fs.Glob(schemas.FS, "*.schema.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no schemas: %v", err)
	}
	out := make(map[string][]json.RawMessage)
	for _, name := range names {
		raw, err := fs.ReadFile(schemas.FS, name)
		if err != nil {
			t.Fatal(err)
		}
		var s struct{ Examples []json.RawMessage }
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out[strings.TrimSuffix(name, ".schema.json")] = s.Examples
	}
	return out
}

func TestTypes_are_the_schema_files(t *testing.T) {
	var want []string
	for typ := range schemaExamples(t) {
		want = append(want, typ)
	}
	slices.Sort(want)
	if got := events.Types(); !slices.Equal(got, want) {
		t.Errorf("Types() = %v, want %v", got, want)
	}
	if events.NewData("crm.deal.won") != nil {
		t.Error("NewData of a type without a schema is not nil")
	}
}

// TestData_types_round_trip_every_example decodes each schema example into
// its Go type, refusing fields the type does not declare, and encodes it
// again: the JSON must be the same, so the types miss nothing the schemas say.
func TestData_types_round_trip_every_example(t *testing.T) {
	for typ, examples := range schemaExamples(t) {
		for i, ex := range examples {
			v := events.NewData(typ)
			if v == nil {
				t.Fatalf("NewData(%q) = nil, want a data type", typ)
			}
			dec := json.NewDecoder(bytes.NewReader(ex))
			dec.DisallowUnknownFields()
			if err := dec.Decode(v); err != nil {
				t.Errorf("%s example %d: decode into %T: %v", typ, i, v, err)
				continue
			}
			back, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%s example %d: %v", typ, i, err)
			}
			var want, got any
			if err := json.Unmarshal(ex, &want); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(back, &got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(normalizeTimes(got), normalizeTimes(want)) {
				t.Errorf("%s example %d: %T encodes as\n%s\nwant\n%s", typ, i, v, back, ex)
			}
		}
	}
}

// normalizeTimes replaces every RFC 3339 string by its instant in UTC with
// nanoseconds, since time.Time re-encodes "10:00:00.250Z" as "10:00:00.25Z".
func normalizeTimes(v any) any {
	switch v := v.(type) {
	case string:
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return "instant " + t.UTC().Format(time.RFC3339Nano)
		}
	case map[string]any:
		for k, x := range v {
			v[k] = normalizeTimes(x)
		}
	case []any:
		for i, x := range v {
			v[i] = normalizeTimes(x)
		}
	}
	return v
}

func TestOptional_fields_are_omitted_when_unset(t *testing.T) {
	b, err := json.Marshal(events.AgentError{AgentID: "a", RunID: "r", Error: events.AgentFailure{Code: "timeout", Message: "m"}})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"agentId":"a","runId":"r","error":{"code":"timeout","message":"m"},"retryable":false}`; got != want {
		t.Errorf("got %s, want %s (required fields always, optional ones only when set)", got, want)
	}
}
