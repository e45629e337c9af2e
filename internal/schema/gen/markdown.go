package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hyvve/sidecar/internal/schema"
)

// genMarkdown returns docs/events.md: how validation works, every event with
// every field and an example, the language bindings and CloudEvents.
func genMarkdown(docs []*schema.Doc) ([]byte, error) {
	defs := map[string]*schema.Node{}
	for _, nd := range defsOf(docs) {
		defs[nd.Name] = nd.Node
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("<!-- %s -->\n\n", header)
	p(`# Core platform events

The core platform events are the events every module may rely on. Their payloads (the event's
` + "`data`" + `) are defined by one JSON Schema (draft 2020-12) per event in [` + "`schemas/`" + `](../schemas),
the single source of truth. From the schemas come, by ` + "`go generate ./...`" + `:

- the Go types in [` + "`pkg/events`" + `](../pkg/events/events.go), which other Go modules can import;
- this page;
- TypeScript declarations for Node apps: [` + "`examples/node/events.d.ts`" + `](../examples/node/events.d.ts);
- Python 3.11 TypedDicts: [` + "`examples/python/hyvve_events.py`" + `](../examples/python/hyvve_events.py).

A test fails when any of them differs from what the schemas produce.

| event | what happened | required fields |
|---|---|---|
`)
	for _, d := range docs {
		var req []string
		for _, pr := range d.Root.Properties {
			if pr.Required {
				req = append(req, "`"+pr.Name+"`")
			}
		}
		p("| [`%s`](#%s) | %s | %s |\n", d.Type, anchor(d.Type), cell(firstSentence(d.Description)), strings.Join(req, ", "))
	}
	p(`
## Validation on publish

When an app publishes one of these types (natively or as a CloudEvent, alone or in a batch), the
sidecar validates its ` + "`data`" + ` against the schema, compiled once at start, before anything is
written to Redis. Data that breaks the schema is refused with ` + "`422`" + ` and code
` + "`schema_violation`" + `; ` + "`field`" + ` is the JSON pointer, inside ` + "`data`" + `, of the first failing field
in the order the schema declares them (a field before its sub-fields):

` + "```json" + `
{"error":{"code":"schema_violation","field":"/approvalId","message":"approval.requested: data/approvalId is required"}}
` + "```" + `

- Checked: required fields, JSON types, lengths, ranges, patterns, and the formats ` + "`date-time`" + `
  (RFC 3339) and ` + "`email`" + `.
- **Data objects are open**: fields a schema does not declare are accepted and passed on, so a schema
  can gain optional fields without breaking sidecars and consumers that run an older version.
  Consumers ignore fields they do not know (the generated Go types do).
- Other event types are checked by the naming rules only. With ` + "`--strict-types`" + `, a type that is
  not listed here is refused with ` + "`422`" + ` and code ` + "`unknown_type`" + `.
- Validation costs a few microseconds per core event (` + "`BenchmarkValidate`" + ` in ` + "`internal/schema`" + `).
`)
	for _, d := range docs {
		p("\n## %s\n\n%s\n\n", d.Type, sentence(d.Description))
		p("Go: `events.%s` (constant `events.%s`) · TypeScript: `%s` · Python: `%s`\n\n",
			typeName(d.Type), "Type"+typeName(d.Type), typeName(d.Type), typeName(d.Type))
		p("| field | type | required | description |\n|---|---|---|---|\n")
		writeRows(&b, "", d.Root, defs)
		for i, ex := range d.Examples {
			title := "Example"
			if len(d.Examples) > 1 {
				title = fmt.Sprintf("Example %d", i+1)
			}
			body, err := indentJSON([]byte(`{"type":` + quoteJSON(d.Type) + `,"data":` + string(ex) + `}`))
			if err != nil {
				return nil, fmt.Errorf("%s example: %w", d.Type, err)
			}
			p("\n%s, as published (`POST /v1/events`):\n\n```json\n%s\n```\n", title, body)
		}
	}
	p("%s", cloudEventsDoc)
	p("%s", changingDoc)
	return []byte(b.String()), nil
}

// writeRows writes a table row per property of n, descending into $defs
// objects with dotted names (error.code) and into arrays of them (items[].x).
func writeRows(b *strings.Builder, prefix string, n *schema.Node, defs map[string]*schema.Node) {
	for _, pr := range n.Properties {
		req := "no"
		if pr.Required {
			req = "yes"
		}
		desc := sentence(pr.Node.Description)
		if cs := constraints(pr.Node); len(cs) > 0 {
			desc += " _" + strings.Join(cs, "; ") + "_"
		}
		fmt.Fprintf(b, "| `%s%s` | %s | %s | %s |\n", prefix, pr.Name, mdType(pr.Node), req, cell(desc))
		switch {
		case pr.Node.Kind == "ref":
			writeRows(b, prefix+pr.Name+".", defs[pr.Node.Ref], defs)
		case pr.Node.Kind == "array" && pr.Node.Items.Kind == "ref":
			writeRows(b, prefix+pr.Name+"[].", defs[pr.Node.Items.Ref], defs)
		}
	}
}

// mdType names the JSON type of a node for the docs.
func mdType(n *schema.Node) string {
	switch n.Kind {
	case "array":
		return "array of " + mdType(n.Items)
	case "map":
		return "object of " + mdType(n.Values)
	case "ref":
		return "object (" + n.Ref + ")"
	case "string":
		if n.Format != "" {
			return "string (" + n.Format + ")"
		}
	}
	return n.Kind
}

// cell escapes text for a Markdown table cell.
func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", `\|`), "\n", " ")
}

// anchor returns the GitHub heading anchor of an event type.
func anchor(typ string) string {
	return strings.NewReplacer(".", "", " ", "-").Replace(strings.ToLower(typ))
}

// firstSentence returns the text up to and including the first ". ".
func firstSentence(s string) string {
	if i := strings.Index(s, ". "); i >= 0 {
		return s[:i+1]
	}
	return sentence(s)
}

func indentJSON(raw []byte) (string, error) {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return "", err
	}
	return buf.String(), nil
}

func quoteJSON(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}

const cloudEventsDoc = `
## CloudEvents 1.0

` + "`POST /v1/events`" + ` also accepts a [CloudEvent 1.0](https://github.com/cloudevents/spec/blob/v1.0.2/cloudevents/spec.md),
mapped onto the same event (and then filled, validated and stored exactly like a native one):

- **structured mode**: ` + "`Content-Type: application/cloudevents+json`" + `, the body is the CloudEvent;
- **binary mode**: the attributes are ` + "`ce-*`" + ` headers (` + "`ce-specversion: 1.0`" + `, ` + "`ce-id`" + `, …),
  ` + "`Content-Type`" + ` is the data's content type and the body is ` + "`data`" + `. Header values are
  percent-decoded, as the CloudEvents HTTP binding says.

| CloudEvents attribute | event field | rule |
|---|---|---|
| ` + "`specversion`" + ` | — | required, ` + "`\"1.0\"`" + ` (else 400 ` + "`missing_field`" + ` / ` + "`invalid_field`" + ` naming ` + "`specversion`" + `) |
| ` + "`id`" + `, ` + "`source`" + `, ` + "`type`" + ` | ` + "`id`, `source`, `type`" + ` | required by CloudEvents (400 ` + "`missing_field`" + `), then the event rules |
| ` + "`time`" + ` | ` + "`timestamp`" + ` | optional; now when absent |
| ` + "`datacontenttype`" + ` | — | optional; must be ` + "`application/json`" + ` (parameters such as ` + "`charset`" + ` allowed) |
| ` + "`data`" + ` | ` + "`data`" + ` | a JSON object; absent or null means ` + "`{}`" + `; ` + "`data_base64`" + ` is refused |
| ` + "`tenantid`" + ` (extension) | ` + "`tenantId`" + ` | else ` + "`X-Tenant-Id`" + `, else ` + "`--tenant`" + ` |
| ` + "`correlationid`" + ` (extension) | ` + "`correlationId`" + ` | else ` + "`X-Correlation-Id`" + `, else a new UUID |
| ` + "`userid`" + ` (extension) | ` + "`userId`" + ` | else ` + "`X-User-Id`" + `, else ` + "`system`" + ` |
| ` + "`hyvveversion`" + ` (extension) | ` + "`version`" + ` | else ` + "`1.0`" + ` |

- Other attributes (` + "`subject`" + `, ` + "`dataschema`" + `) and **unknown extensions are ignored**, as
  CloudEvents allows any extension. An attribute name must however be lower-case letters and digits
  (a CloudEvents rule), so a misspelt ` + "`tenantId`" + ` is refused (400 ` + "`unknown_field`" + `) instead of the
  event silently landing in the default tenant.
- ` + "`hyvvereplay`" + `, ` + "`hyvvereplayof`" + `, ` + "`hyvvereplayid`" + ` and ` + "`hyvvetargetgroup`" + ` are set only by the
  sidecar (400 ` + "`reserved_field`" + `), like their native counterparts.
- Errors name the CloudEvents attribute (` + "`time`" + `, not ` + "`timestamp`" + `).

` + "```sh" + `
# structured
curl -s localhost:4750/v1/events -H 'Content-Type: application/cloudevents+json' -d '{
  "specversion":"1.0","id":"ev-1","source":"billing","type":"approval.granted",
  "tenantid":"acme","correlationid":"order-42",
  "data":{"approvalId":"apr-7f3c","decidedBy":"u-7"}}'

# binary
curl -s localhost:4750/v1/events -H 'Content-Type: application/json' \
  -H 'ce-specversion: 1.0' -H 'ce-id: ev-2' -H 'ce-source: billing' -H 'ce-type: approval.granted' \
  -H 'ce-tenantid: acme' -d '{"approvalId":"apr-7f3c","decidedBy":"u-7"}'
` + "```" + `

**Push as CloudEvents.** With ` + "`--push-format cloudevents`" + ` the sidecar pushes each event to the app as
a structured CloudEvent (` + "`Content-Type: application/cloudevents+json`" + `) instead of the native
body: ` + "`specversion`" + ` ` + "`1.0`" + `, ` + "`id`" + `, ` + "`source`" + `, ` + "`type`" + `, ` + "`time`" + `,
` + "`datacontenttype: application/json`" + `, the extensions ` + "`tenantid`" + `, ` + "`correlationid`" + `, ` + "`userid`" + `,
` + "`hyvveversion`" + `, on replays ` + "`hyvvereplay`" + ` (true), ` + "`hyvvereplayof`" + `, ` + "`hyvvereplayid`" + ` and
` + "`hyvvetargetgroup`" + `, then ` + "`data`" + `. The push headers (` + "`X-Event-Id`" + `, ` + "`traceparent`" + `, …) are the
same in both formats.
`

const changingDoc = `
## Changing a schema

1. Edit ` + "`schemas/<type>.schema.json`" + ` (a new core event is a new file). Every field needs a
   ` + "`description`" + ` and each schema at least one entry in ` + "`examples`" + `; the generators understand
   ` + "`type`" + ` (one name), ` + "`properties`" + `, ` + "`required`" + `, ` + "`$ref`" + ` to the file's ` + "`$defs`" + `,
   ` + "`items`" + `, ` + "`additionalProperties`" + ` (for maps, never beside ` + "`properties`" + `), ` + "`enum`" + `,
   ` + "`format`" + ` (` + "`date-time`" + `, ` + "`email`" + `), ` + "`pattern`" + `, and the length, range and size keywords;
   anything else fails the generator rather than being dropped.
2. Run ` + "`go generate ./...`" + ` and commit the regenerated files with the schema.
3. ` + "`go test ./internal/schema/... ./pkg/events/...`" + ` checks that every example validates and
   round-trips through the Go type.

Keep changes compatible: add optional fields only. Making a field required, removing, renaming or
tightening one breaks publishers and sidecars that run the previous version; publish a new event
type instead.
`
