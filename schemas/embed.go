// Package schemas holds the JSON Schemas (2020-12) of the core platform
// events' data (SPEC §6), one file per event type named
// <type>.schema.json. They are the single source of truth: the sidecar
// validates published data against them (internal/schema), and the Go types
// (pkg/events), docs/events.md and the Node and Python typings are generated
// from them (go generate ./...).
//
// The package only embeds the files; it has no behaviour of its own.
package schemas

import "embed"

// FS holds every *.schema.json file of this directory. It is read-only.
//
//go:embed *.schema.json
var FS embed.FS
