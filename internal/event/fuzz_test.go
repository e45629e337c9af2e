package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var fuzzSeeds = []string{
	``, `{}`, `[]`, `null`, ` {"type":"a.b"} `,
	`{"id":"x","type":"approval.requested","source":"platform","timestamp":"2026-11-26T10:00:00.123Z",` +
		`"correlationId":"c","tenantId":"acme","userId":"u-42","version":"1.0","data":{"a":[1,2.5e3,"s",null,true]}}`,
	`{"userId":"a\"b\\c\/\b\f\n\r\t\u00e9\ud83d\ude00\ud800"}`,
	`{"\u0074ype":"a.b","tenantId":null,"data":null}`,
	`{"type":"a.b","type":"a.c"}`, `{"tenantID":"acme"}`, `{"replay":true}`,
	`{"type":1}`, `{"data":"x"}`, `{"data":{"a":01}}`, `{"data":{"a":[}}`, "{\"userId\":\"\xff\"}",
	`{"type":"a.b"}{}`, `{"":0}`, `{"type":"a.b",}`, `{"data":{"a":-0.0e-0}}`, `{"data":{"":{"":[[]]}}}`,
}

// stdDecode is the oracle for FuzzDecode: it uses encoding/json to decide
// whether body is a publishable event object (UTF-8, no duplicate or unknown
// top-level keys, string fields are strings or null, data an object or null)
// and returns its string fields and raw data.
func stdDecode(body []byte) (strs map[string]string, data []byte, ok bool) {
	if !utf8.Valid(body) || !json.Valid(body) {
		return nil, nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, nil, false
	}
	strs = make(map[string]string)
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, false
		}
		key := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil || seen[key] {
			return nil, nil, false
		}
		seen[key] = true
		switch key {
		case "id", "type", "source", "timestamp", "correlationId", "tenantId", "userId", "version":
			var s *string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, nil, false
			}
			if s != nil {
				strs[key] = *s
			}
		case "data":
			if string(raw) != "null" {
				if raw[0] != '{' {
					return nil, nil, false
				}
				data = raw
			}
		default:
			return nil, nil, false
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, false
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, nil, false
	}
	return strs, data, true
}

// FuzzDecode checks that Decode never panics, always returns an *Error with
// a known code, accepts exactly the bodies encoding/json reads as an event
// object, and then agrees with encoding/json on every value.
func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		e, err := Decode(body)
		strs, data, ok := stdDecode(body)
		if err != nil {
			var de *Error
			if !errors.As(err, &de) {
				t.Fatalf("got %T %v, want *Error", err, err)
			}
			switch de.Code {
			case CodeInvalidJSON:
				if utf8.Valid(body) && json.Valid(body) && bytes.TrimLeft(body, " \t\r\n")[0] == '{' {
					t.Fatalf("got invalid_json (%s), but encoding/json accepts the object %q", de.Message, body)
				}
			case CodeUnknownField, CodeReservedField, CodeInvalidField:
				if de.Field == "" {
					t.Fatalf("got %s without a field (%s)", de.Code, de.Message)
				}
				if !json.Valid(body) {
					t.Fatalf("got %s for %q, which is not valid JSON, want invalid_json", de.Code, body)
				}
			default:
				t.Fatalf("got code %q from Decode", de.Code)
			}
			if ok {
				t.Fatalf("got %v, but encoding/json reads %q as an event", err, body)
			}
			return
		}
		if !ok {
			t.Fatalf("Decode accepted %q, which encoding/json does not read as an event", body)
		}
		for key, want := range strs {
			f, found := map[string]string{"id": e.ID, "type": e.Type, "source": e.Source, "timestamp": e.Timestamp,
				"correlationId": e.CorrelationID, "tenantId": e.TenantID, "userId": e.UserID, "version": e.Version}[key]
			if !found || f != want {
				t.Fatalf("%s: got %q, encoding/json says %q", key, f, want)
			}
		}
		if !bytes.Equal(e.Data, data) {
			t.Fatalf("data: got %q, want the raw bytes %q", e.Data, data)
		}
	})
}

// FuzzValidateTenantID checks ValidateTenantID against the regular
// expression of SPEC §1: a tenant id is a Redis key part, nothing else may pass.
func FuzzValidateTenantID(f *testing.F) {
	re := regexp.MustCompile(TenantIDPattern)
	for _, s := range []string{"acme", "", "-a", "a-", "A_9", "ac me", "acme\n", "é", strings.Repeat("a", 65), "a}b{"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidateTenantID(s) == nil, re.MatchString(s); got != want {
			t.Fatalf("ValidateTenantID(%q): got valid %v, want %v", s, got, want)
		}
	})
}

// FuzzValidateType checks ValidateType against the rule of SPEC §1 written
// as a regular expression.
func FuzzValidateType(f *testing.F) {
	re := regexp.MustCompile(`^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*){1,4}$`)
	for _, s := range []string{"a.b", "approval.requested", "a.b.c.d.e.f", "A.b", "a..b", "a.b.", "a.1", "a-b.c_d", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidateType(s) == nil, len(s) <= MaxTypeLen && re.MatchString(s); got != want {
			t.Fatalf("ValidateType(%q): got valid %v, want %v", s, got, want)
		}
	})
}

// FuzzAppendJSON checks that any field values encode to valid JSON that
// reads back as the same values (invalid UTF-8 becomes U+FFFD).
func FuzzAppendJSON(f *testing.F) {
	f.Add("i", "a.b", "u\n\"\\\u2028", "bad\xff", "{}")
	f.Fuzz(func(t *testing.T, id, typ, user, group, data string) {
		e := Event{ID: id, Type: typ, UserID: user, TargetGroup: group, Data: []byte(data)}
		if checkDataObject(e.Data) != nil {
			e.Data = nil
		}
		js := e.AppendJSON(nil)
		var got struct{ ID, Type, UserID, TargetGroup string }
		if err := json.Unmarshal(js, &got); err != nil {
			t.Fatalf("AppendJSON gave invalid JSON %q: %v", js, err)
		}
		for _, p := range [][2]string{{got.ID, id}, {got.Type, typ}, {got.UserID, user}, {got.TargetGroup, group}} {
			if want := strings.ToValidUTF8(p[1], "\uFFFD"); p[0] != want && utf8.ValidString(p[1]) {
				t.Fatalf("got %q, want %q", p[0], want)
			}
		}
	})
}

// fuzzNow is the clock of the round-trip targets, so Fill is deterministic
// for the timestamp.
func fuzzNow() time.Time { return time.Date(2026, 11, 26, 10, 0, 0, 123e6, time.UTC) }

// roundTripSeeds are the bodies of the decode and round-trip tests that
// publish a valid event, the starting points of FuzzDecodeFillValidate.
var roundTripSeeds = []string{
	`{"type":"approval.requested"}`,
	`{"id":"0193d1c2-aaaa-7bbb-8ccc-123456789abc","type":"approval.requested",` +
		`"source":"billing","timestamp":"2026-11-26T10:00:00.123+01:00","correlationId":"c-1",` +
		`"tenantId":"acme","userId":"Jane \"JD\" Doe","version":"2.1",` +
		`"data":{ "amount" : 12.50, "note":"caf\u00e9 \ud83d\ude00 </script>", "list":[1,{"x":null}] }}`,
	`{"type":"a.b","userId":"tab\there\\ \u2028","source":"s\/x"}`,
	`{"type":"user.joined","data":{}}`,
	" \r\n\t{\"type\":\"a.b.c.d.e\",\"tenantId\":null,\"source\":\"\"} \n",
	`{"type":"crm.deal.won","timestamp":"2026-11-26T10:00:00Z","data":{"k":[[],{},"",-1e-7]}}`,
}

// FuzzDecodeFillValidate runs the publish path of this package (Decode, Fill,
// Validate) on any body and header values and checks what the local API
// relies on: Fill is idempotent, a rejected event gets an *Error naming the
// field, and a valid event survives its JSON encoding: Decode(AppendJSON(e))
// is e again, valid again, and encodes to the same bytes, which encoding/json
// reads as the same values.
func FuzzDecodeFillValidate(f *testing.F) {
	for _, s := range append(fuzzSeeds, roundTripSeeds...) {
		f.Add([]byte(s), "", "", "", "platform")
	}
	f.Add([]byte(`{"type":"a.b"}`), "acme", "corr-1", "u 1", "")
	f.Add([]byte(`{"type":"a.b","tenantId":"x"}`), "a}b", "c\n", "", "s p")
	f.Fuzz(func(t *testing.T, body []byte, hTenant, hCorr, hUser, source string) {
		e, err := Decode(body)
		if err != nil {
			return // FuzzDecode checks the errors
		}
		d := Defaults{HeaderTenantID: hTenant, HeaderCorrelationID: hCorr, HeaderUserID: hUser,
			Tenant: "dflt", Source: source, Now: fuzzNow}
		e.Fill(d)
		filled := *e
		e.Fill(d)
		if !reflect.DeepEqual(*e, filled) {
			t.Fatalf("a second Fill changed the event:\ngot  %+v\nwant %+v", *e, filled)
		}
		if err := e.Validate(); err != nil {
			var ve *Error
			if !errors.As(err, &ve) || ve.Field == "" || (ve.Code != CodeMissingField && ve.Code != CodeInvalidField) {
				t.Fatalf("Validate: got %T %v, want an *Error with missing_field or invalid_field and a field", err, err)
			}
			return
		}
		js := e.AppendJSON(nil)
		got, err := Decode(js)
		if err != nil {
			t.Fatalf("Decode(AppendJSON(e)) of %s: %v", js, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("Decode(AppendJSON(e)):\ngot  %+v\nwant %+v", got, e)
		}
		if err := got.Validate(); err != nil {
			t.Fatalf("the re-decoded event is invalid: %v", err)
		}
		if again := got.AppendJSON(nil); !bytes.Equal(again, js) {
			t.Fatalf("encoding is not stable:\ngot  %s\nwant %s", again, js)
		}
		var std struct {
			ID, Type, Source, Timestamp, CorrelationID, TenantID, UserID, Version string
			Data                                                                  json.RawMessage
		}
		if err := json.Unmarshal(js, &std); err != nil {
			t.Fatalf("encoding/json cannot read %s: %v", js, err)
		}
		have := []string{std.ID, std.Type, std.Source, std.Timestamp, std.CorrelationID, std.TenantID, std.UserID, std.Version, string(std.Data)}
		want := []string{e.ID, e.Type, e.Source, e.Timestamp, e.CorrelationID, e.TenantID, e.UserID, e.Version, string(e.Data)}
		if !reflect.DeepEqual(have, want) {
			t.Fatalf("encoding/json reads %q, want %q", have, want)
		}
	})
}

// ceHeaderValue percent-encodes an attribute value for a ce-* header as the
// CloudEvents HTTP binding asks: space, '"', '%' and everything outside
// printable ASCII.
func ceHeaderValue(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == '"' || c == '%' || c > '~' {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// FuzzCloudEventRoundTrip builds an event from any field values, fills and
// validates it as the publish path does, and checks that a valid event
// survives both CloudEvents encodings: DecodeCloudEvent(AppendCloudEvent(e))
// and DecodeCloudEventBinary of its ce-* headers and data are e again (the
// structured data member without the JSON whitespace around the object). The
// one exception is an empty source, which Validate allows (no --source) and
// CloudEvents does not: both decoders must then name "source" as missing.
func FuzzCloudEventRoundTrip(f *testing.F) {
	f.Add("ev-1", "approval.requested", "/billing", "2026-11-26T10:00:00.123Z", "order-42", "acme", "u-42", "1.0", []byte(`{"approvalId":"a-1","n":[1,2]}`))
	f.Add("", "crm.deal.won", "", "", "", "acme", "J\"rgen 100%", "", []byte(``))
	f.Add("c-1", "a.b", "s%20x", "2026-11-26T10:00:00+01:00", "c", "t_1", " lead space ", "2.1", []byte(` {"k":"v"} `))
	f.Add("x", "a.b.c.d.e", "/crm", "2026-11-26T10:00:00Z", "c", "acme", "u", "1.0", []byte(`{"a":[1,{"b":null}]}`))
	f.Fuzz(func(t *testing.T, id, typ, source, ts, corr, tenant, user, version string, data []byte) {
		e := &Event{ID: id, Type: typ, Source: source, Timestamp: ts, CorrelationID: corr, TenantID: tenant,
			UserID: user, Version: version, Data: data}
		e.Fill(Defaults{Tenant: "dflt", Now: fuzzNow})
		if e.Validate() != nil {
			return
		}
		h := map[string]string{
			"ce-specversion": "1.0", "ce-id": ceHeaderValue(e.ID), "ce-source": ceHeaderValue(e.Source),
			"ce-type": ceHeaderValue(e.Type), "ce-time": ceHeaderValue(e.Timestamp),
			"ce-tenantid": ceHeaderValue(e.TenantID), "ce-correlationid": ceHeaderValue(e.CorrelationID),
			"ce-userid": ceHeaderValue(e.UserID), "ce-hyvveversion": ceHeaderValue(e.Version),
			"content-type": "application/json",
		}
		header := func(name string) string { return h[strings.ToLower(name)] }
		structured, serr := DecodeCloudEvent(e.AppendCloudEvent(nil))
		binary, berr := DecodeCloudEventBinary(header, e.Data)
		// The structured data member starts at its '{': whitespace around a
		// data object (which a binary body may carry) is not part of it.
		trimmed := *e
		trimmed.Data = bytes.Trim(e.Data, " \t\r\n")
		for _, c := range []struct {
			mode string
			got  *Event
			err  error
			want *Event
		}{{"structured", structured, serr, &trimmed}, {"binary", binary, berr, e}} {
			if e.Source == "" {
				var ce *Error
				if !errors.As(c.err, &ce) || ce.Code != CodeMissingField || ce.Field != "source" {
					t.Fatalf("%s: an event without source gave %v, want missing_field on source", c.mode, c.err)
				}
				continue
			}
			if c.err != nil {
				t.Fatalf("%s: decoding the encoding of a valid event %+v: %v", c.mode, e, c.err)
			}
			if !reflect.DeepEqual(c.got, c.want) {
				t.Fatalf("%s round trip:\ngot  %+v\nwant %+v", c.mode, c.got, c.want)
			}
		}
	})
}

// FuzzValuesRoundTrip checks FromValues(AppendValues(e)) == e for any field
// values, delivery-side fields and trace context included, with the values
// as strings (go-redis) or byte slices. FromValues refuses exactly what it
// documents: an empty id, type or tenantId (missing_field) and data that is
// not a JSON object (invalid_field); an empty Data comes back as {}.
func FuzzValuesRoundTrip(f *testing.F) {
	f.Add("i", "a.b", "s", "2026-11-26T10:00:00.123Z", "c", "acme", "u", "1.0", []byte(`{"k":1}`), false, "", "", "", "", "")
	f.Add("0193d1c2-aaaa", "user.joined", "", "", "", "acme", "", "", []byte(``), true, "1764151200123-0", "r-1", "billing",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "rojo=00f067aa0ba902b7")
	f.Add("", "a.b", "", "", "", "", "", "", []byte(`[1]`), false, "", "", "", "", "")
	f.Add("i", "t", "bad\xff", "", "", "x", "", "", []byte("{\"a\":\"\xff\"}"), false, "", "", "", "", "")
	f.Fuzz(func(t *testing.T, id, typ, source, ts, corr, tenant, user, version string, data []byte,
		replay bool, replayOf, replayID, group, traceParent, traceState string) {
		e := &Event{ID: id, Type: typ, Source: source, Timestamp: ts, CorrelationID: corr, TenantID: tenant,
			UserID: user, Version: version, Data: data, Replay: replay, ReplayOf: replayOf, ReplayID: replayID,
			TargetGroup: group, TraceParent: traceParent, TraceState: traceState}
		vals := e.AppendValues(nil)
		if len(vals)%2 != 0 {
			t.Fatalf("AppendValues gave %d values, want field/value pairs", len(vals))
		}
		asString := make(map[string]any, len(vals)/2)
		asBytes := make(map[string]any, len(vals)/2)
		for i := 0; i < len(vals); i += 2 {
			k, kok := vals[i].(string)
			v, vok := vals[i+1].(string)
			if !kok || !vok {
				t.Fatalf("AppendValues pair %d is %#v %#v, want two strings", i/2, vals[i], vals[i+1])
			}
			if _, dup := asString[k]; dup {
				t.Fatalf("AppendValues wrote field %s twice", k)
			}
			asString[k], asBytes[k] = v, []byte(v)
		}

		want := *e
		if len(want.Data) == 0 {
			want.Data = []byte("{}")
		}
		var wantCode, wantField string
		switch {
		case e.ID == "":
			wantCode, wantField = CodeMissingField, "id"
		case e.Type == "":
			wantCode, wantField = CodeMissingField, "type"
		case e.TenantID == "":
			wantCode, wantField = CodeMissingField, "tenantId"
		case checkDataObject(want.Data) != nil:
			wantCode, wantField = CodeInvalidField, "data"
		}
		for _, m := range []map[string]any{asString, asBytes} {
			got, err := FromValues(m)
			if wantCode != "" {
				var fe *Error
				if !errors.As(err, &fe) || fe.Code != wantCode || fe.Field != wantField {
					t.Fatalf("FromValues: got %v, want %s on %s", err, wantCode, wantField)
				}
				continue
			}
			if err != nil {
				t.Fatalf("FromValues(AppendValues(%+v)): %v", e, err)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("FromValues(AppendValues(e)):\ngot  %+v\nwant %+v", *got, want)
			}
		}
	})
}
