// Package gobuild compiles a main package of this module (or of one it
// requires) for black-box tests, once per test binary and package.
package gobuild

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// buildTimeout bounds one go build (a cold cache builds nats-server from source).
const buildTimeout = 10 * time.Minute

type result struct {
	once sync.Once
	path string
	err  error
}

// builds holds one result per (package, race) of this test binary; it is
// package-level so every test of a package shares the build.
var builds sync.Map // string → *result

// Binary compiles pkg (an import path or ./relative path inside the module
// holding the working directory) with `go build`, once per test binary, and
// returns the path of the binary, named name. With race it builds with -race.
// The binary lives in a directory under os.TempDir() named after the module
// root, so repeated runs reuse one file instead of leaking one per run; it is
// replaced atomically, so concurrent test binaries never see a partial file.
// Every caller gets the same error when the build fails. Safe for concurrent use.
func Binary(pkg, name string, race bool) (string, error) {
	v, _ := builds.LoadOrStore(fmt.Sprintf("%s race=%v", pkg, race), &result{})
	r := v.(*result)
	r.once.Do(func() { r.path, r.err = build(pkg, name, race) })
	return r.path, r.err
}

func build(pkg, name string, race bool) (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	root, err := ModuleRoot(wd)
	if err != nil {
		return "", err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("find go command: %w", err)
	}
	key := sha256.Sum256([]byte(fmt.Sprintf("%s race=%v", root, race)))
	dir := filepath.Join(os.TempDir(), "hyvve-gobuild-"+hex.EncodeToString(key[:6]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("binary dir: %w", err)
	}
	tmp, err := os.CreateTemp(dir, name+"-*.tmp")
	if err != nil {
		return "", fmt.Errorf("binary file: %w", err)
	}
	_ = tmp.Close()
	defer os.Remove(tmp.Name()) // no-op after the rename

	args := []string{"build", "-o", tmp.Name()}
	if race {
		args = append(args, "-race")
	}
	args = append(args, pkg)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goBin, args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s in %s: %w\n%s", strings.Join(args, " "), root, err, out)
	}
	bin := filepath.Join(dir, name)
	if err := os.Rename(tmp.Name(), bin); err != nil {
		return "", fmt.Errorf("install binary: %w", err)
	}
	return bin, nil
}

// ModuleRoot walks up from dir to the first directory holding a go.mod.
func ModuleRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod in %s or any parent", dir)
		}
		d = parent
	}
}
