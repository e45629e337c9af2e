# syntax=docker/dockerfile:1
# The hyvve sidecar image: a static binary (CGO off) on distroless static, as non-root.
#
#   docker build -t hyvve/sidecar:0.1.0 --build-arg VERSION=0.1.0 .
#   docker run --rm -p 4750:4750 hyvve/sidecar:0.1.0 --listen 0.0.0.0:4750 --redis-url redis://host:6379/0
#
# Settings come from flags, HYVVE_* variables or a --config file (the Helm chart mounts one);
# the image sets none of them, so nothing here overrides the chart's config file.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=0.1.0-dev
ARG TARGETOS=linux
ARG TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/hyvve-sidecar ./cmd/sidecar

# distroless static: CA certificates (rediss://), tzdata, /etc/passwd with nonroot (65532); no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hyvve-sidecar /usr/local/bin/hyvve-sidecar
USER 65532:65532
WORKDIR /home/nonroot
EXPOSE 4750
ENTRYPOINT ["/usr/local/bin/hyvve-sidecar"]
