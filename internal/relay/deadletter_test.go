package relay

import (
	"errors"
	"strings"
	"testing"

	"github.com/hyvve/sidecar/internal/event"
)

func TestRetryEvent_targets_the_failed_group_or_says_why_it_cannot(t *testing.T) {
	valid := func() *event.Event {
		e := &event.Event{Type: "order.paid", TenantID: "acme", Data: []byte(`{}`)}
		e.Fill(event.Defaults{})
		return e
	}
	other := valid()
	other.TenantID = "globex"
	invalid := valid()
	invalid.Type = "Bad"
	tests := []struct {
		name    string
		dl      DeadLetter
		wantErr string // "" = retryable
	}{
		{"retryable", DeadLetter{Tenant: "acme", ID: "1-0", Group: "billing", Event: valid()}, ""},
		{"no event", DeadLetter{Tenant: "acme", ID: "1-0", Group: "billing"}, "holds no decodable event"},
		{"no group", DeadLetter{Tenant: "acme", ID: "1-0", Event: valid()}, "names no consumer group"},
		{"other tenant", DeadLetter{Tenant: "acme", ID: "1-0", Group: "billing", Event: other}, `belongs to tenant "globex"`},
		{"invalid event", DeadLetter{Tenant: "acme", ID: "1-0", Group: "billing", Event: invalid}, "its event is invalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := RetryEvent(&tt.dl)
			if tt.wantErr == "" {
				if err != nil || ev.TargetGroup != "billing" || ev.ID != tt.dl.Event.ID {
					t.Fatalf("got %+v, %v; want the event targeted at billing", ev, err)
				}
				if tt.dl.Event.TargetGroup != "" {
					t.Errorf("the dead letter's event was changed: targetGroup %q", tt.dl.Event.TargetGroup)
				}
				return
			}
			if !errors.Is(err, ErrNotRetryable) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want ErrNotRetryable saying %q", err, tt.wantErr)
			}
		})
	}
}

func TestDLQQuery_Normalize_fills_defaults_and_names_the_bad_field(t *testing.T) {
	tests := []struct {
		name      string
		q         DLQQuery
		want      DLQQuery
		wantField string
	}{
		{"defaults", DLQQuery{}, DLQQuery{Limit: DefaultDLQLimit}, ""},
		{"every tenant", DLQQuery{Tenant: "*", Limit: 7}, DLQQuery{Limit: 7}, ""},
		{"limit capped", DLQQuery{Tenant: "acme", Type: "a.*", Limit: 10_000}, DLQQuery{Tenant: "acme", Type: "a.*", Limit: MaxDLQLimit}, ""},
		{"bad tenant", DLQQuery{Tenant: "a:b"}, DLQQuery{}, "tenantId"},
		{"bad type", DLQQuery{Type: "A..b"}, DLQQuery{}, "type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			err := q.Normalize()
			if tt.wantField == "" {
				if err != nil || q != tt.want {
					t.Errorf("got %+v, %v; want %+v, nil", q, err, tt.want)
				}
				return
			}
			var ee *event.Error
			if !errors.As(err, &ee) || ee.Field != tt.wantField {
				t.Errorf("got %v, want an *event.Error naming %s", err, tt.wantField)
			}
		})
	}
}
