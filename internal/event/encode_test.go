package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// valuesMap turns XADD values into the map go-redis returns for XRANGE.
func valuesMap(t *testing.T, vals []any) map[string]any {
	t.Helper()
	if len(vals)%2 != 0 {
		t.Fatalf("got %d values, want field/value pairs", len(vals))
	}
	m := make(map[string]any, len(vals)/2)
	for i := 0; i < len(vals); i += 2 {
		k, ok := vals[i].(string)
		if !ok {
			t.Fatalf("got field name %#v, want a string", vals[i])
		}
		v, ok := vals[i+1].(string)
		if !ok {
			t.Fatalf("got value %#v for %s, want a string", vals[i+1], k)
		}
		if _, dup := m[k]; dup {
			t.Fatalf("got field %s twice", k)
		}
		m[k] = v
	}
	return m
}

func TestRoundTrip_decode_fill_values_json_preserves_every_field(t *testing.T) {
	tests := []struct {
		name   string
		body   string
		mutate func(*Event) // what the sidecar sets after Fill (trace context, replay)
	}{
		{"minimal", `{"type":"approval.requested"}`, nil},
		{"complete", `{"id":"0193d1c2-aaaa-7bbb-8ccc-123456789abc","type":"approval.requested",` +
			`"source":"billing","timestamp":"2026-11-26T10:00:00.123+01:00","correlationId":"c-1",` +
			`"tenantId":"acme","userId":"Jane \"JD\" Doe","version":"2.1",` +
			`"data":{ "amount" : 12.50, "note":"caf\u00e9 \ud83d\ude00 </script>", "list":[1,{"x":null}] }}`, nil},
		{"escaped strings", `{"type":"a.b","userId":"tab\there\\ \u2028","source":"s\/x"}`, nil},
		{"traced replay", `{"type":"user.joined","data":{}}`, func(e *Event) {
			e.TraceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
			e.TraceState = "rojo=00f067aa0ba902b7"
			e.Replay, e.ReplayOf, e.ReplayID, e.TargetGroup = true, "1764151200123-0", "r-1", "billing"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := Decode([]byte(tt.body))
			if err != nil {
				t.Fatalf("Decode: got %v, want nil", err)
			}
			in.Fill(Defaults{Tenant: "acme", Source: "platform", HeaderUserID: "u-1"})
			if tt.mutate != nil {
				tt.mutate(in)
			}
			out, err := FromValues(valuesMap(t, in.AppendValues(nil)))
			if err != nil {
				t.Fatalf("FromValues: got %v, want nil", err)
			}
			if !reflect.DeepEqual(out, in) {
				t.Fatalf("FromValues(AppendValues(e)):\ngot  %+v\nwant %+v", out, in)
			}

			js := out.AppendJSON(nil)
			var got struct {
				ID, Type, Source, Timestamp, CorrelationID, TenantID, UserID, Version string
				Data                                                                  json.RawMessage
				Replay                                                                bool
				ReplayOf, ReplayID, TargetGroup                                       string
			}
			dec := json.NewDecoder(bytes.NewReader(js))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil {
				t.Fatalf("AppendJSON gave %s: %v", js, err)
			}
			want := []string{in.ID, in.Type, in.Source, in.Timestamp, in.CorrelationID, in.TenantID, in.UserID,
				in.Version, string(in.Data), in.ReplayOf, in.ReplayID, in.TargetGroup}
			have := []string{got.ID, got.Type, got.Source, got.Timestamp, got.CorrelationID, got.TenantID, got.UserID,
				got.Version, string(got.Data), got.ReplayOf, got.ReplayID, got.TargetGroup}
			if !reflect.DeepEqual(have, want) || got.Replay != in.Replay {
				t.Fatalf("AppendJSON fields:\ngot  %q replay=%v\nwant %q replay=%v", have, got.Replay, want, in.Replay)
			}

			// The JSON is again a publishable body when the reserved fields are absent.
			if !in.Replay {
				again, err := Decode(js)
				if err != nil {
					t.Fatalf("Decode(AppendJSON(e)): got %v, want nil", err)
				}
				again.TraceParent, again.TraceState = in.TraceParent, in.TraceState
				if !reflect.DeepEqual(again, in) {
					t.Fatalf("Decode(AppendJSON(e)):\ngot  %+v\nwant %+v", again, in)
				}
			}
		})
	}
}

func TestAppendJSON_field_order_and_optional_fields(t *testing.T) {
	e := Event{ID: "i", Type: "a.b", Source: "s", Timestamp: "t", CorrelationID: "c", TenantID: "acme",
		UserID: "u", Version: "1.0", Data: []byte(`{"k":1}`), TraceParent: "tp", TraceState: "ts"}
	const base = `{"id":"i","type":"a.b","source":"s","timestamp":"t","correlationId":"c","tenantId":"acme",` +
		`"userId":"u","version":"1.0","data":{"k":1}`
	if got, want := string(e.AppendJSON(nil)), base+`}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	e.Replay, e.ReplayOf, e.ReplayID, e.TargetGroup = true, "1-0", "r", "g"
	if got, want := string(e.AppendJSON([]byte("x"))), "x"+base+`,"replay":true,"replayOf":"1-0","replayId":"r","targetGroup":"g"}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	empty := Event{}
	if got, want := string(empty.AppendJSON(nil)), `{"id":"","type":"","source":"","timestamp":"","correlationId":"",`+
		`"tenantId":"","userId":"","version":"","data":{}}`; got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestAppendJSON_escapes_strings(t *testing.T) {
	tests := []struct{ in, want string }{
		{`plain`, `"plain"`},
		{"q\"b\\", `"q\"b\\"`},
		{"\n\r\t\x00\x1f", `"\n\r\t\u0000\u001f"`},
		{"é😀", `"é😀"`},
		{"\u2028\u2029", `"\u2028\u2029"`},
		{"bad\xffutf8", `"bad\ufffdutf8"`},
		{"</script>&", `"</script>&"`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := string(AppendJSONString(nil, tt.in)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestAppendValues_fields(t *testing.T) {
	e := Event{ID: "i", Type: "a.b", Source: "s", Timestamp: "t", CorrelationID: "c", TenantID: "acme",
		UserID: "u", Version: "1.0"}
	want := []any{"id", "i", "type", "a.b", "source", "s", "timestamp", "t", "correlationId", "c",
		"tenantId", "acme", "userId", "u", "version", "1.0", "data", "{}"}
	if got := e.AppendValues(nil); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	e.Data = []byte(`{"k":1}`)
	e.Replay, e.ReplayOf, e.ReplayID, e.TargetGroup, e.TraceParent, e.TraceState = true, "1-0", "r", "g", "tp", "ts"
	want[len(want)-1] = `{"k":1}`
	want = append(want, "replay", "true", "replayOf", "1-0", "replayId", "r", "targetGroup", "g",
		"traceparent", "tp", "tracestate", "ts")
	if got := e.AppendValues([]any{}); !reflect.DeepEqual(got, want) {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestFromValues(t *testing.T) {
	valid := func() map[string]any {
		return map[string]any{"id": "i", "type": "a.b", "tenantId": "acme", "data": `{"k":1}`}
	}
	tests := []struct {
		name      string
		edit      func(map[string]any)
		wantCode  string
		wantField string
		check     func(*testing.T, *Event)
	}{
		{"minimal", nil, "", "", func(t *testing.T, e *Event) {
			if e.ID != "i" || e.Type != "a.b" || e.TenantID != "acme" || string(e.Data) != `{"k":1}` || e.Replay {
				t.Errorf("got %+v, want id i, type a.b, tenantId acme, data {\"k\":1}", e)
			}
		}},
		{"data missing is {}", func(m map[string]any) { delete(m, "data") }, "", "", func(t *testing.T, e *Event) {
			if string(e.Data) != "{}" {
				t.Errorf("got data %q, want {}", e.Data)
			}
		}},
		{"unknown fields ignored", func(m map[string]any) { m["writer"] = "python"; m["n"] = 1 }, "", "", nil},
		{"byte values accepted", func(m map[string]any) { m["userId"] = []byte("u-1") }, "", "", func(t *testing.T, e *Event) {
			if e.UserID != "u-1" {
				t.Errorf("got userId %q, want u-1", e.UserID)
			}
		}},
		{"replay true", func(m map[string]any) { m["replay"] = "true" }, "", "", func(t *testing.T, e *Event) {
			if !e.Replay {
				t.Errorf("got replay false, want true")
			}
		}},
		{"replay false", func(m map[string]any) { m["replay"] = "false" }, "", "", nil},
		{"replay garbage", func(m map[string]any) { m["replay"] = "yes" }, CodeInvalidField, "replay", nil},
		{"id missing", func(m map[string]any) { delete(m, "id") }, CodeMissingField, "id", nil},
		{"type missing", func(m map[string]any) { delete(m, "type") }, CodeMissingField, "type", nil},
		{"tenantId empty", func(m map[string]any) { m["tenantId"] = "" }, CodeMissingField, "tenantId", nil},
		{"data not an object", func(m map[string]any) { m["data"] = `[1]` }, CodeInvalidField, "data", nil},
		{"data not JSON", func(m map[string]any) { m["data"] = `{"k":` }, CodeInvalidField, "data", nil},
		{"value not a string", func(m map[string]any) { m["source"] = 7 }, CodeInvalidField, "source", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			if tt.edit != nil {
				tt.edit(m)
			}
			e, err := FromValues(m)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				if tt.check != nil {
					tt.check(t, e)
				}
				return
			}
			var fe *Error
			if !errors.As(err, &fe) || fe.Code != tt.wantCode || fe.Field != tt.wantField {
				t.Fatalf("got %v, want %s %s", err, tt.wantCode, tt.wantField)
			}
		})
	}
}
