package config

import (
	"io"
	"strings"
)

const usageWidth = 80

// Usage writes the --help text to w: what the sidecar does, where settings
// come from and in which order, and every flag with its environment
// variable, its default and what it does. Write errors are ignored, as
// for flag.PrintDefaults.
func Usage(w io.Writer) {
	var b strings.Builder
	b.WriteString("Usage: sidecar [flags]\n       sidecar version\n\n")
	wrap(&b, "", "hyvve-sidecar runs beside one app and is its only link to the platform's event bus. "+
		"The app publishes events to the sidecar over localhost HTTP or a Unix socket (POST /v1/events); "+
		"the sidecar fills in and validates them and appends them to Redis Streams, one stream per tenant. "+
		"It reads the events the app subscribed to through a consumer group and pushes them to the app "+
		"over HTTP, retrying failed pushes on a schedule and dead-lettering those that keep failing. "+
		"An event is acknowledged only after the app answered 2xx or after it was dead-lettered, "+
		"so none is lost.")
	b.WriteString("\n")
	wrap(&b, "", "Settings come from, in increasing order of precedence: built-in defaults, the YAML file "+
		"named by --config or HYVVE_CONFIG, HYVVE_* environment variables, and flags. "+
		"Each flag is also an environment variable, HYVVE_ and its name in upper snake case "+
		"(--redis-url is HYVVE_REDIS_URL), and a key of the YAML file (redis-url:). "+
		"An empty variable counts as unset. Lists are comma-separated in flags and variables, "+
		"and a YAML list or a comma-separated string in the file. "+
		"Booleans: --redis-cluster or --redis-cluster=false; true, false, 1 or 0 in variables. "+
		"Durations look like 500ms, 10s or 1h30m. "+
		"A bad setting stops the sidecar at start with one line naming its flag.")
	b.WriteString("\n")
	wrap(&b, "", "The YAML file may also list subscriptions, used together with those the app serves "+
		"at GET {app-url}/hyvve/subscriptions (quote a pattern that starts with *):")
	b.WriteString("\n    subscriptions:\n      - pattern: \"approval.*\"\n        path: /events/approval\n\n")
	b.WriteString("Flags:\n")
	for _, s := range allSettings() {
		b.WriteString("  --" + s.name)
		if s.kind != kindBool {
			b.WriteString(" " + s.arg)
		}
		b.WriteString("\n")
		wrap(&b, "        ", s.help)
		wrap(&b, "        ", "env "+envName(s.name)+", default: "+defaultDoc(s))
	}
	_, _ = io.WriteString(w, b.String())
}

func defaultDoc(s setting) string {
	switch {
	case s.defDoc != "":
		return s.defDoc
	case s.def != "":
		return s.def
	}
	return "none"
}

// wrap writes text as lines of at most usageWidth columns, each starting
// with indent; a word longer than a line gets a line of its own.
func wrap(b *strings.Builder, indent, text string) {
	col := 0
	for _, word := range strings.Fields(text) {
		switch {
		case col == 0:
			b.WriteString(indent)
			col = len(indent)
		case col+1+len(word) > usageWidth:
			b.WriteString("\n" + indent)
			col = len(indent)
		default:
			b.WriteByte(' ')
			col++
		}
		b.WriteString(word)
		col += len(word)
	}
	b.WriteString("\n")
}
