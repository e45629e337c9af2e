package schema

import (
	"strings"
	"testing"
	"testing/fstest"
)

// schemaFile returns a valid schema file for type typ whose root holds the
// given properties and extra root members (each a JSON fragment or "").
func schemaFile(typ, properties, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return `{"$schema":"https://json-schema.org/draft/2020-12/schema","$id":"urn:hyvve:events:` + typ +
		`","title":"` + typ + `","description":"d","type":"object","properties":{` + properties +
		`},"examples":[{}]` + extra + `}`
}

func TestLoad_reads_fields_in_declaration_order(t *testing.T) {
	fsys := fstest.MapFS{"a.b.schema.json": {Data: []byte(schemaFile("a.b",
		`"zeta":{"description":"z","type":"string","format":"email"},`+
			`"alpha":{"description":"a","$ref":"#/$defs/Inner"},`+
			`"tags":{"description":"t","type":"array","items":{"type":"integer","minimum":1},"maxItems":3},`+
			`"labels":{"description":"l","type":"object","additionalProperties":{"type":"boolean"}}`,
		`"required":["alpha"],"$defs":{"Inner":{"type":"object","required":["y"],"properties":{"y":{"description":"y","type":"number"},"x":{"description":"x","type":"boolean"}}}}`))}}
	docs, err := Load(fsys)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	d := docs[0]
	var names []string
	for _, p := range d.Root.Properties {
		names = append(names, p.Name+":"+p.Node.Kind)
	}
	if got, want := strings.Join(names, " "), "zeta:string alpha:ref tags:array labels:map"; got != want {
		t.Errorf("got properties %q, want %q", got, want)
	}
	if !d.Root.Properties[1].Required || d.Root.Properties[0].Required {
		t.Errorf("got required flags zeta=%v alpha=%v, want false, true", d.Root.Properties[0].Required, d.Root.Properties[1].Required)
	}
	if got := d.Root.Properties[2].Node.Items.Minimum; got != "1" {
		t.Errorf("got items minimum %q, want 1", got)
	}
	if len(d.Defs) != 1 || d.Defs[0].Name != "Inner" || d.Defs[0].Node.Properties[0].Name != "y" {
		t.Errorf("got defs %+v, want Inner with y first", d.Defs)
	}
	order := pointerOrder(d)
	for _, pair := range [][2]string{{"", "/zeta"}, {"/zeta", "/alpha"}, {"/alpha", "/alpha/y"}, {"/alpha/y", "/alpha/x"}, {"/alpha/x", "/tags"}, {"/tags", "/labels"}} {
		if order[pair[0]] >= order[pair[1]] {
			t.Errorf("got order %s=%d, %s=%d, want the first before the second", pair[0], order[pair[0]], pair[1], order[pair[1]])
		}
	}
}

func TestLoad_rejects_what_the_generators_cannot_express(t *testing.T) {
	const str = `{"description":"s","type":"string"}`
	tests := []struct {
		name    string
		file    string
		content string
		wantErr string
	}{
		{"field without description", "a.b.schema.json", schemaFile("a.b", `"x":{"type":"string"}`, ""), "every field needs a description"},
		{"unsupported keyword", "a.b.schema.json", schemaFile("a.b", `"x":{"description":"d","oneOf":[]}`, ""), `keyword "oneOf" is not supported`},
		{"unsupported root keyword", "a.b.schema.json", schemaFile("a.b", `"x":`+str, `"allOf":[]`), `keyword "allOf" is not supported`},
		{"required field not declared", "a.b.schema.json", schemaFile("a.b", `"x":`+str, `"required":["y"]`), `required property "y" is not declared`},
		{"title is not the type", "a.b.schema.json", strings.Replace(schemaFile("a.b", `"x":`+str, ""), `"title":"a.b"`, `"title":"A B"`, 1), "title must be"},
		{"$id is not the type", "a.b.schema.json", strings.Replace(schemaFile("a.b", `"x":`+str, ""), `events:a.b`, `events:a.c`, 1), "$id must be"},
		{"other draft", "a.b.schema.json", strings.Replace(schemaFile("a.b", `"x":`+str, ""), "2020-12", "2019-09", 1), "$schema must be"},
		{"no example", "a.b.schema.json", strings.Replace(schemaFile("a.b", `"x":`+str, ""), `"examples":[{}]`, `"examples":[]`, 1), "at least one example"},
		{"closed object", "a.b.schema.json", schemaFile("a.b", `"x":`+str, `"additionalProperties":false`), "not supported beside properties"},
		{"ref outside $defs", "a.b.schema.json", schemaFile("a.b", `"x":{"description":"d","$ref":"#/$defs/Nope"}`, ""), "must name an entry"},
		{"union type", "a.b.schema.json", schemaFile("a.b", `"x":{"description":"d","type":["string","null"]}`, ""), `"type" must be one of`},
		{"unsupported format", "a.b.schema.json", schemaFile("a.b", `"x":{"description":"d","type":"string","format":"uri"}`, ""), `format "uri"`},
		{"keyword of another type", "a.b.schema.json", schemaFile("a.b", `"x":{"description":"d","type":"string","minimum":1}`, ""), "minimum applies to type string only"},
		{"snake_case field", "a.b.schema.json", schemaFile("a.b", `"user_id":`+str, ""), "lowerCamelCase"},
		{"duplicate key", "a.b.schema.json", schemaFile("a.b", `"x":`+str+`,"x":`+str, ""), `key "x" appears twice`},
		{"not JSON", "a.b.schema.json", `{`, "invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(fstest.MapFS{tt.file: {Data: []byte(tt.content)}})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "schemas/"+tt.file) {
				t.Fatalf("got error %v, want one naming schemas/%s and containing %q", err, tt.file, tt.wantErr)
			}
		})
	}
}

func TestLoad_rejects_a_def_name_used_twice(t *testing.T) {
	defs := `"$defs":{"Shared":{"type":"object","properties":{"x":{"description":"x","type":"string"}}}}`
	prop := `"x":{"description":"d","$ref":"#/$defs/Shared"}`
	_, err := Load(fstest.MapFS{
		"a.b.schema.json": {Data: []byte(schemaFile("a.b", prop, defs))},
		"a.c.schema.json": {Data: []byte(schemaFile("a.c", prop, defs))},
	})
	if err == nil || !strings.Contains(err.Error(), "$defs/Shared is also declared in a.b.schema.json") {
		t.Fatalf("got error %v, want one about the duplicate def name", err)
	}
}

func TestLoad_needs_at_least_one_schema(t *testing.T) {
	if _, err := Load(fstest.MapFS{}); err == nil {
		t.Fatal("got nil error for an empty directory, want one")
	}
}
