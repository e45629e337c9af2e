package event

import (
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestFill_precedence_body_over_header_over_default(t *testing.T) {
	all := Defaults{
		HeaderTenantID: "hdr-tenant", HeaderCorrelationID: "hdr-corr", HeaderUserID: "hdr-user",
		Tenant: "def-tenant", Source: "def-source",
	}
	noHeaders := Defaults{Tenant: "def-tenant", Source: "def-source"}
	body := Event{TenantID: "body-tenant", CorrelationID: "body-corr", UserID: "body-user", Source: "body-source", Version: "2.0"}
	tests := []struct {
		name string
		in   Event
		d    Defaults
		get  func(*Event) string
		want string
	}{
		{"tenantId from body", body, all, func(e *Event) string { return e.TenantID }, "body-tenant"},
		{"tenantId from header", Event{}, all, func(e *Event) string { return e.TenantID }, "hdr-tenant"},
		{"tenantId from --tenant", Event{}, noHeaders, func(e *Event) string { return e.TenantID }, "def-tenant"},
		{"tenantId nowhere", Event{}, Defaults{}, func(e *Event) string { return e.TenantID }, ""},
		{"correlationId from body", body, all, func(e *Event) string { return e.CorrelationID }, "body-corr"},
		{"correlationId from header", Event{}, all, func(e *Event) string { return e.CorrelationID }, "hdr-corr"},
		{"userId from body", body, all, func(e *Event) string { return e.UserID }, "body-user"},
		{"userId from header", Event{}, all, func(e *Event) string { return e.UserID }, "hdr-user"},
		{"userId default", Event{}, noHeaders, func(e *Event) string { return e.UserID }, "system"},
		{"source from body", body, all, func(e *Event) string { return e.Source }, "body-source"},
		{"source from --source", Event{}, all, func(e *Event) string { return e.Source }, "def-source"},
		{"source nowhere", Event{}, Defaults{}, func(e *Event) string { return e.Source }, ""},
		{"version from body", body, all, func(e *Event) string { return e.Version }, "2.0"},
		{"version default", Event{}, all, func(e *Event) string { return e.Version }, "1.0"},
		{"data default", Event{}, all, func(e *Event) string { return string(e.Data) }, "{}"},
		{"data from body", Event{Data: []byte(`{"a":1}`)}, all, func(e *Event) string { return string(e.Data) }, `{"a":1}`},
		{"id from body", Event{ID: "my-id"}, all, func(e *Event) string { return e.ID }, "my-id"},
		{"timestamp from body", Event{Timestamp: "2020-01-01T00:00:00Z"}, all, func(e *Event) string { return e.Timestamp }, "2020-01-01T00:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := tt.in
			e.Fill(tt.d)
			if got := tt.get(&e); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestFill_generates_ids_and_timestamp(t *testing.T) {
	now := time.Date(2026, 11, 26, 11, 0, 0, 123456789, time.FixedZone("CET", 3600))
	var e Event
	e.Fill(Defaults{Tenant: "acme", Now: func() time.Time { return now }})
	if want := "2026-11-26T10:00:00.123Z"; e.Timestamp != want {
		t.Errorf("got timestamp %q, want %q", e.Timestamp, want)
	}
	id, err := uuid.Parse(e.ID)
	if err != nil || id.Version() != 7 || id.String() != e.ID {
		t.Errorf("got id %q (version %d, err %v), want a canonical UUIDv7", e.ID, id.Version(), err)
	}
	if sec, nsec := id.Time().UnixTime(); time.Since(time.Unix(sec, nsec)).Abs() > time.Minute {
		t.Errorf("got id time %v, want now (the id orders events by publish time)", time.Unix(sec, nsec))
	}
	corr, err := uuid.Parse(e.CorrelationID)
	if err != nil || corr.Version() != 4 {
		t.Errorf("got correlationId %q (version %d, err %v), want a UUIDv4", e.CorrelationID, corr.Version(), err)
	}
	if e.Data == nil {
		t.Errorf("got nil data, want {}")
	}

	whole := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var e2 Event
	e2.Fill(Defaults{Now: func() time.Time { return whole }})
	if want := "2026-01-02T03:04:05.000Z"; e2.Timestamp != want {
		t.Errorf("got timestamp %q, want %q (exactly 3 fractional digits)", e2.Timestamp, want)
	}
}

func TestFill_ids_are_time_ordered_and_unique(t *testing.T) {
	const n = 1000
	prev := ""
	seen := make(map[string]bool, n)
	for range n {
		var e Event
		e.Fill(Defaults{})
		if e.ID <= prev {
			t.Fatalf("got id %q after %q, want increasing ids", e.ID, prev)
		}
		if seen[e.CorrelationID] {
			t.Fatalf("got correlationId %q twice, want unique", e.CorrelationID)
		}
		seen[e.CorrelationID] = true
		prev = e.ID
	}
}

func TestFill_twice_changes_nothing(t *testing.T) {
	var e Event
	e.Fill(Defaults{Tenant: "acme"})
	first := e
	e.Fill(Defaults{Tenant: "other", HeaderUserID: "u", Source: "s"})
	if e.ID != first.ID || e.Timestamp != first.Timestamp || e.CorrelationID != first.CorrelationID ||
		e.TenantID != first.TenantID || e.UserID != first.UserID {
		t.Errorf("got %+v after a second Fill, want %+v", e, first)
	}
}

func TestValidate_data_must_be_an_object(t *testing.T) {
	for _, data := range []string{`[]`, `"x"`, `{`, `{}{}`, `{"a":1,}`, "{\"a\":\"\xff\"}", ` `} {
		t.Run(data, func(t *testing.T) {
			e := Event{Type: "a.b", TenantID: "acme", Data: []byte(data)}
			e.Fill(Defaults{})
			var ve *Error
			if err := e.Validate(); !errors.As(err, &ve) || ve.Code != CodeInvalidField || ve.Field != "data" {
				t.Fatalf("got %v, want invalid_field data", err)
			}
		})
	}
}

func TestValidate_requires_filled_fields(t *testing.T) {
	full := Event{Type: "a.b", TenantID: "acme"}
	full.Fill(Defaults{})
	tests := []struct {
		field string
		clear func(*Event)
	}{
		{"id", func(e *Event) { e.ID = "" }},
		{"type", func(e *Event) { e.Type = "" }},
		{"timestamp", func(e *Event) { e.Timestamp = "" }},
		{"correlationId", func(e *Event) { e.CorrelationID = "" }},
		{"tenantId", func(e *Event) { e.TenantID = "" }},
		{"userId", func(e *Event) { e.UserID = "" }},
		{"version", func(e *Event) { e.Version = "" }},
	}
	for _, tt := range tests {
		t.Run(tt.field, func(t *testing.T) {
			e := full
			tt.clear(&e)
			var ve *Error
			if err := e.Validate(); !errors.As(err, &ve) || ve.Code != CodeMissingField || ve.Field != tt.field {
				t.Fatalf("got %v, want missing_field %s", err, tt.field)
			}
		})
	}
	if err := full.Validate(); err != nil {
		t.Fatalf("got %v for a filled event, want nil", err)
	}
}

func TestValidateTenantID_rejects_every_byte_outside_the_pattern(t *testing.T) {
	allowed := func(c byte, first bool) bool {
		return isAlnum(c) || !first && (c == '_' || c == '-')
	}
	for c := 0; c < 256; c++ {
		b := byte(c)
		for _, tc := range []struct {
			s     string
			first bool
		}{
			{string([]byte{b}) + "acme", true},
			{"ac" + string([]byte{b}) + "me", false},
			{"acme" + string([]byte{b}), false},
		} {
			if got, want := ValidateTenantID(tc.s) == nil, allowed(b, tc.first); got != want {
				t.Errorf("ValidateTenantID(%q): got valid %v, want %v", tc.s, got, want)
			}
		}
	}
	for _, s := range []string{"acmé", "ａcme", "acme\u200b", "acme\n", "a\x00"} {
		if ValidateTenantID(s) == nil {
			t.Errorf("ValidateTenantID(%q): got valid, want rejected", s)
		}
	}
}
