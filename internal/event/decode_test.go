package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// publish runs the publish path of the local API: Decode, Fill, Validate.
func publish(body string, d Defaults) (*Event, error) {
	e, err := Decode([]byte(body))
	if err != nil {
		return nil, err
	}
	e.Fill(d)
	if err := e.Validate(); err != nil {
		return nil, err
	}
	return e, nil
}

// withType returns a body with a valid type plus the given members.
func withType(members string) string {
	if members == "" {
		return `{"type":"approval.requested"}`
	}
	return `{"type":"approval.requested",` + members + `}`
}

func TestDecode_rules(t *testing.T) {
	acme := Defaults{Tenant: "acme"}
	long := func(n int) string { return strings.Repeat("x", n) }
	nested := func(depth int) string {
		return withType(`"data":{"a":` + strings.Repeat("[", depth-2) + strings.Repeat("]", depth-2) + `}`)
	}
	tests := []struct {
		name      string
		body      string
		d         Defaults
		wantCode  string // "" means accepted
		wantField string
	}{
		// The body must be one JSON object in UTF-8.
		{"empty body", ``, acme, CodeInvalidJSON, ""},
		{"whitespace only", " \n\t", acme, CodeInvalidJSON, ""},
		{"array", `[]`, acme, CodeInvalidJSON, ""},
		{"string", `"approval.requested"`, acme, CodeInvalidJSON, ""},
		{"null", `null`, acme, CodeInvalidJSON, ""},
		{"two objects", withType("") + `{}`, acme, CodeInvalidJSON, ""},
		{"garbage after object", withType("") + `x`, acme, CodeInvalidJSON, ""},
		{"whitespace around object", " \r\n\t" + withType("") + " \n", acme, "", ""},
		{"unclosed object", `{"type":"approval.requested"`, acme, CodeInvalidJSON, ""},
		{"trailing comma", `{"type":"approval.requested",}`, acme, CodeInvalidJSON, ""},
		{"missing colon", `{"type" "approval.requested"}`, acme, CodeInvalidJSON, ""},
		{"unquoted key", `{type:"approval.requested"}`, acme, CodeInvalidJSON, ""},
		{"single quotes", `{'type':'approval.requested'}`, acme, CodeInvalidJSON, ""},
		{"byte order mark", "\ufeff" + withType(""), acme, CodeInvalidJSON, ""},
		{"invalid UTF-8", withType(`"userId":"u` + "\xff" + `"`), acme, CodeInvalidJSON, ""},
		{"raw control character in string", withType(`"userId":"a` + "\t" + `b"`), acme, CodeInvalidJSON, "userId"},
		{"invalid escape", withType(`"userId":"a\qb"`), acme, CodeInvalidJSON, "userId"},
		{"bell escape", withType(`"userId":"a\ab"`), acme, CodeInvalidJSON, "userId"},
		{"single quote escape", withType(`"userId":"a\'b"`), acme, CodeInvalidJSON, "userId"},
		{"hex escape", withType(`"userId":"a\x41"`), acme, CodeInvalidJSON, "userId"},
		{"upper-case U escape", withType(`"userId":"a\U0041"`), acme, CodeInvalidJSON, "userId"},
		{"backslash at end of input", `{"userId":"a\`, acme, CodeInvalidJSON, "userId"},
		{"short unicode escape", withType(`"userId":"\u12"`), acme, CodeInvalidJSON, "userId"},
		{"non-hex unicode escape", withType(`"userId":"\u12g4"`), acme, CodeInvalidJSON, "userId"},
		{"unterminated string", `{"type":"approval.requested`, acme, CodeInvalidJSON, "type"},
		{"invalid JSON inside data", withType(`"data":{"a":[1,2,]}`), acme, CodeInvalidJSON, "data"},
		{"leading zero inside data", withType(`"data":{"a":01}`), acme, CodeInvalidJSON, "data"},
		{"bare minus inside data", withType(`"data":{"a":-}`), acme, CodeInvalidJSON, "data"},
		{"bad literal inside data", withType(`"data":{"a":nul}`), acme, CodeInvalidJSON, "data"},
		{"number forms inside data", withType(`"data":{"a":[0,-0,1.5,-2e10,3E+2,4.0e-3,true,false,null,"s",{}]}`), acme, "", ""},
		{"nesting at the encoding/json limit", nested(10000), acme, "", ""},
		{"nesting beyond the encoding/json limit", nested(10001), acme, CodeInvalidJSON, "data"},
		{"syntax error wins over unknown field", `{"tenantID":"acme",`, acme, CodeInvalidJSON, ""},
		{"syntax error wins over bad type", `{"type":1,"data":[}`, acme, CodeInvalidJSON, "data"},

		// Keys.
		{"unknown field", withType(`"tenantID":"acme"`), acme, CodeUnknownField, "tenantID"},
		{"unknown field with escapes", withType(`"\u0074ypo":1`), acme, CodeUnknownField, "typo"},
		{"unknown empty field name", withType(`"":1`), acme, CodeUnknownField, `""`},
		{"unknown field traceparent", withType(`"traceparent":"00-x"`), acme, CodeUnknownField, "traceparent"},
		{"known field with escapes", `{"\u0074ype":"approval.requested"}`, acme, "", ""},
		{"reserved replay", withType(`"replay":true`), acme, CodeReservedField, "replay"},
		{"reserved replayOf", withType(`"replayOf":"1-0"`), acme, CodeReservedField, "replayOf"},
		{"reserved replayId", withType(`"replayId":"r"`), acme, CodeReservedField, "replayId"},
		{"reserved targetGroup", withType(`"targetGroup":"billing"`), acme, CodeReservedField, "targetGroup"},
		{"duplicate field", withType(`"type":"approval.granted"`), acme, CodeInvalidField, "type"},
		{"duplicate field after null", `{"tenantId":null,"type":"approval.requested","tenantId":"acme"}`, acme, CodeInvalidField, "tenantId"},
		{"duplicate data", withType(`"data":{},"data":{}`), acme, CodeInvalidField, "data"},

		// Types of values.
		{"type is a number", `{"type":1}`, acme, CodeInvalidField, "type"},
		{"type is a boolean", `{"type":true}`, acme, CodeInvalidField, "type"},
		{"type is an array", `{"type":["approval.requested"]}`, acme, CodeInvalidField, "type"},
		{"tenantId is an object", withType(`"tenantId":{}`), acme, CodeInvalidField, "tenantId"},
		{"id is a number", withType(`"id":42`), acme, CodeInvalidField, "id"},
		{"null string field is absent", withType(`"tenantId":null,"userId":null`), acme, "", ""},
		{"empty string field is absent", withType(`"tenantId":""`), acme, "", ""},
		{"data is a string", withType(`"data":"{}"`), acme, CodeInvalidField, "data"},
		{"data is an array", withType(`"data":[]`), acme, CodeInvalidField, "data"},
		{"data is a number", withType(`"data":1`), acme, CodeInvalidField, "data"},
		{"data is null", withType(`"data":null`), acme, "", ""},

		// type.
		{"type missing", `{}`, acme, CodeMissingField, "type"},
		{"type empty", `{"type":""}`, acme, CodeMissingField, "type"},
		{"type one segment", `{"type":"approval"}`, acme, CodeInvalidField, "type"},
		{"type five segments", `{"type":"a.b.c.d.e"}`, acme, "", ""},
		{"type six segments", `{"type":"a.b.c.d.e.f"}`, acme, CodeInvalidField, "type"},
		{"type upper case", `{"type":"Approval.requested"}`, acme, CodeInvalidField, "type"},
		{"type empty segment", `{"type":"approval..requested"}`, acme, CodeInvalidField, "type"},
		{"type leading dot", `{"type":".approval.requested"}`, acme, CodeInvalidField, "type"},
		{"type trailing dot", `{"type":"approval.requested."}`, acme, CodeInvalidField, "type"},
		{"type segment starts with digit", `{"type":"approval.1st"}`, acme, CodeInvalidField, "type"},
		{"type segment starts with dash", `{"type":"approval.-x"}`, acme, CodeInvalidField, "type"},
		{"type with digits, dash, underscore", `{"type":"crm9.deal_stage.moved-on"}`, acme, "", ""},
		{"type with space", `{"type":"approval.requested "}`, acme, CodeInvalidField, "type"},
		{"type wildcard", `{"type":"approval.*"}`, acme, CodeInvalidField, "type"},
		{"type 128 chars", `{"type":"a.` + long(126) + `"}`, acme, "", ""},
		{"type 129 chars", `{"type":"a.` + long(127) + `"}`, acme, CodeInvalidField, "type"},

		// tenantId.
		{"tenantId nowhere", withType(""), Defaults{}, CodeMissingField, "tenantId"},
		{"tenantId from header", withType(""), Defaults{HeaderTenantID: "acme"}, "", ""},
		{"tenantId with space", withType(`"tenantId":"ac me"`), acme, CodeInvalidField, "tenantId"},
		{"tenantId leading dash", withType(`"tenantId":"-acme"`), acme, CodeInvalidField, "tenantId"},
		{"tenantId leading underscore", withType(`"tenantId":"_acme"`), acme, CodeInvalidField, "tenantId"},
		{"tenantId with brace", withType(`"tenantId":"acme}x"`), acme, CodeInvalidField, "tenantId"},
		{"tenantId with colon", withType(`"tenantId":"acme:1"`), acme, CodeInvalidField, "tenantId"},
		{"tenantId with newline", withType(`"tenantId":"acme\n"`), acme, CodeInvalidField, "tenantId"},
		{"tenantId non-ASCII", withType(`"tenantId":"acmé"`), acme, CodeInvalidField, "tenantId"},
		{"tenantId 64 chars", withType(`"tenantId":"A` + long(63) + `"`), acme, "", ""},
		{"tenantId 65 chars", withType(`"tenantId":"A` + long(64) + `"`), acme, CodeInvalidField, "tenantId"},
		{"tenantId digits dash underscore", withType(`"tenantId":"9a_b-C"`), acme, "", ""},
		{"bad header tenantId", withType(""), Defaults{HeaderTenantID: "ac/me"}, CodeInvalidField, "tenantId"},

		// id.
		{"id 128 chars", withType(`"id":"` + long(128) + `"`), acme, "", ""},
		{"id 129 chars", withType(`"id":"` + long(129) + `"`), acme, CodeInvalidField, "id"},
		{"id with space", withType(`"id":"a b"`), acme, CodeInvalidField, "id"},
		{"id with NUL", withType(`"id":"a\u0000"`), acme, CodeInvalidField, "id"},
		{"id non-ASCII", withType(`"id":"é"`), acme, CodeInvalidField, "id"},

		// timestamp.
		{"timestamp with millis", withType(`"timestamp":"2026-11-26T10:00:00.123Z"`), acme, "", ""},
		{"timestamp with offset", withType(`"timestamp":"2026-11-26T10:00:00+02:00"`), acme, "", ""},
		{"timestamp with nanos", withType(`"timestamp":"2026-11-26T10:00:00.123456789Z"`), acme, "", ""},
		{"timestamp date only", withType(`"timestamp":"2026-11-26"`), acme, CodeInvalidField, "timestamp"},
		{"timestamp no zone", withType(`"timestamp":"2026-11-26T10:00:00"`), acme, CodeInvalidField, "timestamp"},
		{"timestamp words", withType(`"timestamp":"yesterday"`), acme, CodeInvalidField, "timestamp"},

		// correlationId, source, userId, version.
		{"correlationId 128 chars", withType(`"correlationId":"` + long(128) + `"`), acme, "", ""},
		{"correlationId 129 chars", withType(`"correlationId":"` + long(129) + `"`), acme, CodeInvalidField, "correlationId"},
		{"correlationId with space", withType(`"correlationId":"a b"`), acme, CodeInvalidField, "correlationId"},
		{"bad header correlationId", withType(""), Defaults{Tenant: "acme", HeaderCorrelationID: "a\r\nb"}, CodeInvalidField, "correlationId"},
		{"source 128 chars", withType(`"source":"` + long(128) + `"`), acme, "", ""},
		{"source 129 chars", withType(`"source":"` + long(129) + `"`), acme, CodeInvalidField, "source"},
		{"source with space", withType(`"source":"a b"`), acme, CodeInvalidField, "source"},
		{"userId with space", withType(`"userId":"Jane Doe"`), acme, "", ""},
		{"userId 256 chars", withType(`"userId":"` + long(256) + `"`), acme, "", ""},
		{"userId 257 chars", withType(`"userId":"` + long(257) + `"`), acme, CodeInvalidField, "userId"},
		{"userId with tab", withType(`"userId":"a\tb"`), acme, CodeInvalidField, "userId"},
		{"userId non-ASCII", withType(`"userId":"Zoë"`), acme, CodeInvalidField, "userId"},
		{"version 32 chars", withType(`"version":"` + long(32) + `"`), acme, "", ""},
		{"version 33 chars", withType(`"version":"` + long(33) + `"`), acme, CodeInvalidField, "version"},
		{"version with space", withType(`"version":"1 0"`), acme, CodeInvalidField, "version"},

		{"complete event", `{"id":"0193d1c2-aaaa-7bbb-8ccc-123456789abc","type":"approval.requested",` +
			`"source":"platform","timestamp":"2026-11-26T10:00:00.123Z","correlationId":"c-1",` +
			`"tenantId":"acme","userId":"u-42","version":"1.0","data":{"amount":12.5,"tags":["a"]}}`, Defaults{}, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := publish(tt.body, tt.d)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("got error %v, want accepted", err)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got error %v (%T), want *Error %s", err, err, tt.wantCode)
			}
			if e.Code != tt.wantCode || e.Field != tt.wantField {
				t.Fatalf("got code %q field %q (%s), want code %q field %q", e.Code, e.Field, e.Message, tt.wantCode, tt.wantField)
			}
			if e.Message == "" {
				t.Fatalf("got empty message, want one naming what is allowed")
			}
		})
	}
}

func TestDecode_nesting_limit_matches_encoding_json(t *testing.T) {
	for _, depth := range []int{9999, 10000, 10001} {
		body := `{"data":` + strings.Repeat(`{"a":`, depth-1) + "1" + strings.Repeat("}", depth-1) + "}"
		_, err := Decode([]byte(body))
		if got, want := err == nil, json.Valid([]byte(body)); got != want {
			t.Errorf("depth %d: got accepted %v, want %v as encoding/json (err %v)", depth, got, want, err)
		}
	}
}

func TestDecode_messages_name_what_is_allowed(t *testing.T) {
	tests := []struct {
		body string
		want string
	}{
		{withType(`"tenantId":"ac me"`), `tenantId "ac me" must match ^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`},
		{withType(`"tenantID":"acme"`), `unknown field "tenantID" (did you mean "tenantId"?); the fields of an event are ` +
			`id, type, source, timestamp, correlationId, tenantId, userId, version and data`},
		{`{"type":"Approval"}`, `type "Approval" must be lower-case dotted like module.action or ` +
			`module.entity.action: 2–5 segments matching [a-z][a-z0-9_-]*, at most 128 characters`},
		{withType(`"data":[]`), `data must be a JSON object, not an array`},
		{withType(`"replay":true`), `field "replay" is set only by the sidecar on replay and may not be published`},
		{`{"type":"a.b",}`, `body is not valid JSON: expected a quoted field name at byte 14`},
		{withType(`"userId":"` + strings.Repeat("é", 100) + `"`),
			`userId "` + strings.Repeat("é", 64) + `…" must be at most 256 characters of printable ASCII`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			_, err := publish(tt.body, Defaults{Tenant: "acme"})
			if err == nil || err.Error() != tt.want {
				t.Fatalf("got %v, want %s", err, tt.want)
			}
		})
	}
}

func TestDecode_long_unknown_key_is_truncated_in_field(t *testing.T) {
	key := strings.Repeat("k", 10000)
	_, err := Decode([]byte(`{"` + key + `":1}`))
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeUnknownField {
		t.Fatalf("got %v, want unknown_field", err)
	}
	if want := strings.Repeat("k", 64) + "…"; e.Field != want {
		t.Errorf("got field %q, want %q", e.Field, want)
	}
	if len(e.Message) > 300 {
		t.Errorf("got a %d-byte message, want it bounded", len(e.Message))
	}
}

func TestDecode_unescapes_strings(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"plain", `u-42`, "u-42"},
		{"quote and backslash", `a\"b\\c`, `a"b\c`},
		{"slash", `a\/b`, "a/b"},
		{"control escapes", `\b\f\n\r\t`, "\b\f\n\r\t"},
		{"BMP escape", `caf\u00e9 \u20AC`, "café €"},
		{"surrogate pair", `\ud83d\ude00!`, "😀!"},
		{"lone high surrogate", `\ud800x`, "\uFFFDx"},
		{"lone low surrogate", `\udc00`, "\uFFFD"},
		{"high surrogate then BMP escape", `\ud800\u0041`, "\uFFFDA"},
		{"two high surrogates", `\ud800\ud800`, "\uFFFD\uFFFD"},
		{"NUL", `\u0000`, "\x00"},
		{"raw UTF-8", `Zoë 😀`, "Zoë 😀"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"userId":"` + tt.raw + `","source":"s"}`
			e, err := Decode([]byte(body))
			if err != nil {
				t.Fatalf("got error %v, want none", err)
			}
			if e.UserID != tt.want {
				t.Errorf("got userId %q, want %q", e.UserID, tt.want)
			}
			var std struct{ UserID string }
			if err := json.Unmarshal([]byte(body), &std); err != nil || std.UserID != e.UserID {
				t.Errorf("got userId %q, encoding/json says %q (err %v)", e.UserID, std.UserID, err)
			}
			if e.Source != "s" {
				t.Errorf("got source %q after an escaped field, want %q", e.Source, "s")
			}
		})
	}
}

func TestDecode_keeps_data_bytes_exactly(t *testing.T) {
	data := "{ \"b\" : [1, 2.50, \"\\u00e9\"],\n  \"a\":{} }"
	e, err := Decode([]byte(`{"type":"a.b", "data" : ` + data + ` }`))
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	if string(e.Data) != data {
		t.Errorf("got data %q, want %q", e.Data, data)
	}
	if cap(e.Data) != len(e.Data) {
		t.Errorf("got cap %d len %d, want data not to share room with other fields", cap(e.Data), len(e.Data))
	}
}

func TestDecode_does_not_retain_body(t *testing.T) {
	body := []byte(`{"type":"approval.requested","tenantId":"acme","data":{"k":"v"}}`)
	e, err := Decode(body)
	if err != nil {
		t.Fatalf("got error %v, want none", err)
	}
	for i := range body {
		body[i] = 'X'
	}
	if e.Type != "approval.requested" || e.TenantID != "acme" || string(e.Data) != `{"k":"v"}` {
		t.Errorf("got %q %q %q after overwriting the body, want the decoded values", e.Type, e.TenantID, e.Data)
	}
}

// Both decoders walk their object the same way (scanner.nextMember); each
// names its own members and object in the syntax errors a client reads.
func TestDecode_and_DecodeCloudEvent_name_their_members_in_syntax_errors(t *testing.T) {
	tests := []struct {
		body, event, cloudEvent string
	}{
		{`[]`, "the body must be a JSON object at byte 0", "a structured CloudEvent must be a JSON object at byte 0"},
		{`{1:2}`, "expected a quoted field name at byte 1", "expected a quoted attribute name at byte 1"},
		{`{"type" "a.b"}`, "expected ':' after a field name at byte 8", "expected ':' after an attribute name at byte 8"},
		{`{"type":"a.b" "id":"x"}`, "expected ',' or '}' after a field value at byte 14",
			"expected ',' or '}' after an attribute value at byte 14"},
		{`{"type":"a.b"} {}`, "unexpected data after the event object at byte 15",
			"unexpected data after the CloudEvent object at byte 15"},
		{`{} x`, "unexpected data after the event object at byte 3", "unexpected data after the CloudEvent object at byte 3"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			for _, c := range []struct {
				decode func([]byte) (*Event, error)
				want   string
			}{{Decode, tt.event}, {DecodeCloudEvent, tt.cloudEvent}} {
				_, err := c.decode([]byte(tt.body))
				var e *Error
				if !errors.As(err, &e) || e.Code != CodeInvalidJSON || e.Message != "body is not valid JSON: "+c.want {
					t.Errorf("got %v, want invalid_json %q", err, "body is not valid JSON: "+c.want)
				}
			}
		})
	}
}
