// Package helm owns the checks of the Helm charts in charts/: it pins the helm
// CLI (helm.sh/helm/v3, a tool of this module, kept out of the sidecar's
// go.mod) and its tests build it, lint and render both charts, and decode the
// manifests strictly into k8s.io/api types.
//
// Run from the repository root:
//
//	(cd tools/helm && go test -count=1 ./...)
//
// Build the CLI alone with:
//
//	(cd tools/helm && go build -o ../../bin/helm helm.sh/helm/v3/cmd/helm)
package helm
