package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// ce returns a structured CloudEvent with the required attributes plus the
// given members.
func ce(members string) string {
	body := `{"specversion":"1.0","id":"ev-1","source":"billing","type":"approval.requested"`
	if members != "" {
		body += "," + members
	}
	return body + "}"
}

// eventError returns err as an *Error or fails the test.
func eventError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v (%T), want an *event.Error", err, err)
	}
	return e
}

func TestDecodeCloudEvent_maps_attributes(t *testing.T) {
	body := `{"specversion":"1.0","id":"ev-1","source":"/billing","type":"approval.requested",` +
		`"time":"2026-11-26T10:00:00.123Z","datacontenttype":"application/json","subject":"inv-1",` +
		`"dataschema":"urn:x","tenantid":"acme","correlationid":"order-42","userid":"u-42","hyvveversion":"1.0",` +
		`"traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","myext":{"any":[1]},` +
		`"data":{"approvalId":"a-1","n":[1,2]}}`
	e, err := DecodeCloudEvent([]byte(body))
	if err != nil {
		t.Fatalf("DecodeCloudEvent: %v", err)
	}
	want := Event{ID: "ev-1", Source: "/billing", Type: "approval.requested", Timestamp: "2026-11-26T10:00:00.123Z",
		TenantID: "acme", CorrelationID: "order-42", UserID: "u-42", Version: "1.0"}
	gotData := e.Data
	e.Data = nil
	if !reflect.DeepEqual(*e, want) {
		t.Errorf("got %+v, want %+v", *e, want)
	}
	if string(gotData) != `{"approvalId":"a-1","n":[1,2]}` {
		t.Errorf("got data %s, want the data member byte for byte", gotData)
	}
}

func TestDecodeCloudEvent_rules(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantCode  string // "" means accepted
		wantField string
	}{
		{"required attributes only", ce(""), "", ""},
		{"no specversion", `{"id":"ev-1","source":"s","type":"a.b"}`, CodeMissingField, "specversion"},
		{"null specversion", `{"specversion":null,"id":"ev-1","source":"s","type":"a.b"}`, CodeMissingField, "specversion"},
		{"empty specversion", `{"specversion":"","id":"ev-1","source":"s","type":"a.b"}`, CodeMissingField, "specversion"},
		{"other specversion", `{"specversion":"0.3","id":"ev-1","source":"s","type":"a.b"}`, CodeInvalidField, "specversion"},
		{"specversion as a number", `{"specversion":1.0,"id":"ev-1","source":"s","type":"a.b"}`, CodeInvalidField, "specversion"},
		{"specversion error first", `{"id":7,"tenantId":"x","specversion":"2.0"}`, CodeInvalidField, "specversion"},
		{"specversion type error first", `{"id":7,"specversion":1}`, CodeInvalidField, "specversion"},
		{"no id", `{"specversion":"1.0","source":"s","type":"a.b"}`, CodeMissingField, "id"},
		{"empty id", `{"specversion":"1.0","id":"","source":"s","type":"a.b"}`, CodeMissingField, "id"},
		{"no source", `{"specversion":"1.0","id":"i","type":"a.b"}`, CodeMissingField, "source"},
		{"no type", `{"specversion":"1.0","id":"i","source":"s"}`, CodeMissingField, "type"},
		{"id not a string", `{"specversion":"1.0","id":42,"source":"s","type":"a.b"}`, CodeInvalidField, "id"},
		{"tenantid not a string", ce(`"tenantid":["acme"]`), CodeInvalidField, "tenantid"},
		{"duplicate attribute", ce(`"type":"a.c"`), CodeInvalidField, "type"},
		{"json datacontenttype with charset", ce(`"datacontenttype":"application/json; charset=utf-8"`), "", ""},
		{"datacontenttype in upper case", ce(`"datacontenttype":"Application/JSON"`), "", ""},
		{"text datacontenttype", ce(`"datacontenttype":"text/plain","data":"hello"`), CodeInvalidField, "datacontenttype"},
		{"xml datacontenttype", ce(`"datacontenttype":"application/xml"`), CodeInvalidField, "datacontenttype"},
		{"malformed datacontenttype", ce(`"datacontenttype":"json;;"`), CodeInvalidField, "datacontenttype"},
		{"data string", ce(`"data":"x"`), CodeInvalidField, "data"},
		{"data array", ce(`"data":[]`), CodeInvalidField, "data"},
		{"data null", ce(`"data":null`), "", ""},
		{"data twice", ce(`"data":{},"data":{}`), CodeInvalidField, "data"},
		{"data_base64", ce(`"data_base64":"e30="`), CodeInvalidField, "data_base64"},
		{"data_base64 null", ce(`"data_base64":null`), "", ""},
		{"camelCase extension is not silently ignored", ce(`"tenantId":"acme"`), CodeUnknownField, "tenantId"},
		{"underscore in a name", ce(`"tenant_id":"acme"`), CodeUnknownField, "tenant_id"},
		{"empty name", ce(`"":1`), CodeUnknownField, `""`},
		{"unknown extensions are ignored", ce(`"myext":"x","other1":{"a":[null]},"n":5`), "", ""},
		{"subject and dataschema are ignored", ce(`"subject":"s","dataschema":"https://x/y"`), "", ""},
		{"replay extension", ce(`"hyvvereplay":true`), CodeReservedField, "hyvvereplay"},
		{"null replay extension", ce(`"hyvvereplayof":null`), CodeReservedField, "hyvvereplayof"},
		{"target group extension", ce(`"hyvvetargetgroup":"g"`), CodeReservedField, "hyvvetargetgroup"},
		{"first bad member in document order", ce(`"userid":1,"tenantid":2`), CodeInvalidField, "userid"},
		{"member error before missing id", `{"specversion":"1.0","userid":1}`, CodeInvalidField, "userid"},
		{"not an object", `[]`, CodeInvalidJSON, ""},
		{"empty body", ``, CodeInvalidJSON, ""},
		{"trailing data", ce("") + `{}`, CodeInvalidJSON, ""},
		{"syntax error beats member errors", `{"id":1,"specversion":"1.0",}`, CodeInvalidJSON, ""},
		{"syntax error inside data names it", ce(`"data":{"a":}`), CodeInvalidJSON, "data"},
		{"invalid UTF-8", ce(`"userid":"u` + "\xff" + `"`), CodeInvalidJSON, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeCloudEvent([]byte(tt.body))
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				if e.ID != "ev-1" && e.ID != "i" {
					t.Errorf("got id %q, want ev-1", e.ID)
				}
				return
			}
			de := eventError(t, err)
			if de.Code != tt.wantCode || de.Field != tt.wantField {
				t.Errorf("got %s on %q (%s), want %s on %q", de.Code, de.Field, de.Message, tt.wantCode, tt.wantField)
			}
			if de.Message == "" {
				t.Error("got an empty message")
			}
		})
	}
}

func TestDecodeCloudEvent_messages_say_what_to_do(t *testing.T) {
	tests := []struct {
		body, want string
	}{
		{`{"id":"i","source":"s","type":"a.b"}`, `specversion is required: a CloudEvent must give specversion "1.0"`},
		{`{"specversion":"0.3","id":"i","source":"s","type":"a.b"}`, `specversion "0.3" is not supported`},
		{ce(`"tenantId":"acme"`), `did you mean "tenantid"?`},
		{ce(`"datacontenttype":"text/plain"`), `datacontenttype "text/plain" is not supported`},
	}
	for _, tt := range tests {
		_, err := DecodeCloudEvent([]byte(tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("DecodeCloudEvent(%s): got %v, want a message containing %q", tt.body, err, tt.want)
		}
	}
}

func TestDecodeCloudEvent_unescapes_names_and_values(t *testing.T) {
	e, err := DecodeCloudEvent([]byte(ce(`"\u0074enantid":"ac\u006de","userid":"J\u00fcrgen \"J\""`)))
	if err != nil {
		t.Fatal(err)
	}
	if e.TenantID != "acme" || e.UserID != `Jürgen "J"` {
		t.Errorf("got tenant %q, user %q, want acme, Jürgen \"J\"", e.TenantID, e.UserID)
	}
}

func TestDecodeCloudEvent_does_not_retain_body(t *testing.T) {
	body := []byte(ce(`"tenantid":"acme","data":{"a":1}`))
	e, err := DecodeCloudEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	for i := range body {
		body[i] = 'x'
	}
	if e.TenantID != "acme" || string(e.Data) != `{"a":1}` || e.Type != "approval.requested" {
		t.Errorf("event changed with the body: %+v data %s", e, e.Data)
	}
}

// headers returns a header lookup over http.Header, which matches names
// case-insensitively as fasthttp's Peek does.
func headers(kv ...string) func(string) string {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h.Get
}

func TestDecodeCloudEventBinary_maps_headers(t *testing.T) {
	h := headers("Ce-Specversion", "1.0", "Ce-Id", "ev-1", "Ce-Source", "/billing", "Ce-Type", "approval.granted",
		"Ce-Time", "2026-11-26T10:00:00Z", "Ce-Tenantid", "acme", "Ce-Correlationid", "order-42",
		"Ce-Userid", "J%C3%BCrgen%20M.", "Ce-Hyvveversion", "1.0", "Ce-Subject", "ignored", "Ce-Myext", "x",
		"Content-Type", "application/json; charset=utf-8")
	body := []byte(` {"approvalId":"a-1","decidedBy":"u-7"} `)
	e, err := DecodeCloudEventBinary(h, body)
	if err != nil {
		t.Fatalf("DecodeCloudEventBinary: %v", err)
	}
	want := Event{ID: "ev-1", Source: "/billing", Type: "approval.granted", Timestamp: "2026-11-26T10:00:00Z",
		TenantID: "acme", CorrelationID: "order-42", UserID: "Jürgen M.", Version: "1.0"}
	data := e.Data
	e.Data = nil
	if !reflect.DeepEqual(*e, want) {
		t.Errorf("got %+v, want %+v", *e, want)
	}
	if !bytes.Equal(data, body) {
		t.Errorf("got data %q, want the body %q", data, body)
	}
	body[2] = 'X'
	if data[2] == 'X' {
		t.Error("data shares memory with the body")
	}
}

func TestDecodeCloudEventBinary_rules(t *testing.T) {
	required := []string{"ce-specversion", "1.0", "ce-id", "ev-1", "ce-source", "s", "ce-type", "a.b"}
	with := func(kv ...string) []string { return append(append([]string{}, required...), kv...) }
	tests := []struct {
		name      string
		headers   []string
		body      string
		wantCode  string
		wantField string
		wantData  string
	}{
		{"required headers, empty body", required, "", "", "", ""},
		{"whitespace body", required, " \r\n", "", "", ""},
		{"object body", with("Content-Type", "application/json"), `{"a":1}`, "", "", `{"a":1}`},
		{"no Content-Type", required, `{"a":1}`, "", "", `{"a":1}`},
		{"no specversion", []string{"ce-id", "i", "ce-source", "s", "ce-type", "a.b"}, "", CodeMissingField, "specversion", ""},
		{"other specversion", with("ce-specversion", "0.3"), "", CodeInvalidField, "specversion", ""},
		{"no id", []string{"ce-specversion", "1.0", "ce-source", "s", "ce-type", "a.b"}, "", CodeMissingField, "id", ""},
		{"no source", []string{"ce-specversion", "1.0", "ce-id", "i", "ce-type", "a.b"}, "", CodeMissingField, "source", ""},
		{"no type", []string{"ce-specversion", "1.0", "ce-id", "i", "ce-source", "s"}, "", CodeMissingField, "type", ""},
		{"text Content-Type", with("Content-Type", "text/plain"), "hello", CodeInvalidField, "datacontenttype", ""},
		{"array body", required, `[1]`, CodeInvalidField, "data", ""},
		{"body not JSON", required, `{"a":`, CodeInvalidField, "data", ""},
		{"body not UTF-8", required, "{\"a\":\"\xff\"}", CodeInvalidField, "data", ""},
		{"replay header", with("ce-hyvvereplay", "true"), "", CodeReservedField, "hyvvereplay", ""},
		{"replay id header", with("ce-hyvvereplayid", "r"), "", CodeReservedField, "hyvvereplayid", ""},
		{"percent-encoding of invalid UTF-8", with("ce-userid", "%ff"), "", CodeInvalidField, "userid", ""},
		{"lone percent stays", with("ce-userid", "100%"), "", "", "", ""},
		{"specversion before a bad Content-Type", []string{"Content-Type", "text/plain"}, "", CodeMissingField, "specversion", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := DecodeCloudEventBinary(headers(tt.headers...), []byte(tt.body))
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("got %v, want accepted", err)
				}
				if string(e.Data) != tt.wantData {
					t.Errorf("got data %q, want %q", e.Data, tt.wantData)
				}
				return
			}
			de := eventError(t, err)
			if de.Code != tt.wantCode || de.Field != tt.wantField {
				t.Errorf("got %s on %q (%s), want %s on %q", de.Code, de.Field, de.Message, tt.wantCode, tt.wantField)
			}
		})
	}
}

func TestDecodeCloudEventBinary_percent_decoding(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"a%20b", "a b"},
		{"%22quoted%22", `"quoted"`},
		{"J%c3%bcrgen", "Jürgen"},
		{"100%", "100%"},
		{"%zz", "%zz"},
		{"%2", "%2"},
		{"a%25b", "a%b"},
	}
	for _, tt := range tests {
		e, err := DecodeCloudEventBinary(headers("ce-specversion", "1.0", "ce-id", "i", "ce-source", "s",
			"ce-type", "a.b", "ce-correlationid", tt.in), nil)
		if err != nil {
			t.Fatalf("%q: %v", tt.in, err)
		}
		if e.CorrelationID != tt.want {
			t.Errorf("ce-correlationid %q: got %q, want %q", tt.in, e.CorrelationID, tt.want)
		}
	}
}

func TestAppendCloudEvent_attributes_in_order(t *testing.T) {
	e := Event{ID: "ev-1", Type: "approval.requested", Source: "billing", Timestamp: "2026-11-26T10:00:00.123Z",
		CorrelationID: "c-1", TenantID: "acme", UserID: "u \"42\"", Version: "1.0", Data: []byte(`{"a":1}`)}
	want := `{"specversion":"1.0","id":"ev-1","source":"billing","type":"approval.requested",` +
		`"time":"2026-11-26T10:00:00.123Z","datacontenttype":"application/json","tenantid":"acme",` +
		`"correlationid":"c-1","userid":"u \"42\"","hyvveversion":"1.0","data":{"a":1}}`
	if got := string(e.AppendCloudEvent(nil)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}

	e.Replay, e.ReplayOf, e.ReplayID, e.TargetGroup = true, "1764-0", "rp-1", "billing"
	e.Data = nil
	want = strings.TrimSuffix(want, `,"data":{"a":1}}`) + `,"hyvvereplay":true,"hyvvereplayof":"1764-0",` +
		`"hyvvereplayid":"rp-1","hyvvetargetgroup":"billing","data":{}}`
	if got := string(e.AppendCloudEvent([]byte("prefix"))); got != "prefix"+want {
		t.Errorf("got  %s\nwant prefix%s", got, want)
	}

	minimal := Event{ID: "i", Type: "a.b", Source: "s"}
	if got, want := string(minimal.AppendCloudEvent(nil)),
		`{"specversion":"1.0","id":"i","source":"s","type":"a.b","datacontenttype":"application/json","data":{}}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

// TestCloudEvent_round_trip publishes natively, pushes as a CloudEvent and
// reads that back: every field survives.
func TestCloudEvent_round_trip_native_to_cloudevent_to_native(t *testing.T) {
	bodies := []string{
		`{"type":"approval.requested","data":{"approvalId":"a-1"}}`,
		`{"id":"x-1","type":"user.joined","source":"crm","timestamp":"2026-11-26T10:00:00+02:00","correlationId":"c",` +
			`"tenantId":"acme","userId":"u \"42\" \\ \/ \u0041","version":"2.1","data":{"nested":{"a":[1,"\u00e9",null]}}}`,
	}
	for _, body := range bodies {
		orig, err := publish(body, Defaults{Tenant: "dev", Source: "platform"})
		if err != nil {
			t.Fatalf("publish %s: %v", body, err)
		}
		ceBody := orig.AppendCloudEvent(nil)
		if !json.Valid(ceBody) {
			t.Fatalf("AppendCloudEvent gave invalid JSON %s", ceBody)
		}
		got, err := DecodeCloudEvent(ceBody)
		if err != nil {
			t.Fatalf("DecodeCloudEvent(%s): %v", ceBody, err)
		}
		got.Fill(Defaults{Tenant: "other", Source: "other"}) // changes nothing: every field is set
		if err := got.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
		if !bytes.Equal(got.AppendJSON(nil), orig.AppendJSON(nil)) {
			t.Errorf("round trip changed the event:\n got %s\nwant %s", got.AppendJSON(nil), orig.AppendJSON(nil))
		}
	}
}

// TestCloudEvent_structured_and_binary_give_the_same_event is what a
// publisher relies on: either mode, same event.
func TestCloudEvent_structured_and_binary_give_the_same_event(t *testing.T) {
	structured, err := DecodeCloudEvent([]byte(`{"specversion":"1.0","id":"ev-9","source":"crm","type":"user.invited",` +
		`"tenantid":"acme","correlationid":"flow-1","userid":"u-1","data":{"invitationId":"i-1"}}`))
	if err != nil {
		t.Fatal(err)
	}
	binary, err := DecodeCloudEventBinary(headers("ce-specversion", "1.0", "ce-id", "ev-9", "ce-source", "crm",
		"ce-type", "user.invited", "ce-tenantid", "acme", "ce-correlationid", "flow-1", "ce-userid", "u-1",
		"Content-Type", "application/json"), []byte(`{"invitationId":"i-1"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := binary.AppendJSON(nil), structured.AppendJSON(nil); !bytes.Equal(got, want) {
		t.Errorf("binary gave %s, structured %s", got, want)
	}
}

func TestCloudEvent_publish_path_fills_from_headers(t *testing.T) {
	e, err := DecodeCloudEvent([]byte(ce("")))
	if err != nil {
		t.Fatal(err)
	}
	e.Fill(Defaults{HeaderTenantID: "acme", HeaderUserID: "u-9", Tenant: "dev"})
	if err := e.Validate(); err != nil {
		t.Fatal(err)
	}
	if e.TenantID != "acme" || e.UserID != "u-9" || e.Version != DefaultVersion || string(e.Data) != "{}" || e.Timestamp == "" {
		t.Errorf("got %+v, want tenant and user from headers, version, data and timestamp filled", e)
	}
}

func TestCloudEventAttribute_names_what_the_publisher_sent(t *testing.T) {
	e, err := DecodeCloudEvent([]byte(ce(`"tenantid":"ac me","time":"yesterday"`)))
	if err != nil {
		t.Fatal(err)
	}
	e.Fill(Defaults{})
	ve := eventError(t, e.Validate())
	if got := CloudEventAttribute(ve.Field); got != "time" {
		t.Errorf("got attribute %q for field %q, want time", got, ve.Field)
	}
	for field, want := range map[string]string{"timestamp": "time", "tenantId": "tenantid", "correlationId": "correlationid",
		"userId": "userid", "version": "hyvveversion", "id": "id", "type": "type", "source": "source", "data": "data"} {
		if got := CloudEventAttribute(field); got != want {
			t.Errorf("CloudEventAttribute(%q) = %q, want %q", field, got, want)
		}
	}
}

var ceFuzzSeeds = []string{
	``, `{}`, `[]`, ce(""), ce(`"data":{"a":[1,{"b":null}]}`), ce(`"tenantid":"acme","correlationid":"c","userid":"u"`),
	ce(`"time":"2026-11-26T10:00:00Z","hyvveversion":"1.0","datacontenttype":"application/json"`),
	ce(`"tenantId":"x"`), ce(`"hyvvereplay":true`), ce(`"data_base64":"e30="`), ce(`"data":"s"`),
	`{"specversion":"0.3"}`, `{"specversion":1}`, ce(`"\u0069d":"dup"`), ce(`"x":{"y":[}`), ce(`"userid":"\ud800"`),
}

// FuzzDecodeCloudEvent checks that DecodeCloudEvent never panics, returns an
// *Error with a known code, accepts only valid JSON objects with
// specversion "1.0" and id, source and type (as encoding/json reads them),
// and that an accepted event survives AppendCloudEvent and a second decode.
func FuzzDecodeCloudEvent(f *testing.F) {
	for _, s := range ceFuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := DecodeCloudEvent(body)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("got %T %v, want *Error", err, err)
			}
			switch de.Code {
			case CodeInvalidJSON:
			case CodeMissingField, CodeInvalidField, CodeUnknownField, CodeReservedField:
				if de.Field == "" || !json.Valid(body) {
					t.Fatalf("got %s on %q for %q: want a field, and invalid_json for invalid JSON", de.Code, de.Field, body)
				}
			default:
				t.Fatalf("got code %q", de.Code)
			}
			return
		}
		var std struct{ Specversion, ID, Source, Type string }
		if !utf8.Valid(body) || json.Unmarshal(body, &std) != nil {
			t.Fatalf("accepted %q, which encoding/json does not read", body)
		}
		if std.Specversion != "1.0" || std.ID != e.ID || std.Source != e.Source || std.Type != e.Type ||
			e.ID == "" || e.Source == "" || e.Type == "" {
			t.Fatalf("accepted %q as %+v; encoding/json reads %+v", body, e, std)
		}
		if len(e.Data) > 0 && checkDataObject(e.Data) != nil {
			t.Fatalf("accepted data %q that is not a JSON object", e.Data)
		}
		again, err := DecodeCloudEvent(e.AppendCloudEvent(nil))
		if err != nil {
			t.Fatalf("re-decoding AppendCloudEvent of %q: %v", body, err)
		}
		if len(e.Data) == 0 {
			e.Data = []byte("{}")
		}
		if !bytes.Equal(again.AppendJSON(nil), e.AppendJSON(nil)) {
			t.Fatalf("round trip changed the event: %s, want %s", again.AppendJSON(nil), e.AppendJSON(nil))
		}
	})
}

// FuzzDecodeCloudEventBinary checks that any header values and body give an
// event or an *Error, and that an accepted event survives a structured
// round trip.
func FuzzDecodeCloudEventBinary(f *testing.F) {
	f.Add("1.0", "ev-1", "acme", "J%C3%BCrgen", "application/json", []byte(`{"a":1}`))
	f.Add("1.0", "", "%ff", "100%", "text/plain", []byte(`[]`))
	f.Add("0.3", "x", "", "", "", []byte(``))
	f.Fuzz(func(t *testing.T, spec, id, tenant, user, ct string, body []byte) {
		h := map[string]string{"ce-specversion": spec, "ce-id": id, "ce-source": "s", "ce-type": "a.b",
			"ce-tenantid": tenant, "ce-userid": user, "Content-Type": ct}
		e, err := DecodeCloudEventBinary(func(name string) string { return h[name] }, body)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) || de.Field == "" {
				t.Fatalf("got %T %v, want *Error with a field", err, err)
			}
			return
		}
		if spec != "1.0" || id == "" {
			t.Fatalf("accepted specversion %q, id %q", spec, id)
		}
		if len(e.Data) == 0 {
			e.Data = []byte("{}")
		}
		again, err := DecodeCloudEvent(e.AppendCloudEvent(nil))
		if err != nil {
			t.Fatalf("re-decoding: %v", err)
		}
		if !bytes.Equal(again.AppendJSON(nil), e.AppendJSON(nil)) {
			t.Fatalf("round trip changed the event: %s, want %s", again.AppendJSON(nil), e.AppendJSON(nil))
		}
	})
}

func BenchmarkDecodeCloudEvent(b *testing.B) {
	for _, s := range benchSizes {
		native, err := Decode(benchBody(s.size))
		if err != nil {
			b.Fatal(err)
		}
		body := native.AppendCloudEvent(nil)
		b.Run(s.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if _, err := DecodeCloudEvent(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestDecodeCloudEvents_keep_no_reference_to_the_body(t *testing.T) {
	structured := []byte(`{"specversion":"1.0","id":"c-1","type":"crm.deal.won","source":"/crm","data":{"k":"v"}}`)
	binary := []byte(`{"k":"v"}`)
	headers := map[string]string{"ce-specversion": "1.0", "ce-id": "c-2", "ce-type": "crm.deal.won",
		"ce-source": "/crm", "content-type": "application/json"}
	get := func(name string) string { return headers[strings.ToLower(name)] }

	s, err := DecodeCloudEvent(structured)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeCloudEventBinary(get, binary)
	if err != nil {
		t.Fatal(err)
	}
	for _, buf := range [][]byte{structured, binary} {
		for i := range buf {
			buf[i] = 'x'
		}
	}
	for name, ev := range map[string]*Event{"structured": s, "binary": b} {
		if string(ev.Data) != `{"k":"v"}` || ev.Type != "crm.deal.won" {
			t.Errorf("%s: after the body was overwritten got type %q data %s, want the decoded values", name, ev.Type, ev.Data)
		}
	}
}
