package helm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

const (
	buildTimeout = 15 * time.Minute // helm from source on a 2-core machine, cold cache
	helmTimeout  = 2 * time.Minute
	sidecarWait  = 15 * time.Second
)

// suite is what TestMain prepares once for every test: the helm and sidecar
// binaries, and copies of the charts with their file:// dependencies built.
// It is written only before m.Run.
type suite struct {
	helm    string   // the helm binary built from helm.sh/helm/v3
	sidecar string   // the sidecar binary built from ../../cmd/sidecar
	charts  string   // holds hyvve-sidecar, hyvve-demo and billing (testdata)
	home    string   // HELM_*_HOME, so no user configuration is read or written
	repo    string   // the repository root
	flags   []string // the sidecar's settings, from its --help
}

var env suite

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tools/helm:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "hyvve-helm-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	if err := setup(tmp); err != nil {
		return 0, err
	}
	return m.Run(), nil
}

func setup(tmp string) error {
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	env.repo = filepath.Clean(filepath.Join(wd, "..", ".."))
	env.home = filepath.Join(tmp, "home")
	env.charts = filepath.Join(tmp, "charts")
	bin := filepath.Join(tmp, "bin")

	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	env.helm = os.Getenv("HYVVE_HELM") // a prebuilt helm, to skip the build
	if env.helm == "" {
		env.helm = filepath.Join(bin, "helm")
		if err := goBuild(ctx, wd, env.helm, "helm.sh/helm/v3/cmd/helm"); err != nil {
			return err
		}
	}
	env.sidecar = filepath.Join(bin, "sidecar")
	if err := goBuild(ctx, env.repo, env.sidecar, "./cmd/sidecar"); err != nil {
		return err
	}
	help, err := exec.CommandContext(ctx, env.sidecar, "--help").CombinedOutput()
	if err != nil {
		return fmt.Errorf("sidecar --help: %w\n%s", err, help)
	}
	for _, m := range flagRE.FindAllSubmatch(help, -1) {
		env.flags = append(env.flags, string(m[1]))
	}
	if len(env.flags) < 20 {
		return fmt.Errorf("sidecar --help lists %d flags, want the 20 and more of the README:\n%s", len(env.flags), help)
	}

	// Copy the charts (the demo's files/ are links into examples/) and the
	// app chart of testdata side by side, then build the dependencies.
	for _, c := range []struct{ from, to string }{
		{filepath.Join(env.repo, "charts", "hyvve-sidecar"), "hyvve-sidecar"},
		{filepath.Join(env.repo, "charts", "hyvve-demo"), "hyvve-demo"},
		{filepath.Join(wd, "testdata", "billing"), "billing"},
	} {
		if err := copyDir(c.from, filepath.Join(env.charts, c.to)); err != nil {
			return fmt.Errorf("copy %s: %w", c.from, err)
		}
	}
	for _, c := range []string{"hyvve-demo", "billing"} {
		if out, err := helm(ctx, "dependency", "update", "--skip-refresh", filepath.Join(env.charts, c)); err != nil {
			return fmt.Errorf("helm dependency update %s: %w\n%s", c, err, out)
		}
	}
	return nil
}

func goBuild(ctx context.Context, dir, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build %s in %s: %w\n%s", pkg, dir, err, b)
	}
	return nil
}

// copyDir copies a directory tree, following symbolic links to files.
func copyDir(from, to string) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(to, rel)
		if d.IsDir() {
			if d.Name() == "charts" && p != from { // a stale `helm dependency update`
				return filepath.SkipDir
			}
			return os.MkdirAll(dst, 0o755)
		}
		if d.Name() == "Chart.lock" {
			return nil
		}
		b, err := os.ReadFile(p) // follows a link
		if err != nil {
			return err
		}
		return os.WriteFile(dst, b, 0o644)
	})
}

// helm runs the helm binary with its homes in the suite's temp dir and
// returns stdout, or stderr and stdout with the error.
func helm(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, helmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.helm, args...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(env.home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(env.home, "config"),
		"HELM_DATA_HOME="+filepath.Join(env.home, "data"),
		"KUBECONFIG="+filepath.Join(env.home, "no-kubeconfig"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stderr.String() + stdout.String(), err
	}
	return stdout.String(), nil
}

// manifests are the decoded objects of one helm template, by name.
type manifests struct {
	configMaps  map[string]*corev1.ConfigMap
	secrets     map[string]*corev1.Secret
	services    map[string]*corev1.Service
	deployments map[string]*appsv1.Deployment
}

var (
	docSep = regexp.MustCompile(`(?m)^---\s*$`)
	flagRE = regexp.MustCompile(`(?m)^  --([a-z][a-z-]*)`)
)

// render runs helm template on a chart of the suite and decodes every
// manifest strictly: an unknown or misspelt field, a wrong type or a
// duplicate key fails the test.
func render(t *testing.T, chart string, args ...string) manifests {
	t.Helper()
	full := append([]string{"template", "rel", filepath.Join(env.charts, chart), "--namespace", "apps"}, args...)
	out, err := helm(t.Context(), full...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(full, " "), err, out)
	}
	m := manifests{
		configMaps:  map[string]*corev1.ConfigMap{},
		secrets:     map[string]*corev1.Secret{},
		services:    map[string]*corev1.Service{},
		deployments: map[string]*appsv1.Deployment{},
	}
	for _, doc := range docSep.Split(out, -1) {
		if isEmptyDoc(doc) {
			continue
		}
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("manifest is not YAML: %v\n%s", err, doc)
		}
		var name string
		var err error
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ConfigMap":
			o := &corev1.ConfigMap{}
			err, name = yaml.UnmarshalStrict([]byte(doc), o), o.Name
			m.configMaps[name] = o
		case "v1 Secret":
			o := &corev1.Secret{}
			err, name = yaml.UnmarshalStrict([]byte(doc), o), o.Name
			m.secrets[name] = o
		case "v1 Service":
			o := &corev1.Service{}
			err, name = yaml.UnmarshalStrict([]byte(doc), o), o.Name
			m.services[name] = o
		case "apps/v1 Deployment":
			o := &appsv1.Deployment{}
			err, name = yaml.UnmarshalStrict([]byte(doc), o), o.Name
			m.deployments[name] = o
		default:
			t.Fatalf("unexpected manifest %s %s:\n%s", tm.APIVersion, tm.Kind, doc)
		}
		if err != nil {
			t.Fatalf("%s does not decode strictly into k8s.io/api: %v\n%s", tm.Kind, err, doc)
		}
	}
	return m
}

func isEmptyDoc(doc string) bool {
	for line := range strings.SplitSeq(doc, "\n") {
		if s := strings.TrimSpace(line); s != "" && !strings.HasPrefix(s, "#") {
			return false
		}
	}
	return true
}

// sidecarWant is what one pod's sidecar must look like.
type sidecarWant struct {
	deployment string
	app        string // the app container
	native     bool
	port       int32
	socketDir  string // "" without socket
	configMap  string
	secret     string
	runAsUser  int64
	appURL     string
	group      string
}

// checkSidecarPod asserts the sidecar of w.deployment and returns its
// container and its decoded config file.
func checkSidecarPod(t *testing.T, m manifests, w sidecarWant) (corev1.Container, map[string]any) {
	t.Helper()
	d := m.deployments[w.deployment]
	if d == nil {
		t.Fatalf("no Deployment %s; got %v", w.deployment, keys(m.deployments))
	}
	pod := d.Spec.Template.Spec
	inInit := slices.IndexFunc(pod.InitContainers, byName("hyvve-sidecar"))
	inMain := slices.IndexFunc(pod.Containers, byName("hyvve-sidecar"))
	var sc corev1.Container
	switch {
	case w.native && inInit == 0 && inMain < 0:
		sc = pod.InitContainers[inInit]
		if p := sc.RestartPolicy; p == nil || *p != corev1.ContainerRestartPolicyAlways {
			t.Errorf("%s: native sidecar restartPolicy: got %s, want Always", w.deployment, show(p))
		}
	case !w.native && inMain >= 0 && inInit < 0:
		sc = pod.Containers[inMain]
		if sc.RestartPolicy != nil {
			t.Errorf("%s: sidecar container has restartPolicy %v, want none", w.deployment, *sc.RestartPolicy)
		}
	default:
		t.Fatalf("%s: sidecar at initContainers[%d] and containers[%d], want native=%v (first init container when native)",
			w.deployment, inInit, inMain, w.native)
	}
	ai := slices.IndexFunc(pod.Containers, byName(w.app))
	if ai < 0 {
		t.Fatalf("%s: no app container %s", w.deployment, w.app)
	}
	app := pod.Containers[ai]

	// Config file from the ConfigMap, found through the pod's volume.
	if got := strings.Join(sc.Args, " "); got != "--config /etc/hyvve/sidecar.yaml" {
		t.Errorf("%s: sidecar args: got %q, want --config /etc/hyvve/sidecar.yaml", w.deployment, got)
	}
	cv := volume(t, pod, "hyvve-config")
	if cv.ConfigMap == nil || cv.ConfigMap.Name != w.configMap {
		t.Fatalf("%s: hyvve-config volume: got %+v, want ConfigMap %s", w.deployment, cv.VolumeSource, w.configMap)
	}
	mountAt(t, w.deployment, sc, "hyvve-config", "/etc/hyvve")
	cm := m.configMaps[w.configMap]
	if cm == nil {
		t.Fatalf("no ConfigMap %s; got %v", w.configMap, keys(m.configMaps))
	}
	text := cm.Data["sidecar.yaml"]
	var cfg map[string]any
	if err := yaml.UnmarshalStrict([]byte(text), &cfg); err != nil {
		t.Fatalf("%s: sidecar.yaml is not YAML: %v\n%s", w.configMap, err, text)
	}
	for k := range cfg {
		if !isConfigKey(k) {
			t.Errorf("%s: sidecar.yaml key %q is not a sidecar setting", w.configMap, k)
		}
	}
	sum := sha256.Sum256([]byte(strings.TrimSuffix(text, "\n")))
	if got, want := d.Spec.Template.Annotations["checksum/"+strings.TrimPrefix(w.configMap, "rel-")], hex.EncodeToString(sum[:]); got != want {
		t.Errorf("%s: config checksum annotation: got %q, want %q (sha256 of sidecar.yaml)", w.deployment, got, want)
	}
	for k, want := range map[string]string{
		"listen": fmt.Sprintf("0.0.0.0:%d", w.port), "group": w.group, "app-url": w.appURL,
	} {
		if got, _ := cfg[k].(string); got != want {
			t.Errorf("%s: config %s: got %q, want %q", w.configMap, k, got, want)
		}
	}

	// Port and probes.
	if len(sc.Ports) != 1 || sc.Ports[0].Name != "hyvve" || sc.Ports[0].ContainerPort != w.port {
		t.Errorf("%s: sidecar ports: got %+v, want hyvve:%d", w.deployment, sc.Ports, w.port)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", sc.LivenessProbe, "/healthz"},
		{"readiness", sc.ReadinessProbe, "/readyz"},
		{"startup", sc.StartupProbe, "/healthz"},
	} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			t.Errorf("%s: %s probe: got %+v, want GET %s", w.deployment, p.name, p.probe, p.path)
			continue
		}
		if g := p.probe.HTTPGet; g.Path != p.path || g.Port.String() != "hyvve" {
			t.Errorf("%s: %s probe: got GET %s on port %s, want GET %s on port hyvve", w.deployment, p.name, g.Path, g.Port.String(), p.path)
		}
		if p.probe.PeriodSeconds < 1 || p.probe.FailureThreshold < 1 {
			t.Errorf("%s: %s probe: period %d, failure threshold %d", w.deployment, p.name, p.probe.PeriodSeconds, p.probe.FailureThreshold)
		}
	}

	// Security context of the container, and of the pod (fsGroup: the socket).
	sec := sc.SecurityContext
	switch {
	case sec == nil:
		t.Fatalf("%s: sidecar has no securityContext", w.deployment)
	case !isTrue(sec.RunAsNonRoot) || sec.RunAsUser == nil || *sec.RunAsUser != w.runAsUser:
		t.Errorf("%s: sidecar runAsNonRoot %s runAsUser %s, want true and %d", w.deployment, show(sec.RunAsNonRoot), show(sec.RunAsUser), w.runAsUser)
	case !isTrue(sec.ReadOnlyRootFilesystem):
		t.Errorf("%s: sidecar readOnlyRootFilesystem: got %s, want true", w.deployment, show(sec.ReadOnlyRootFilesystem))
	case sec.AllowPrivilegeEscalation == nil || *sec.AllowPrivilegeEscalation:
		t.Errorf("%s: sidecar allowPrivilegeEscalation: got %s, want false", w.deployment, show(sec.AllowPrivilegeEscalation))
	case isTrue(sec.Privileged):
		t.Errorf("%s: sidecar is privileged", w.deployment)
	case sec.Capabilities == nil || !slices.Equal(sec.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sec.Capabilities.Add) > 0:
		t.Errorf("%s: sidecar capabilities: got %+v, want drop [ALL], add none", w.deployment, sec.Capabilities)
	case sec.SeccompProfile == nil || sec.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("%s: sidecar seccompProfile: got %+v, want RuntimeDefault", w.deployment, sec.SeccompProfile)
	}
	if ps := pod.SecurityContext; ps == nil || ps.FSGroup == nil || *ps.FSGroup != w.runAsUser || !isTrue(ps.RunAsNonRoot) {
		t.Errorf("%s: pod securityContext: got %+v, want runAsNonRoot and fsGroup %d", w.deployment, ps, w.runAsUser)
	}
	if sc.Resources.Requests.Cpu().IsZero() || sc.Resources.Requests.Memory().IsZero() || sc.Resources.Limits.Memory().IsZero() {
		t.Errorf("%s: sidecar resources: got %+v, want cpu and memory requests and a memory limit", w.deployment, sc.Resources)
	}

	// The Secret: Redis URL required, tokens optional, in the sidecar; the
	// tokens the app needs in the app.
	for _, e := range []struct {
		c        corev1.Container
		name     string
		optional bool
	}{
		{sc, "HYVVE_API_TOKEN", true}, {sc, "HYVVE_ADMIN_TOKEN", true}, {sc, "HYVVE_APP_TOKEN", true},
		{app, "HYVVE_API_TOKEN", true}, {app, "HYVVE_APP_TOKEN", true},
	} {
		ref := secretRef(t, w.deployment, e.c, e.name)
		if ref.Name != w.secret || !isTrue(ref.Optional) {
			t.Errorf("%s: %s of %s: got secret %s optional %s, want %s optional", w.deployment, e.name, e.c.Name, ref.Name, show(ref.Optional), w.secret)
		}
	}

	// The socket: one emptyDir, mounted at the same place in both containers.
	wantURL := fmt.Sprintf("http://127.0.0.1:%d", w.port)
	hasSocket := slices.ContainsFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == "hyvve-socket" })
	if w.socketDir != "" {
		sv := volume(t, pod, "hyvve-socket")
		if sv.EmptyDir == nil || sv.EmptyDir.Medium != corev1.StorageMediumMemory {
			t.Errorf("%s: hyvve-socket volume: got %+v, want an emptyDir in memory", w.deployment, sv.VolumeSource)
		}
		mountAt(t, w.deployment, sc, "hyvve-socket", w.socketDir)
		mountAt(t, w.deployment, app, "hyvve-socket", w.socketDir)
		sock := w.socketDir + "/sidecar.sock"
		if got, _ := cfg["socket"].(string); got != sock {
			t.Errorf("%s: config socket: got %q, want %q", w.configMap, got, sock)
		}
		wantURL = "unix://" + sock
	} else if hasSocket || cfg["socket"] != nil {
		t.Errorf("%s: socket disabled, but the pod has a hyvve-socket volume (%v) or the config a socket (%v)", w.deployment, hasSocket, cfg["socket"])
	}
	if got := envValue(app, "HYVVE_SIDECAR_URL"); got != wantURL {
		t.Errorf("%s: app HYVVE_SIDECAR_URL: got %q, want %q", w.deployment, got, wantURL)
	}
	return sc, cfg
}

// Settings that never go into the ConfigMap: the file itself, and the
// secrets (from the Secret, through the environment).
var notInConfigMap = []string{"config", "redis-url", "api-token", "admin-token", "app-token"}

// Settings the chart does not offer (its schema refuses them under config):
// the chart runs the sidecar on Redis (nats-url, embedded-listen).
var notInChart = []string{"nats-url", "embedded-listen"}

// Settings the chart sets from its own values, not from config; redis-ca,
// redis-cert and redis-key through HYVVE_* variables, from redis.tls.
var chartManaged = []string{"listen", "socket", "data-dir", "app-url", "group", "source", "tenant", "tenants",
	"redis-ca", "redis-cert", "redis-key"}

// isConfigKey reports whether k may be a key of the rendered sidecar.yaml.
func isConfigKey(k string) bool {
	return k == "subscriptions" || (slices.Contains(env.flags, k) && !slices.Contains(notInConfigMap, k))
}

func byName(name string) func(corev1.Container) bool {
	return func(c corev1.Container) bool { return c.Name == name }
}

func isTrue(b *bool) bool { return b != nil && *b }

// show prints what a pointer field holds, or <unset>.
func show[T any](p *T) string {
	if p == nil {
		return "<unset>"
	}
	return fmt.Sprint(*p)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func volume(t *testing.T, pod corev1.PodSpec, name string) corev1.Volume {
	t.Helper()
	i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == name })
	if i < 0 {
		t.Fatalf("pod has no volume %s", name)
	}
	return pod.Volumes[i]
}

func mountAt(t *testing.T, where string, c corev1.Container, vol, path string) {
	t.Helper()
	i := slices.IndexFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.Name == vol })
	if i < 0 || c.VolumeMounts[i].MountPath != path {
		t.Errorf("%s: container %s mounts %s at %v, want %s", where, c.Name, vol, c.VolumeMounts, path)
	}
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	if i < 0 {
		return nil
	}
	return &c.Env[i]
}

func envValue(c corev1.Container, name string) string {
	if e := envVar(c, name); e != nil {
		return e.Value
	}
	return ""
}

func secretRef(t *testing.T, where string, c corev1.Container, name string) corev1.SecretKeySelector {
	t.Helper()
	e := envVar(c, name)
	if e == nil || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
		t.Fatalf("%s: container %s: %s is not from a Secret: %+v", where, c.Name, name, e)
	}
	return *e.ValueFrom.SecretKeyRef
}

func TestLint_charts_with_default_and_custom_values(t *testing.T) {
	cases := []struct {
		name  string
		chart string
		args  []string
	}{
		{"library with its required values", "hyvve-sidecar", []string{"--set", "group=billing", "--set", "secret.name=billing-hyvve"}},
		{"demo defaults", "hyvve-demo", nil},
		{"demo custom", "hyvve-demo", []string{"-f", "testdata/demo-custom.yaml"}},
		{"app chart using the library", "billing", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"lint", "--strict", filepath.Join(env.charts, tc.chart)}, tc.args...)
			if out, err := helm(t.Context(), args...); err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, out)
			}
		})
	}
}

func TestDemo_defaults_two_apps_each_with_its_sidecar_over_the_socket_and_a_redis(t *testing.T) {
	m := render(t, "hyvve-demo")
	for _, w := range []sidecarWant{
		{deployment: "rel-approvals", app: "approvals", configMap: "rel-approvals-sidecar", group: "approvals"},
		{deployment: "rel-policy", app: "policy", configMap: "rel-policy-sidecar", group: "policy"},
	} {
		w.port, w.socketDir, w.secret, w.runAsUser, w.appURL = 4750, "/run/hyvve", "rel-hyvve", 65532, "http://127.0.0.1:3000"
		sc, _ := checkSidecarPod(t, m, w)
		if ref := secretRef(t, w.deployment, sc, "HYVVE_REDIS_URL"); ref.Name != "rel-hyvve" || ref.Key != "redis-url" || isTrue(ref.Optional) {
			t.Errorf("%s: HYVVE_REDIS_URL: got %+v, want required key redis-url of rel-hyvve", w.deployment, ref)
		}
		if sc.Image != "hyvve/sidecar:0.1.0" {
			t.Errorf("%s: sidecar image: got %s, want hyvve/sidecar:0.1.0", w.deployment, sc.Image)
		}
		if n := len(m.deployments[w.deployment].Spec.Template.Spec.InitContainers); n != 0 {
			t.Errorf("%s: init containers: got %d, want 0", w.deployment, n)
		}
	}

	// The code of the example apps, byte for byte.
	for cm, files := range map[string][]string{
		"rel-approvals-code": {"node/approvals.js", "node/hyvve.js"},
		"rel-policy-code":    {"python/policy.py", "python/hyvve.py"},
	} {
		for _, f := range files {
			want, err := os.ReadFile(filepath.Join(env.repo, "examples", f))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.configMaps[cm].Data[filepath.Base(f)]; got != string(want) {
				t.Errorf("ConfigMap %s %s: differs from examples/%s (%d bytes, want %d)", cm, filepath.Base(f), f, len(got), len(want))
			}
		}
	}

	// The demo's Redis and the Secret pointing at it.
	if m.deployments["rel-redis"] == nil || m.services["rel-redis"] == nil {
		t.Errorf("redis: got deployments %v services %v, want rel-redis in both", keys(m.deployments), keys(m.services))
	}
	if s := m.secrets["rel-hyvve"]; s == nil || s.StringData["redis-url"] != "redis://rel-redis:6379/0" {
		t.Errorf("secret rel-hyvve: got %+v, want redis-url redis://rel-redis:6379/0", s)
	}
	if want := []string{"rel-approvals-code", "rel-approvals-sidecar", "rel-policy-code", "rel-policy-sidecar"}; !slices.Equal(keys(m.configMaps), want) {
		t.Errorf("ConfigMaps: got %v, want %v", keys(m.configMaps), want)
	}
}

func TestDemo_custom_native_sidecars_external_redis_and_tcp_only(t *testing.T) {
	m := render(t, "hyvve-demo", "-f", "testdata/demo-custom.yaml")
	if len(m.secrets) != 0 || m.deployments["rel-redis"] != nil || len(m.services) != 0 {
		t.Errorf("with redis.enabled=false and secret.create=false: got secrets %v deployments %v services %v, want no Secret, no Redis",
			keys(m.secrets), keys(m.deployments), keys(m.services))
	}
	if r := m.deployments["rel-approvals"].Spec.Replicas; r == nil || *r != 3 {
		t.Errorf("approvals replicas: got %s, want 3", show(r))
	}

	sc, cfg := checkSidecarPod(t, m, sidecarWant{
		deployment: "rel-approvals", app: "approvals", native: true, port: 4750, socketDir: "/run/hyvve",
		configMap: "rel-approvals-sidecar", secret: "platform-hyvve", runAsUser: 65532,
		appURL: "http://127.0.0.1:3000", group: "approvals",
	})
	if want := "registry.example.com/hyvve/sidecar@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; sc.Image != want {
		t.Errorf("approvals sidecar image: got %s, want %s", sc.Image, want)
	}
	if got := sc.Resources.Limits.Cpu().String(); got != "200m" {
		t.Errorf("approvals sidecar cpu limit: got %s, want 200m", got)
	}
	subs, _ := json.Marshal(cfg["subscriptions"])
	if string(subs) != `[{"path":"/events/approval","pattern":"approval.*"}]` || cfg["app-concurrency"] != float64(4) || cfg["log-level"] != "debug" {
		t.Errorf("approvals sidecar config: got %v, want the subscriptions, app-concurrency 4 and log-level debug of the values", cfg)
	}

	sc, _ = checkSidecarPod(t, m, sidecarWant{
		deployment: "rel-policy", app: "policy", native: true, port: 4800,
		configMap: "rel-policy-sidecar", secret: "platform-hyvve", runAsUser: 12345,
		appURL: "http://127.0.0.1:3000", group: "policy",
	})
	// The password comes from the Secret and is put into the URL by the kubelet.
	pw := slices.IndexFunc(sc.Env, func(e corev1.EnvVar) bool { return e.Name == "REDIS_PASSWORD" })
	url := slices.IndexFunc(sc.Env, func(e corev1.EnvVar) bool { return e.Name == "HYVVE_REDIS_URL" })
	if pw < 0 || url < pw {
		t.Fatalf("policy sidecar env: REDIS_PASSWORD at %d, HYVVE_REDIS_URL at %d, want the password first", pw, url)
	}
	if ref := secretRef(t, "rel-policy", sc, "REDIS_PASSWORD"); ref.Name != "platform-hyvve" || ref.Key != "redis-password" {
		t.Errorf("REDIS_PASSWORD: got %+v, want key redis-password of platform-hyvve", ref)
	}
	if got, want := sc.Env[url].Value, "redis://:$(REDIS_PASSWORD)@redis-master.data:6379/2"; got != want {
		t.Errorf("HYVVE_REDIS_URL: got %q, want %q", got, want)
	}
}

func TestAppChart_adds_the_sidecar_with_the_library_defaults(t *testing.T) {
	m := render(t, "billing")
	_, cfg := checkSidecarPod(t, m, sidecarWant{
		deployment: "rel-billing", app: "billing", port: 4750, socketDir: "/run/hyvve",
		configMap: "rel-hyvve-sidecar", secret: "billing-hyvve", runAsUser: 65532,
		appURL: "http://127.0.0.1:8080", group: "billing",
	})
	if got, _ := json.Marshal(cfg["tenants"]); string(got) != `["acme","globex"]` {
		t.Errorf("tenants: got %s, want [acme globex]", got)
	}
}

// TestRedisTLS_mounts_the_secret_in_the_sidecar_only renders redis.tls and
// checks the pod: a read-only Secret volume with only the keys in use, mounted
// in the sidecar container and nowhere else, and HYVVE_REDIS_CA, _CERT, _KEY
// naming its files (absent when the file is not used).
func TestRedisTLS_mounts_the_secret_in_the_sidecar_only(t *testing.T) {
	const dir = "/etc/hyvve-redis-tls"
	tls := "hyvve-sidecar.redis.tls."
	cases := []struct {
		name       string
		chart      string
		args       []string
		deployment string
		secret     string             // "" = no TLS volume
		items      []corev1.KeyToPath // the volume's items, in order
		env        map[string]string  // HYVVE_REDIS_CA, _CERT, _KEY; absent = not set
		mountPath  string
	}{
		{name: "default: no TLS files", chart: "billing", deployment: "rel-billing"},
		{
			name: "cert-manager Secret: CA and client certificate", chart: "billing", deployment: "rel-billing",
			args:   []string{"--set", tls + "secretName=billing-redis-tls"},
			secret: "billing-redis-tls", mountPath: dir,
			items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}, {Key: "tls.crt", Path: "tls.crt"}, {Key: "tls.key", Path: "tls.key"}},
			env: map[string]string{
				"HYVVE_REDIS_CA": dir + "/ca.crt", "HYVVE_REDIS_CERT": dir + "/tls.crt", "HYVVE_REDIS_KEY": dir + "/tls.key",
			},
		},
		{
			name: "CA only", chart: "billing", deployment: "rel-billing",
			args:   []string{"--set", tls + "secretName=redis-ca", "--set", tls + "certKey=", "--set", tls + "keyKey="},
			secret: "redis-ca", mountPath: dir,
			items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}},
			env:   map[string]string{"HYVVE_REDIS_CA": dir + "/ca.crt"},
		},
		{
			name: "client certificate only, own key names and path, native sidecar, templated name", chart: "hyvve-demo", deployment: "rel-approvals",
			args: []string{
				"--set", "approvals-sidecar.nativeSidecar=true",
				"--set-json", `approvals-sidecar.redis.tls.secretName="{{ .Release.Name }}-redis-client"`,
				"--set", "approvals-sidecar.redis.tls.caKey=",
				"--set", "approvals-sidecar.redis.tls.certKey=client.pem",
				"--set", "approvals-sidecar.redis.tls.keyKey=client-key.pem",
				"--set", "approvals-sidecar.redis.tls.mountPath=/tls",
			},
			secret: "rel-redis-client", mountPath: "/tls",
			items: []corev1.KeyToPath{{Key: "client.pem", Path: "tls.crt"}, {Key: "client-key.pem", Path: "tls.key"}},
			env:   map[string]string{"HYVVE_REDIS_CERT": "/tls/tls.crt", "HYVVE_REDIS_KEY": "/tls/tls.key"},
		},
		{name: "the other sidecar of the chart is untouched", chart: "hyvve-demo", deployment: "rel-policy",
			args: []string{"--set", "approvals-sidecar.redis.tls.secretName=x"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := render(t, tc.chart, tc.args...)
			d := m.deployments[tc.deployment]
			if d == nil {
				t.Fatalf("no Deployment %s; got %v", tc.deployment, keys(m.deployments))
			}
			pod := d.Spec.Template.Spec
			sc := sidecarOf(t, pod)

			for _, name := range []string{"HYVVE_REDIS_CA", "HYVVE_REDIS_CERT", "HYVVE_REDIS_KEY"} {
				want, wantSet := tc.env[name]
				switch e := envVar(sc, name); {
				case e == nil && wantSet:
					t.Errorf("sidecar env %s: unset, want %q", name, want)
				case e != nil && !wantSet:
					t.Errorf("sidecar env %s: got %+v, want unset", name, *e)
				case e != nil && (e.Value != want || e.ValueFrom != nil):
					t.Errorf("sidecar env %s: got %q (from %+v), want %q", name, e.Value, e.ValueFrom, want)
				}
			}

			vi := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == "hyvve-redis-tls" })
			if tc.secret == "" {
				if vi >= 0 {
					t.Errorf("pod volume hyvve-redis-tls: got %+v, want none", pod.Volumes[vi].VolumeSource)
				}
			} else {
				if vi < 0 {
					t.Fatalf("pod has no volume hyvve-redis-tls; got %v", pod.Volumes)
				}
				sv := pod.Volumes[vi].Secret
				if sv == nil || sv.SecretName != tc.secret {
					t.Fatalf("hyvve-redis-tls: got %+v, want Secret %s", pod.Volumes[vi].VolumeSource, tc.secret)
				}
				if !slices.Equal(sv.Items, tc.items) {
					t.Errorf("hyvve-redis-tls items: got %+v, want %+v", sv.Items, tc.items)
				}
				if sv.DefaultMode == nil || *sv.DefaultMode != 0o440 {
					t.Errorf("hyvve-redis-tls defaultMode: got %s, want 0440 (288)", show(sv.DefaultMode))
				}
				if isTrue(sv.Optional) {
					t.Errorf("hyvve-redis-tls: optional, want the pod to wait for the Secret")
				}
			}

			// Mounted read-only in the sidecar, in no other container.
			for _, c := range slices.Concat(pod.InitContainers, pod.Containers) {
				i := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.Name == "hyvve-redis-tls" })
				switch {
				case c.Name != sc.Name || tc.secret == "":
					if i >= 0 {
						t.Errorf("container %s mounts hyvve-redis-tls at %s, want it in the sidecar only", c.Name, c.VolumeMounts[i].MountPath)
					}
				case i < 0:
					t.Errorf("sidecar does not mount hyvve-redis-tls; got %+v", c.VolumeMounts)
				case c.VolumeMounts[i].MountPath != tc.mountPath || !c.VolumeMounts[i].ReadOnly:
					t.Errorf("sidecar mounts hyvve-redis-tls at %s read-only %v, want %s read-only", c.VolumeMounts[i].MountPath, c.VolumeMounts[i].ReadOnly, tc.mountPath)
				}
			}
		})
	}
}

// TestRedisTLS_refuses_values_that_cannot_work: helm template fails with a
// message naming the values, instead of a sidecar that exits at start.
func TestRedisTLS_refuses_values_that_cannot_work(t *testing.T) {
	tls := "hyvve-sidecar.redis.tls."
	cases := []struct {
		name string
		args []string
		want []string // all in helm's error
	}{
		{"certificate without key", []string{"--set", tls + "keyKey="},
			[]string{"hyvve-sidecar: redis.tls.certKey", "redis.tls.keyKey", "set both"}},
		{"key without certificate", []string{"--set", tls + "certKey=", "--set", tls + "caKey="},
			[]string{"hyvve-sidecar: redis.tls.certKey", "redis.tls.keyKey", "set both"}},
		{"no key at all", []string{"--set", tls + "caKey=", "--set", tls + "certKey=", "--set", tls + "keyKey="},
			[]string{"redis.tls.secretName is set", "nothing to mount"}},
		{"redis.url without TLS", []string{"--set", "hyvve-sidecar.redis.url=redis://redis:6379/0"},
			[]string{"redis.tls needs a rediss:// URL"}},
		{"mount path over the socket", []string{"--set", tls + "mountPath=/run/hyvve/tls"},
			[]string{"redis.tls.mountPath (/run/hyvve/tls) overlaps socket.dir (/run/hyvve)"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", "rel", filepath.Join(env.charts, "billing"), "--set", tls + "secretName=billing-redis-tls"}, tc.args...)
			out, err := helm(t.Context(), args...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("helm %s: got %v, want it to fail\n%s", strings.Join(tc.args, " "), err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("error does not say %q:\n%s", w, out)
				}
			}
		})
	}
}

// TestRedisTLS_rendered_env_and_files_start_the_sidecar writes the files a
// cert-manager Secret holds under the names the volume's items give them,
// runs the real sidecar with the rendered config and TLS variables (the
// mount path mapped to a temp dir) and a rediss:// URL, and checks that it
// starts with the three files in force: the variable names and the file
// layout are what the sidecar reads.
func TestRedisTLS_rendered_env_and_files_start_the_sidecar(t *testing.T) {
	const mountPath = "/etc/hyvve-redis-tls"
	m := render(t, "billing", "--set", "hyvve-sidecar.redis.tls.secretName=billing-redis-tls")
	pod := m.deployments["rel-billing"].Spec.Template.Spec
	sc := sidecarOf(t, pod)
	vol := volume(t, pod, "hyvve-redis-tls")
	if vol.Secret == nil {
		t.Fatalf("hyvve-redis-tls: got %+v, want a Secret volume", vol.VolumeSource)
	}

	dir := t.TempDir()
	secret := certManagerSecret(t) // the Secret's data by key
	for _, it := range vol.Secret.Items {
		if err := os.WriteFile(filepath.Join(dir, it.Path), secret[it.Key], 0o440); err != nil {
			t.Fatal(err)
		}
	}
	environ := []string{"HYVVE_REDIS_URL=rediss://127.0.0.1:1/0"}
	want := map[string]string{}
	for _, name := range []string{"HYVVE_REDIS_CA", "HYVVE_REDIS_CERT", "HYVVE_REDIS_KEY"} {
		v, ok := strings.CutPrefix(envValue(sc, name), mountPath+"/")
		if !ok {
			t.Fatalf("sidecar env %s: got %q, want a file under %s", name, envValue(sc, name), mountPath)
		}
		environ = append(environ, name+"="+filepath.Join(dir, v))
		want[strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(name, "HYVVE_"), "_", "-"))] = filepath.Join(dir, v)
	}
	effective := startSidecar(t, m.configMaps["rel-hyvve-sidecar"].Data["sidecar.yaml"], environ...)
	for k, w := range want {
		if got := fmt.Sprint(effective[k]); got != w {
			t.Errorf("effective %s: got %q, want %q", k, got, w)
		}
	}
}

// certManagerSecret returns the data of a kubernetes.io/tls Secret as
// cert-manager writes it: ca.crt (a fresh CA), tls.crt (a client
// certificate it signed) and tls.key (the certificate's PKCS #8 key).
func certManagerSecret(t *testing.T) map[string][]byte {
	t.Helper()
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey, clientKey := newKey(), newKey()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "hyvve test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	client := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "hyvve-sidecar"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	clientDER, err := x509.CreateCertificate(rand.Reader, client, ca, &clientKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(clientKey)
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{
		"ca.crt":  pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		"tls.crt": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: clientDER}),
		"tls.key": pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// sidecarOf returns the hyvve-sidecar container of the pod, native or not.
func sidecarOf(t *testing.T, pod corev1.PodSpec) corev1.Container {
	t.Helper()
	for _, cs := range [][]corev1.Container{pod.InitContainers, pod.Containers} {
		if i := slices.IndexFunc(cs, byName("hyvve-sidecar")); i >= 0 {
			return cs[i]
		}
	}
	t.Fatalf("pod has no hyvve-sidecar container")
	return corev1.Container{}
}

// TestSidecar_accepts_every_rendered_config starts the real sidecar with each
// rendered sidecar.yaml (only the listen address and socket, which name pod
// paths, are overridden by flags) and checks that it serves /healthz with
// the file's settings in force.
func TestSidecar_accepts_every_rendered_config(t *testing.T) {
	var cms []*corev1.ConfigMap
	for _, r := range []struct {
		chart string
		args  []string
	}{{"hyvve-demo", nil}, {"hyvve-demo", []string{"-f", "testdata/demo-custom.yaml"}}, {"billing", nil}} {
		m := render(t, r.chart, r.args...)
		for _, name := range keys(m.configMaps) {
			if _, ok := m.configMaps[name].Data["sidecar.yaml"]; ok {
				cms = append(cms, m.configMaps[name])
			}
		}
	}
	if len(cms) != 5 {
		t.Fatalf("sidecar ConfigMaps: got %d, want 5", len(cms))
	}
	for i, cm := range cms {
		t.Run(fmt.Sprintf("%d-%s", i, cm.Name), func(t *testing.T) {
			var cfg map[string]any
			if err := yaml.Unmarshal([]byte(cm.Data["sidecar.yaml"]), &cfg); err != nil {
				t.Fatal(err)
			}
			effective := startSidecar(t, cm.Data["sidecar.yaml"])
			for _, k := range []string{"group", "app-url", "tenant", "app-concurrency", "log-level", "shutdown-timeout", "strict-types"} {
				if want, ok := cfg[k]; ok && fmt.Sprint(effective[k]) != fmt.Sprint(want) {
					t.Errorf("effective %s: got %v, want %v from the file", k, effective[k], want)
				}
			}
		})
	}
}

// startSidecar runs the sidecar with the config text and the environment
// (KEY=value; HYVVE_REDIS_URL=redis://127.0.0.1:1/0 unless it is given),
// waits for /healthz, stops it with SIGTERM and returns the effective
// settings it logged.
func startSidecar(t *testing.T, config string, environ ...string) map[string]any {
	t.Helper()
	dir, err := os.MkdirTemp("", "hv") // short: a socket path has at most 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	file := filepath.Join(dir, "sidecar.yaml")
	if err := os.WriteFile(file, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	cmd := exec.Command(env.sidecar, "--config", file, "--listen", addr, "--socket", filepath.Join(dir, "s.sock"))
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HYVVE_") {
			base = append(base, kv)
		}
	}
	// As from the Secret; nothing listens there, so /readyz stays 503.
	if !slices.ContainsFunc(environ, func(kv string) bool { return strings.HasPrefix(kv, "HYVVE_REDIS_URL=") }) {
		base = append(base, "HYVVE_REDIS_URL=redis://127.0.0.1:1/0")
	}
	cmd.Env = append(base, environ...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = cmd.Process.Kill()
			<-done
		}
	})

	deadline := time.Now().Add(sidecarWait)
	for !healthy("http://" + addr + "/healthz") {
		select {
		case err := <-done:
			stopped = true
			t.Fatalf("sidecar exited (%v) with the rendered config:\n%s\noutput:\n%s", err, config, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("sidecar not healthy within %s:\n%s", sidecarWait, out.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		stopped = true
		if err != nil {
			t.Errorf("sidecar after SIGTERM: %v\n%s", err, out.String())
		}
	case <-time.After(sidecarWait):
		t.Fatalf("sidecar did not exit within %s of SIGTERM", sidecarWait)
	}
	return startingConfig(t, out.String())
}

func healthy(url string) bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

// startingConfig returns the "config" of the sidecar's "sidecar starting" log line.
func startingConfig(t *testing.T, logs string) map[string]any {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(logs))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		var line struct {
			Msg    string         `json:"msg"`
			Config map[string]any `json:"config"`
		}
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "sidecar starting" && line.Config != nil {
			return line.Config
		}
	}
	t.Fatalf("no \"sidecar starting\" log line with the config:\n%s", logs)
	return nil
}

func TestSchema_refuses_bad_values_at_template_time(t *testing.T) {
	cases := []struct {
		name  string
		chart string
		args  []string
		want  []string // all in helm's error
	}{
		{"native sidecar not a boolean", "hyvve-demo", []string{"--set-string", "approvals-sidecar.nativeSidecar=yes"}, []string{"approvals-sidecar", "'/nativeSidecar'"}},
		{"port out of range", "hyvve-demo", []string{"--set", "policy-sidecar.port=70000"}, []string{"policy-sidecar", "'/port'"}},
		{"relative socket dir", "hyvve-demo", []string{"--set", "approvals-sidecar.socket.dir=run/hyvve"}, []string{"'/socket/dir'"}},
		{"app url not http or unix", "hyvve-demo", []string{"--set", "approvals-sidecar.appUrl=ftp://x"}, []string{"'/appUrl'"}},
		{"no group", "billing", []string{"--set", "hyvve-sidecar.group="}, []string{"hyvve-sidecar", "'/group'"}},
		{"group with a space", "billing", []string{"--set", "hyvve-sidecar.group=my group"}, []string{"'/group'"}},
		{"no secret", "billing", []string{"--set", "hyvve-sidecar.secret.name="}, []string{"'/secret/name'"}},
		{"bad tenant", "billing", []string{"--set", "hyvve-sidecar.tenant=a}b"}, []string{"'/tenant'"}},
		{"bad subscription pattern", "billing", []string{"--set", "hyvve-sidecar.subscriptions[0].pattern=Approval.*,hyvve-sidecar.subscriptions[0].path=/x"}, []string{"'/subscriptions/0/pattern'"}},
		{"relative subscription path", "billing", []string{"--set", "hyvve-sidecar.subscriptions[0].pattern=a.b,hyvve-sidecar.subscriptions[0].path=events"}, []string{"'/subscriptions/0/path'"}},
		{"app concurrency 0", "billing", []string{"--set", "hyvve-sidecar.config.app-concurrency=0"}, []string{"'/config/app-concurrency'"}},
		{"duration without unit", "billing", []string{"--set", "hyvve-sidecar.config.app-timeout=10"}, []string{"'/config/app-timeout'"}},
		{"redis url in the ConfigMap", "billing", []string{"--set", "hyvve-sidecar.config.redis-url=redis://x"}, []string{"'/config'", "redis-url"}},
		{"unknown setting", "billing", []string{"--set", "hyvve-sidecar.config.retry-shedule=1m"}, []string{"'/config'", "retry-shedule"}},
		{"misspelt value", "billing", []string{"--set", "hyvve-sidecar.nativeSidcar=true"}, []string{"nativeSidcar"}},
		{"bad pull policy", "billing", []string{"--set", "hyvve-sidecar.image.pullPolicy=Sometimes"}, []string{"'/image/pullPolicy'"}},
		{"root user", "billing", []string{"--set", "hyvve-sidecar.securityContext.runAsUser=0"}, []string{"'/securityContext/runAsUser'"}},
		{"relative redis TLS mount path", "billing", []string{"--set", "hyvve-sidecar.redis.tls.mountPath=etc/tls"}, []string{"'/redis/tls/mountPath'"}},
		{"redis TLS mounted over the config", "billing", []string{"--set", "hyvve-sidecar.redis.tls.mountPath=/etc/hyvve/tls"}, []string{"'/redis/tls/mountPath'"}},
		{"redis TLS key name with a slash", "billing", []string{"--set", "hyvve-sidecar.redis.tls.caKey=ca/ca.crt"}, []string{"'/redis/tls/caKey'"}},
		{"misspelt redis TLS value", "billing", []string{"--set", "hyvve-sidecar.redis.tls.secret=x"}, []string{"secret"}},
		{"demo redis.enabled not a boolean", "hyvve-demo", []string{"--set-string", "redis.enabled=no"}, []string{"hyvve-demo", "'/redis/enabled'"}},
		{"demo external redis without a URL", "hyvve-demo", []string{"--set", "redis.enabled=false"}, []string{"'/secret/redisUrl'"}},
		{"demo negative replicas", "hyvve-demo", []string{"--set", "approvals.replicas=-1"}, []string{"'/approvals/replicas'"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"template", "rel", filepath.Join(env.charts, tc.chart)}, tc.args...)
			out, err := helm(t.Context(), args...)
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("helm %s: got %v, want it to fail on the schema\n%s", strings.Join(tc.args, " "), err, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("error does not name %s:\n%s", w, out)
				}
			}
			if !strings.Contains(out, "schema") {
				t.Errorf("error is not the schema's:\n%s", out)
			}
		})
	}
}

// TestSchema_allows_every_sidecar_setting_but_the_secrets keeps the chart in
// step with the sidecar: every setting of `sidecar --help` is either set by
// the chart, or allowed under config, or a secret that the schema refuses.
func TestSchema_allows_every_sidecar_setting_but_the_secrets(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(env.repo, "charts", "hyvve-sidecar", "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			Config struct {
				Properties map[string]json.RawMessage `json:"properties"`
			} `json:"config"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, f := range env.flags {
		if !slices.Contains(notInConfigMap, f) && !slices.Contains(chartManaged, f) && !slices.Contains(notInChart, f) {
			want = append(want, f)
		}
	}
	slices.Sort(want)
	if got := keys(schema.Properties.Config.Properties); !slices.Equal(got, want) {
		t.Errorf("config settings in values.schema.json:\ngot  %v\nwant %v (the sidecar's --help)", got, want)
	}
	for _, f := range chartManaged {
		if !slices.Contains(env.flags, f) {
			t.Errorf("the chart sets %s, which the sidecar no longer has", f)
		}
	}
}
