package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hyvve/sidecar/internal/schema"
)

// genTS returns examples/node/events.d.ts: an interface per payload and per
// $defs type, the envelope, and a discriminated union of core events.
func genTS(docs []*schema.Doc) []byte {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("// %s\n", header)
	p(`//
// TypeScript declarations of the HYVVE core platform events (SPEC §6) and of
// the event envelope the sidecar pushes. Types only: import them with
// "import type { CoreEvent, HyvveEvent } from './events';" and narrow on type:
//
//   function handle(event: CoreEvent) {
//     switch (event.type) {
//       case 'approval.requested': console.log(event.data.approvalId); break;
//     }
//   }
//
// Data objects are open: a newer schema may add optional fields.

/** The event envelope the sidecar pushes to the app (SPEC §1). */
export interface HyvveEvent<T extends string = string, D = Record<string, unknown>> {
  /** Event id, a UUID v7 unless the publisher set one. */
  id: string;
  /** Lower-case dotted event type, e.g. "approval.requested". */
  type: T;
  /** The module that published the event. */
  source: string;
  /** RFC 3339 UTC time of publication, millisecond precision. */
  timestamp: string;
  /** Correlation id shared by the events of one flow. */
  correlationId: string;
  /** Tenant the event belongs to. */
  tenantId: string;
  /** User on whose behalf the event was published ("system" when none). */
  userId: string;
  /** Envelope version, "1.0". */
  version: string;
  /** The payload. */
  data: D;
  /** true when the event is re-delivered by a replay. */
  replay?: true;
  /** Stream id of the original event, on replays. */
  replayOf?: string;
  /** Id of the replay job, on replays. */
  replayId?: string;
  /** Consumer group the replay is limited to, on replays. */
  targetGroup?: string;
}
`)
	for _, nd := range defsOf(docs) {
		b.WriteString("\n")
		tsDoc(&b, "", sentence(nd.Node.Description)+" Declared in schemas/"+nd.Doc.File+".")
		writeInterface(&b, nd.Name, nd.Node)
	}
	for _, d := range docs {
		b.WriteString("\n")
		tsDoc(&b, "", "Data of "+d.Type+": "+sentence(d.Description))
		writeInterface(&b, typeName(d.Type), d.Root)
	}
	p("\n/** Every core event type. */\nexport type CoreEventType =\n")
	for i, d := range docs {
		end := ""
		if i == len(docs)-1 {
			end = ";"
		}
		p("  | %s%s\n", strconv.Quote(d.Type), end)
	}
	p("\n/** The data type of each core event type. */\nexport interface CoreEventData {\n")
	for _, d := range docs {
		p("  %s: %s;\n", strconv.Quote(d.Type), typeName(d.Type))
	}
	p("}\n\n")
	p("/** A core event: switching on its type narrows its data. */\n")
	p("export type CoreEvent = { [T in CoreEventType]: HyvveEvent<T, CoreEventData[T]> }[CoreEventType];\n")
	return []byte(b.String())
}

// writeInterface writes an object node as an exported interface.
func writeInterface(b *strings.Builder, name string, n *schema.Node) {
	fmt.Fprintf(b, "export interface %s {\n", name)
	for _, p := range n.Properties {
		tsDoc(b, "  ", sentence(p.Node.Description)+" "+fieldNote(p))
		opt := "?"
		if p.Required {
			opt = ""
		}
		fmt.Fprintf(b, "  %s%s: %s;\n", p.Name, opt, tsType(p.Node))
	}
	b.WriteString("}\n")
}

// tsDoc writes text as a JSDoc comment wrapped at 100 columns.
func tsDoc(b *strings.Builder, indent, text string) {
	lines := wrap(text, 92-len(indent))
	if len(lines) == 1 {
		fmt.Fprintf(b, "%s/** %s */\n", indent, lines[0])
		return
	}
	fmt.Fprintf(b, "%s/**\n", indent)
	for _, l := range lines {
		fmt.Fprintf(b, "%s * %s\n", indent, l)
	}
	fmt.Fprintf(b, "%s */\n", indent)
}

// tsType returns the TypeScript type of a node.
func tsType(n *schema.Node) string {
	switch n.Kind {
	case "string":
		if len(n.Enum) > 0 {
			q := make([]string, len(n.Enum))
			for i, e := range n.Enum {
				q[i] = strconv.Quote(e)
			}
			return strings.Join(q, " | ")
		}
		return "string"
	case "integer", "number":
		return "number"
	case "boolean":
		return "boolean"
	case "array":
		t := tsType(n.Items)
		if strings.Contains(t, "|") {
			t = "(" + t + ")"
		}
		return t + "[]"
	case "map":
		return "Record<string, " + tsType(n.Values) + ">"
	}
	return n.Ref
}
