package gobuild

import (
	"os"
	"path/filepath"
	"testing"
)

func TestModuleRoot(t *testing.T) {
	root := t.TempDir()
	deep := filepath.Join(root, "internal", "a", "b")
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		dir     string
		want    string
		wantErr bool
	}{
		{name: "at root", dir: root, want: root},
		{name: "nested", dir: deep, want: root},
		{name: "no module", dir: "/", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ModuleRoot(tt.dir)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("ModuleRoot(%q) = %q, %v; want %q, error=%v", tt.dir, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
