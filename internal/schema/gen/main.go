// Command gen writes the files generated from the core event schemas in
// schemas/ (SPEC §6): the Go types in pkg/events, docs/events.md, the
// TypeScript declarations of examples/node and the Python TypedDicts of
// examples/python. It is run by go generate (see internal/schema):
//
//	go generate ./...
//
// Output depends only on the schemas, so running it twice changes nothing;
// the drift test of this package fails when a generated file is stale.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/hyvve/sidecar/internal/schema"
)

func main() {
	root := flag.String("root", ".", "repository root to write the generated files under")
	flag.Parse()
	if err := run(*root); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

// run generates every file and writes those whose content changed.
func run(root string) error {
	docs, err := schema.Docs()
	if err != nil {
		return err
	}
	files, err := generate(docs)
	if err != nil {
		return err
	}
	for _, name := range sortedKeys(files) {
		path := filepath.Join(root, filepath.FromSlash(name))
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, files[name]) {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := os.WriteFile(path, files[name], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
		fmt.Fprintln(os.Stderr, "gen: wrote", name)
	}
	return nil
}

// Paths of the generated files, relative to the repository root.
const (
	goPath     = "pkg/events/events.go"
	docsPath   = "docs/events.md"
	tsPath     = "examples/node/events.d.ts"
	pythonPath = "examples/python/hyvve_events.py"
)

// generate returns the content of every generated file by path.
func generate(docs []*schema.Doc) (map[string][]byte, error) {
	goSrc, err := genGo(docs)
	if err != nil {
		return nil, err
	}
	md, err := genMarkdown(docs)
	if err != nil {
		return nil, err
	}
	return map[string][]byte{
		goPath:     goSrc,
		docsPath:   md,
		tsPath:     genTS(docs),
		pythonPath: genPython(docs),
	}, nil
}

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
