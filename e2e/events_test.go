package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/hyvve/sidecar/internal/schema"
	"github.com/hyvve/sidecar/internal/testutil/apptest"
)

func TestCoreEvents_are_validated_against_their_schema(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		docs, err := schema.Docs()
		if err != nil {
			t.Fatal(err)
		}
		sc := startSidecar(t, b, nil)
		for _, d := range docs {
			t.Run(d.Type, func(t *testing.T) {
				var example map[string]any
				if err := json.Unmarshal(d.Examples[0], &example); err != nil {
					t.Fatal(err)
				}
				body := func(data map[string]any) string {
					b, _ := json.Marshal(map[string]any{"type": d.Type, "data": data})
					return string(b)
				}
				if a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", body(example), nil); a.Status != 202 {
					t.Errorf("valid example: got %d %s, want 202", a.Status, a.Raw)
				}
				var required *schema.Property
				for _, p := range d.Root.Properties {
					if p.Required {
						required = p
						break
					}
				}
				if required == nil {
					t.Fatalf("%s has no required field", d.Type)
				}
				missing := map[string]any{}
				for k, v := range example {
					if k != required.Name {
						missing[k] = v
					}
				}
				a := do(t, sc.Client(), "POST", sc.URL()+"/v1/events", body(missing), nil)
				if a.Status != 422 || a.errField("code") != "schema_violation" || a.errField("field") != "/"+required.Name {
					t.Errorf("without %s: got %d %s, want 422 schema_violation naming /%s", required.Name, a.Status, a.Raw, required.Name)
				}
				wrong := map[string]any{}
				for k, v := range example {
					wrong[k] = v
				}
				wrong[required.Name] = []int{1} // no core field is an array of numbers
				a = do(t, sc.Client(), "POST", sc.URL()+"/v1/events", body(wrong), nil)
				if a.Status != 422 || a.errField("field") != "/"+required.Name {
					t.Errorf("%s of the wrong type: got %d %s, want 422 naming /%s", required.Name, a.Status, a.Raw, required.Name)
				}
			})
		}
	})
}

func TestStrictTypes_refuses_types_without_a_schema(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		loose := startSidecar(t, b, nil)
		strict := startSidecar(t, b, nil, "--strict-types")
		custom := eventBody("crm.deal.won", "acme")
		if a := do(t, loose.Client(), "POST", loose.URL()+"/v1/events", custom, nil); a.Status != 202 {
			t.Errorf("without --strict-types: got %d %s, want 202", a.Status, a.Raw)
		}
		a := do(t, strict.Client(), "POST", strict.URL()+"/v1/events", custom, nil)
		if a.Status != 422 || a.errField("code") != "unknown_type" || a.errField("field") != "type" {
			t.Errorf("with --strict-types: got %d %s, want 422 unknown_type", a.Status, a.Raw)
		}
		core := `{"type":"user.joined","tenantId":"acme","data":{"userId":"u-1","email":"a@example.com"}}`
		if a := do(t, strict.Client(), "POST", strict.URL()+"/v1/events", core, nil); a.Status != 202 {
			t.Errorf("core event with --strict-types: got %d %s, want 202", a.Status, a.Raw)
		}
		batch := `{"events":[` + custom + `,` + core + `]}`
		a = do(t, strict.Client(), "POST", strict.URL()+"/v1/events/batch", batch, nil)
		res, _ := a.Body["results"].([]any)
		if a.Status != 202 || len(res) != 2 || res[0].(map[string]any)["error"] == nil || res[1].(map[string]any)["streamId"] == nil {
			t.Errorf("batch with --strict-types: got %d %s, want the custom type refused and the core one published", a.Status, a.Raw)
		}
	})
}

func TestCloudEvents_structured_and_binary_arrive_as_the_same_event(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "crm.**", Path: "/e"}))
		startSidecar(t, b, app)
		pub := startSidecar(t, b, nil)

		structured := `{"specversion":"1.0","id":"ce-1","type":"crm.deal.won","source":"/crm","time":"2026-11-26T10:00:00.123Z",
			"tenantid":"acme","correlationid":"corr-ce","userid":"u-9","datacontenttype":"application/json","data":{"dealId":"d-1"}}`
		a := do(t, pub.Client(), "POST", pub.URL()+"/v1/events", structured, map[string]string{"Content-Type": "application/cloudevents+json"})
		if a.Status != 202 || a.Body["id"] != "ce-1" || a.Body["correlationId"] != "corr-ce" {
			t.Fatalf("structured: got %d %s", a.Status, a.Raw)
		}
		a = do(t, pub.Client(), "POST", pub.URL()+"/v1/events", `{"dealId":"d-2"}`, map[string]string{
			"ce-specversion": "1.0", "ce-id": "ce-2", "ce-type": "crm.deal.won", "ce-source": "/crm",
			"ce-tenantid": "acme", "ce-correlationid": "corr-ce"})
		if a.Status != 202 || a.Body["id"] != "ce-2" {
			t.Fatalf("binary: got %d %s", a.Status, a.Raw)
		}
		app.WaitFor(t, 5*time.Second, "both CloudEvents", func(ps []apptest.Push) bool { return len(ps) == 2 })
		for _, p := range app.Received() {
			id := p.EventID
			if id != "ce-1" && id != "ce-2" {
				t.Errorf("push of unexpected event %q", id)
			}
			h := p.Header
			if h.Get("X-Event-Id") != id || h.Get("X-Event-Type") != "crm.deal.won" || h.Get("X-Tenant-Id") != "acme" || h.Get("X-Correlation-Id") != "corr-ce" {
				t.Errorf("push %s headers: id=%s type=%s tenant=%s corr=%s", id, h.Get("X-Event-Id"), h.Get("X-Event-Type"), h.Get("X-Tenant-Id"), h.Get("X-Correlation-Id"))
			}
			var ev map[string]any
			if err := json.Unmarshal(p.Body, &ev); err != nil || ev["id"] != id || ev["source"] != "/crm" || ev["tenantId"] != "acme" {
				t.Errorf("push %s body: %s (%v)", id, p.Body, err)
			}
		}
		// An invalid CloudEvent names the attribute.
		for _, tc := range []struct{ body, field string }{
			{`{"id":"x","type":"crm.deal.won","source":"/crm","tenantid":"acme"}`, "specversion"},
			{`{"specversion":"0.3","id":"x","type":"crm.deal.won","source":"/crm","tenantid":"acme"}`, "specversion"},
		} {
			a := do(t, pub.Client(), "POST", pub.URL()+"/v1/events", tc.body, map[string]string{"Content-Type": "application/cloudevents+json"})
			if a.Status != 400 || a.errField("field") != tc.field {
				t.Errorf("%s: got %d %s, want 400 naming %s", tc.body, a.Status, a.Raw, tc.field)
			}
		}
	})
}

func TestCloudEvents_push_format_sends_a_structured_CloudEvent(t *testing.T) {
	forEachStore(t, func(t *testing.T, b broker) {
		app := apptest.New(t, apptest.WithSubscriptions(apptest.Sub{Pattern: "**", Path: "/e"}))
		sc := startSidecar(t, b, app, "--push-format", "cloudevents")
		a := publish(t, sc, eventBody("approval.granted", "acme", "data", `{"approvalId":"a-1","decidedBy":"u-7"}`))
		app.WaitFor(t, 5*time.Second, "one push", func(ps []apptest.Push) bool { return len(ps) == 1 })
		p := app.Received()[0]
		if ct := p.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/cloudevents+json") {
			t.Errorf("Content-Type: got %q, want application/cloudevents+json", ct)
		}
		var ce map[string]any
		if err := json.Unmarshal(p.Body, &ce); err != nil {
			t.Fatalf("push body is not JSON: %v: %s", err, p.Body)
		}
		want := map[string]any{"specversion": "1.0", "id": a.Body["id"], "type": "approval.granted", "tenantid": "acme",
			"correlationid": a.Body["correlationId"], "datacontenttype": "application/json"}
		for k, w := range want {
			if ce[k] != w {
				t.Errorf("CloudEvent %s: got %v, want %v", k, ce[k], w)
			}
		}
		if d, _ := ce["data"].(map[string]any); d["approvalId"] != "a-1" {
			t.Errorf("CloudEvent data: got %v", ce["data"])
		}
		if p.Header.Get("X-Event-Id") != a.Body["id"] {
			t.Errorf("X-Event-Id is kept with CloudEvents pushes")
		}
	})
}
