package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
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
