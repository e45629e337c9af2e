package jsstore

import (
	"context"
	"reflect"
	"strconv"
	"testing"

	"github.com/hyvve/sidecar/internal/event"
)

// An event comes back from the stream exactly as it was accepted, also when
// a value starts or ends with spaces (which NATS header parsing trims).
func TestCodec_stores_every_attribute_unchanged(t *testing.T) {
	tests := []struct {
		name string
		ev   event.Event
	}{
		{"minimal", event.Event{ID: "e-1", Type: "order.paid", Timestamp: "2026-11-26T10:00:00.123Z",
			CorrelationID: "c-1", TenantID: "acme", UserID: "system", Version: "1.0", Data: []byte(`{}`)}},
		{"every field", event.Event{ID: "e-2", Type: "crm.deal.won", Source: "crm", Timestamp: "2026-11-26T10:00:00Z",
			CorrelationID: "c-2", TenantID: "acme", UserID: "u-42", Version: "2.1", Data: []byte(`{"a":[1,"x"]}`),
			Replay: true, ReplayOf: "17", ReplayID: "r-1", TargetGroup: "billing",
			TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: "a=1,b=2"}},
		{"spaces at the ends", event.Event{ID: "e-3", Type: "user.joined", Timestamp: "2026-11-26T10:00:00Z",
			CorrelationID: "c-3", TenantID: "acme", UserID: "  Ada Lovelace ", Version: "1.0", Data: []byte(`{}`),
			TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", TraceState: " a=1 "}},
		{"a quote in a spaced value", event.Event{ID: "e-4", Type: "user.joined", Timestamp: "2026-11-26T10:00:00Z",
			CorrelationID: "c-4", TenantID: "acme", UserID: ` say "hi"`, Version: "1.0", Data: []byte(`{}`)}},
	}
	s := open(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := tt.ev
			res := publish(t, s.Store, &ev)
			seq, err := strconv.ParseUint(res[0].StreamID, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := s.events.GetMsg(context.Background(), seq)
			if err != nil {
				t.Fatal(err)
			}
			got, err := decodeEvent(raw.Header, raw.Data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.ev) {
				t.Errorf("stored and read back:\n got %+v\nwant %+v", *got, tt.ev)
			}
		})
	}
}
