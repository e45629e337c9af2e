package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hyvve/sidecar/internal/schema"
)

// repoRoot is the repository root seen from this package's directory.
const repoRoot = "../../.."

func mustGenerate(t *testing.T) map[string][]byte {
	t.Helper()
	docs, err := schema.Docs()
	if err != nil {
		t.Fatal(err)
	}
	files, err := generate(docs)
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestGenerated_files_match_the_schemas is the drift test of SPEC §6: every
// generated file must be exactly what the schemas produce now.
func TestGenerated_files_match_the_schemas(t *testing.T) {
	files := mustGenerate(t)
	for _, name := range []string{goPath, docsPath, tsPath, pythonPath} {
		want, ok := files[name]
		if !ok {
			t.Errorf("%s is not generated", name)
			continue
		}
		got, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("%s: %v; run `go generate ./...`", name, err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what schemas/ produce (%s); run `go generate ./...` and commit the result",
				name, firstDiff(got, want))
		}
	}
	if len(files) != 4 {
		t.Errorf("got %d generated files, want 4: add the new one to this test", len(files))
	}
}

// firstDiff describes the first line where got and want differ.
func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range min(len(g), len(w)) {
		if g[i] != w[i] {
			return fmt.Sprintf("line %d: the file has %q, the schemas give %q", i+1, g[i], w[i])
		}
	}
	return fmt.Sprintf("the file has %d lines, the schemas give %d", len(g), len(w))
}

func TestFirstDiff_names_the_line(t *testing.T) {
	if got, want := firstDiff([]byte("a\nb\nc"), []byte("a\nx\nc")), `line 2: the file has "b", the schemas give "x"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := firstDiff([]byte("a"), []byte("a\n")), "the file has 1 lines, the schemas give 2"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestGenerate_is_deterministic(t *testing.T) {
	a, b := mustGenerate(t), mustGenerate(t)
	for name := range a {
		if !bytes.Equal(a[name], b[name]) {
			t.Errorf("%s differs between two runs", name)
		}
	}
}

// TestGenerated_files_cover_every_field checks that each generated file
// names every event type and every field of every schema.
func TestGenerated_files_cover_every_field(t *testing.T) {
	docs, err := schema.Docs()
	if err != nil {
		t.Fatal(err)
	}
	files := mustGenerate(t)
	for _, d := range docs {
		for _, p := range d.Root.Properties {
			for name, want := range map[string]string{
				goPath:     "`json:\"" + p.Name,
				docsPath:   "| `" + p.Name + "` |",
				tsPath:     "  " + p.Name,
				pythonPath: "    " + p.Name + ": ",
			} {
				if !bytes.Contains(files[name], []byte(want)) {
					t.Errorf("%s: no %q for %s.%s", name, want, d.Type, p.Name)
				}
			}
		}
		for name, want := range map[string]string{goPath: `"` + d.Type + `"`, docsPath: "## " + d.Type,
			tsPath: `"` + d.Type + `"`, pythonPath: `"` + d.Type + `"`} {
			if !bytes.Contains(files[name], []byte(want)) {
				t.Errorf("%s: no %q", name, want)
			}
		}
	}
}

func TestNames(t *testing.T) {
	for in, want := range map[string]string{"approvalId": "ApprovalID", "parentRunId": "ParentRunID",
		"idea": "Idea", "identity": "Identity", "outputUrl": "OutputURL", "durationMs": "DurationMs",
		"id": "ID", "idSet": "IDSet", "userId2": "UserID2", "uriList": "URIList"} {
		if got := goFieldName(in); got != want {
			t.Errorf("goFieldName(%q) = %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{"approval.requested": "ApprovalRequested", "crm.deal-stage.changed": "CrmDealStageChanged",
		"agent.error": "AgentError", "a.b_c": "ABC"} {
		if got := typeName(in); got != want {
			t.Errorf("typeName(%q) = %q, want %q", in, got, want)
		}
	}
	if got, want := upperSnake("crm.deal-stage.changed"), "CRM_DEAL_STAGE_CHANGED"; got != want {
		t.Errorf("upperSnake = %q, want %q", got, want)
	}
}

func TestWrap(t *testing.T) {
	got := wrap("aaa bbb ccc dddddddddd e", 7)
	want := []string{"aaa bbb", "ccc", "dddddddddd", "e"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestGenerated_python_imports checks, when python3 is installed, that the
// module imports and that its TypedDicts mark exactly the schema's required
// keys as required.
func TestGenerated_python_imports(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	docs, err := schema.Docs()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "hyvve_events.py"), mustGenerate(t)[pythonPath], 0o644); err != nil {
		t.Fatal(err)
	}
	var script strings.Builder
	script.WriteString("import sys, hyvve_events as m\nassert sys.version_info >= (3, 11), sys.version\n")
	for _, d := range docs {
		var req, opt []string
		for _, p := range d.Root.Properties {
			if p.Required {
				req = append(req, fmt.Sprintf("%q", p.Name))
			} else {
				opt = append(opt, fmt.Sprintf("%q", p.Name))
			}
		}
		fmt.Fprintf(&script, "c = m.DATA_TYPES[%q]\nassert c.__required_keys__ == frozenset({%s}), (c, c.__required_keys__)\n",
			d.Type, strings.Join(req, ", "))
		fmt.Fprintf(&script, "assert c.__optional_keys__ == frozenset({%s}), (c, c.__optional_keys__)\n", strings.Join(opt, ", "))
		fmt.Fprintf(&script, "assert m.%s == %q\n", upperSnake(d.Type), d.Type)
	}
	script.WriteString("print('ok')\n")
	cmd := exec.Command(py, "-c", script.String())
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "ok" {
		t.Fatalf("python3: %v\n%s", err, out)
	}
}
