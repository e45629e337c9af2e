package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hyvve/sidecar/internal/schema"
)

// genPython returns examples/python/hyvve_events.py: a TypedDict per payload
// and per $defs type, the envelope, and the event type constants.
func genPython(docs []*schema.Doc) []byte {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("# %s\n", header)
	p(`"""Typed payloads of the HYVVE core platform events (SPEC §6), Python 3.11+.

TypedDicts for the data of each core event and for the envelope the sidecar
pushes; standard library only. Annotate handlers with them:

    from typing import cast
    from hyvve_events import APPROVAL_REQUESTED, ApprovalRequested, HyvveEvent

    def on_event(event: HyvveEvent) -> None:
        if event["type"] == APPROVAL_REQUESTED:
            data = cast(ApprovalRequested, event["data"])
            print(data["approvalId"])

Data objects are open: a newer schema may add optional fields.
"""

from types import MappingProxyType
from typing import Any, Final, Literal, Mapping, NotRequired, TypedDict

`)
	for _, d := range docs {
		p("%s: Final = %s\n", upperSnake(d.Type), strconv.Quote(d.Type))
		p("%s\n", pyDocstring("", "Type of "+d.Type+" events; data: "+typeName(d.Type)+"."))
	}
	p("\nEventType = Literal[\n")
	for _, d := range docs {
		p("    %s,\n", strconv.Quote(d.Type))
	}
	p("]\n%s\n", pyDocstring("", "Every core event type."))
	p(`

class HyvveEvent(TypedDict):
    """The event envelope the sidecar pushes to the app (SPEC §1)."""

    id: str
    """Event id, a UUID v7 unless the publisher set one."""
    type: str
    """Lower-case dotted event type, e.g. "approval.requested"."""
    source: str
    """The module that published the event."""
    timestamp: str
    """RFC 3339 UTC time of publication, millisecond precision."""
    correlationId: str
    """Correlation id shared by the events of one flow."""
    tenantId: str
    """Tenant the event belongs to."""
    userId: str
    """User on whose behalf the event was published ("system" when none)."""
    version: str
    """Envelope version, "1.0"."""
    data: dict[str, Any]
    """The payload; see DATA_TYPES for the TypedDict of each core event type."""
    replay: NotRequired[bool]
    """True when the event is re-delivered by a replay."""
    replayOf: NotRequired[str]
    """Stream id of the original event, on replays."""
    replayId: NotRequired[str]
    """Id of the replay job, on replays."""
    targetGroup: NotRequired[str]
    """Consumer group the replay is limited to, on replays."""
`)
	for _, nd := range defsOf(docs) {
		writeTypedDict(&b, nd.Name, sentence(nd.Node.Description)+" Declared in schemas/"+nd.Doc.File+".", nd.Node)
	}
	for _, d := range docs {
		writeTypedDict(&b, typeName(d.Type), "Data of "+d.Type+": "+sentence(d.Description), d.Root)
	}
	p("\n\nDATA_TYPES: Final[Mapping[str, type]] = MappingProxyType(\n    {\n")
	for _, d := range docs {
		p("        %s: %s,\n", upperSnake(d.Type), typeName(d.Type))
	}
	p("    }\n)\n%s\n", pyDocstring("", "The TypedDict of the data of each core event type."))
	return []byte(b.String())
}

// writeTypedDict writes an object node as a TypedDict class.
func writeTypedDict(b *strings.Builder, name, doc string, n *schema.Node) {
	fmt.Fprintf(b, "\n\nclass %s(TypedDict):\n%s\n\n", name, pyDocstring("    ", doc))
	for _, p := range n.Properties {
		t := pyType(p.Node)
		if !p.Required {
			t = "NotRequired[" + t + "]"
		}
		fmt.Fprintf(b, "    %s: %s\n%s\n", p.Name, t, pyDocstring("    ", sentence(p.Node.Description)+" "+fieldNote(p)))
	}
}

// pyDocstring returns text as a triple-quoted docstring wrapped at 88 columns.
func pyDocstring(indent, text string) string {
	text = strings.ReplaceAll(strings.ReplaceAll(text, `\`, `\\`), `"""`, `\"\"\"`)
	lines := wrap(text, 82-len(indent))
	if len(lines) == 1 {
		return indent + `"""` + lines[0] + `"""`
	}
	var sb strings.Builder
	sb.WriteString(indent + `"""` + lines[0] + "\n")
	for _, l := range lines[1:] {
		sb.WriteString(indent + l + "\n")
	}
	sb.WriteString(indent + `"""`)
	return sb.String()
}

// pyType returns the Python type annotation of a node.
func pyType(n *schema.Node) string {
	switch n.Kind {
	case "string":
		if len(n.Enum) > 0 {
			q := make([]string, len(n.Enum))
			for i, e := range n.Enum {
				q[i] = strconv.Quote(e)
			}
			return "Literal[" + strings.Join(q, ", ") + "]"
		}
		return "str"
	case "integer":
		return "int"
	case "number":
		return "float"
	case "boolean":
		return "bool"
	case "array":
		return "list[" + pyType(n.Items) + "]"
	case "map":
		return "dict[str, " + pyType(n.Values) + "]"
	}
	return n.Ref
}
