{{/*
Named templates of the hyvve sidecar. Every template takes one dict:

  root  the calling chart's context ($), required
  key   the key of the sidecar's values in root.Values: the dependency's name
        ("hyvve-sidecar", the default) or its alias

In a pod template of the app's chart (docs/helm.md has the whole example):

  {{- $hyvve := dict "root" $ }}
  metadata:
    annotations: {{- include "hyvve-sidecar.podAnnotations" $hyvve | nindent 8 }}
  spec:
    securityContext: {{- include "hyvve-sidecar.podSecurityContext" $hyvve | nindent 6 }}
    {{- with include "hyvve-sidecar.initContainers" $hyvve }}
    initContainers: {{- . | nindent 6 }}
    {{- end }}
    containers:
      - name: app
        env: {{- include "hyvve-sidecar.appEnv" $hyvve | nindent 10 }}
        volumeMounts: {{- include "hyvve-sidecar.appVolumeMounts" $hyvve | nindent 10 }}
      {{- include "hyvve-sidecar.containers" $hyvve | nindent 6 }}
    volumes: {{- include "hyvve-sidecar.volumes" $hyvve | nindent 6 }}

and, as its own manifest: {{ include "hyvve-sidecar.configMap" (dict "root" $) }}
*/}}

{{/* hyvve-sidecar.v: the sidecar's values as JSON (internal). */}}
{{- define "hyvve-sidecar.v" -}}
{{- $key := .key | default "hyvve-sidecar" -}}
{{- if not (hasKey .root.Values $key) -}}
{{- fail (printf "hyvve-sidecar: no values under %q; add the hyvve-sidecar chart as a dependency (with alias %q) or pass the right key" $key $key) -}}
{{- end -}}
{{- index .root.Values $key | toJson -}}
{{- end -}}

{{/* hyvve-sidecar.fullname: the name of the sidecar's ConfigMap: <release>-<key>. */}}
{{- define "hyvve-sidecar.fullname" -}}
{{- printf "%s-%s" .root.Release.Name (.key | default "hyvve-sidecar") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* hyvve-sidecar.socketPath: the Unix socket's path in both containers. */}}
{{- define "hyvve-sidecar.socketPath" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
{{- printf "%s/sidecar.sock" (trimSuffix "/" $v.socket.dir) -}}
{{- end -}}

{{/* hyvve-sidecar.url: how the app reaches the sidecar (HYVVE_SIDECAR_URL). */}}
{{- define "hyvve-sidecar.url" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
{{- if $v.socket.enabled -}}
unix://{{ include "hyvve-sidecar.socketPath" . }}
{{- else -}}
http://127.0.0.1:{{ int $v.port }}
{{- end -}}
{{- end -}}

{{/* hyvve-sidecar.labels: labels of the ConfigMap. */}}
{{- define "hyvve-sidecar.labels" -}}
app.kubernetes.io/name: hyvve-sidecar
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/component: {{ .key | default "hyvve-sidecar" | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service | quote }}
{{- end -}}

{{/*
hyvve-sidecar.config: the sidecar's YAML config file. Keys are the flag names, plus
subscriptions; the Redis URL and the tokens come from the Secret through the environment,
which the sidecar reads over the file.
*/}}
{{- define "hyvve-sidecar.config" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
{{- $c := dict "listen" (printf "0.0.0.0:%d" (int $v.port)) "group" $v.group "data-dir" "/var/lib/hyvve" -}}
{{- if $v.socket.enabled }}{{ $_ := set $c "socket" (include "hyvve-sidecar.socketPath" .) }}{{ end -}}
{{- with $v.appUrl }}{{ $_ := set $c "app-url" (tpl . $.root) }}{{ end -}}
{{- with $v.source }}{{ $_ := set $c "source" . }}{{ end -}}
{{- with $v.tenant }}{{ $_ := set $c "tenant" . }}{{ end -}}
{{- with $v.tenants }}{{ $_ := set $c "tenants" . }}{{ end -}}
{{- range $k, $val := $v.config }}{{ $_ := set $c $k $val }}{{ end -}}
{{- with $v.subscriptions }}{{ $_ := set $c "subscriptions" . }}{{ end -}}
{{- toYaml $c -}}
{{- end -}}

{{/* hyvve-sidecar.configMap: the ConfigMap manifest holding sidecar.yaml. */}}
{{- define "hyvve-sidecar.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "hyvve-sidecar.fullname" . }}
  labels:
    {{- include "hyvve-sidecar.labels" . | nindent 4 }}
data:
  sidecar.yaml: |
    {{- include "hyvve-sidecar.config" . | nindent 4 }}
{{- end -}}

{{/* hyvve-sidecar.podAnnotations: restarts the pod when the sidecar's config changes. */}}
{{- define "hyvve-sidecar.podAnnotations" -}}
checksum/{{ .key | default "hyvve-sidecar" }}: {{ include "hyvve-sidecar.config" . | sha256sum }}
{{- end -}}

{{/*
hyvve-sidecar.podSecurityContext: the pod-level settings the socket needs (fsGroup: the
socket's directory belongs to it and every container is in it), non-root and the default
seccomp profile. Put your own pod settings next to it.
*/}}
{{- define "hyvve-sidecar.podSecurityContext" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
runAsNonRoot: true
fsGroup: {{ int $v.securityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* hyvve-sidecar.image: repository:tag or repository@digest. */}}
{{- define "hyvve-sidecar.image" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
{{- if $v.image.digest -}}
{{ $v.image.repository }}@{{ $v.image.digest }}
{{- else -}}
{{ $v.image.repository }}:{{ $v.image.tag | default "0.1.0" }}
{{- end -}}
{{- end -}}

{{/* hyvve-sidecar.secretEnv: one env entry from the Secret (internal). */}}
{{- define "hyvve-sidecar.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .secret | quote }}
      key: {{ .secretKey | quote }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/*
hyvve-sidecar.redisTLS: the Redis TLS files as JSON (internal): {} without redis.tls.secretName;
else secret (the Secret's name), mountPath, items (the Secret's keys used, as the fixed file
names ca.crt, tls.crt, tls.key) and env (HYVVE_REDIS_CA, _CERT, _KEY: the files' paths). Fails,
naming the values, on settings that cannot work: a certificate without its key or the reverse,
no key at all, a redis.url that is not rediss://, a mountPath over the socket's directory.
*/}}
{{- define "hyvve-sidecar.redisTLS" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
{{- $key := .key | default "hyvve-sidecar" -}}
{{- $t := $v.redis.tls | default dict -}}
{{- if not $t.secretName -}}
{}
{{- else -}}
{{- if ne (empty $t.certKey) (empty $t.keyKey) -}}
{{- fail (printf "%s: redis.tls.certKey (%q) and redis.tls.keyKey (%q): set both (the client certificate and its private key) or neither" $key ($t.certKey | default "") ($t.keyKey | default "")) -}}
{{- end -}}
{{- if and (empty $t.caKey) (empty $t.certKey) -}}
{{- fail (printf "%s: redis.tls.secretName is set, but redis.tls.caKey, certKey and keyKey are all empty: nothing to mount" $key) -}}
{{- end -}}
{{- if and $v.redis.url (not (hasPrefix "rediss://" (tpl $v.redis.url .root))) -}}
{{- fail (printf "%s: redis.tls needs a rediss:// URL, but redis.url is not rediss://" $key) -}}
{{- end -}}
{{- $dir := $t.mountPath -}}
{{- $sock := trimSuffix "/" $v.socket.dir -}}
{{- if and $v.socket.enabled (or (eq $dir $sock) (hasPrefix (printf "%s/" $sock) $dir) (hasPrefix (printf "%s/" $dir) $sock)) -}}
{{- fail (printf "%s: redis.tls.mountPath (%s) overlaps socket.dir (%s): use another directory" $key $dir $sock) -}}
{{- end -}}
{{- $items := list -}}
{{- $env := list -}}
{{- range $f := list (dict "key" $t.caKey "file" "ca.crt" "env" "HYVVE_REDIS_CA") (dict "key" $t.certKey "file" "tls.crt" "env" "HYVVE_REDIS_CERT") (dict "key" $t.keyKey "file" "tls.key" "env" "HYVVE_REDIS_KEY") -}}
{{- if $f.key -}}
{{- $items = append $items (dict "key" $f.key "path" $f.file) -}}
{{- $env = append $env (dict "name" $f.env "value" (printf "%s/%s" $dir $f.file)) -}}
{{- end -}}
{{- end -}}
{{- dict "secret" (tpl $t.secretName .root) "mountPath" $dir "items" $items "env" $env | toJson -}}
{{- end -}}
{{- end -}}

{{/*
hyvve-sidecar.container: the sidecar container, one list item (internal: use
hyvve-sidecar.containers and hyvve-sidecar.initContainers, which pick the mode).
*/}}
{{- define "hyvve-sidecar.container" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
{{- $secret := tpl (required "hyvve-sidecar: secret.name (an existing Secret with the Redis URL and the tokens) is required" $v.secret.name) .root -}}
{{- $keys := $v.secret.keys -}}
{{- $sc := $v.securityContext -}}
{{- $tls := include "hyvve-sidecar.redisTLS" . | fromJson -}}
- name: {{ $v.containerName }}
  image: {{ include "hyvve-sidecar.image" . | quote }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  {{- if $v.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  args: ["--config", "/etc/hyvve/sidecar.yaml"]
  env:
    {{- if $v.redis.url }}
    {{- $url := tpl $v.redis.url .root }}
    {{- if $v.redis.passwordFromSecret }}
    {{- include "hyvve-sidecar.secretEnv" (dict "env" "REDIS_PASSWORD" "secret" $secret "secretKey" $keys.redisPassword) | nindent 4 }}
    - name: HYVVE_REDIS_URL
      value: {{ regexReplaceAll "^(rediss?://)" $url "${1}:$$(REDIS_PASSWORD)@" | quote }}
    {{- else }}
    - name: HYVVE_REDIS_URL
      value: {{ $url | quote }}
    {{- end }}
    {{- else }}
    {{- include "hyvve-sidecar.secretEnv" (dict "env" "HYVVE_REDIS_URL" "secret" $secret "secretKey" $keys.redisUrl) | nindent 4 }}
    {{- end }}
    {{- range $tls.env }}
    - name: {{ .name }}
      value: {{ .value | quote }}
    {{- end }}
    {{- include "hyvve-sidecar.secretEnv" (dict "env" "HYVVE_API_TOKEN" "secret" $secret "secretKey" $keys.apiToken "optional" true) | nindent 4 }}
    {{- include "hyvve-sidecar.secretEnv" (dict "env" "HYVVE_ADMIN_TOKEN" "secret" $secret "secretKey" $keys.adminToken "optional" true) | nindent 4 }}
    {{- include "hyvve-sidecar.secretEnv" (dict "env" "HYVVE_APP_TOKEN" "secret" $secret "secretKey" $keys.appToken "optional" true) | nindent 4 }}
    {{- with $v.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: hyvve
      containerPort: {{ int $v.port }}
      protocol: TCP
  startupProbe:
    httpGet:
      path: /healthz
      port: hyvve
    {{- toYaml $v.probes.startup | nindent 4 }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: hyvve
    {{- toYaml $v.probes.liveness | nindent 4 }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: hyvve
    {{- toYaml $v.probes.readiness | nindent 4 }}
  {{- with $v.resources }}
  resources:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    runAsNonRoot: true
    runAsUser: {{ int $sc.runAsUser }}
    runAsGroup: {{ int $sc.runAsGroup }}
    readOnlyRootFilesystem: true
    allowPrivilegeEscalation: false
    privileged: false
    capabilities:
      drop: ["ALL"]
    seccompProfile:
      type: RuntimeDefault
  volumeMounts:
    - name: hyvve-config
      mountPath: /etc/hyvve
      readOnly: true
    - name: hyvve-data
      mountPath: /var/lib/hyvve
    {{- if $v.socket.enabled }}
    - name: hyvve-socket
      mountPath: {{ $v.socket.dir | quote }}
    {{- end }}
    {{- if $tls.secret }}
    - name: hyvve-redis-tls
      mountPath: {{ $tls.mountPath | quote }}
      readOnly: true
    {{- end }}
{{- end -}}

{{/* hyvve-sidecar.containers: the sidecar for the pod's containers list (empty in native mode). */}}
{{- define "hyvve-sidecar.containers" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
{{- if not $v.nativeSidecar }}{{ include "hyvve-sidecar.container" . }}{{ end -}}
{{- end -}}

{{/*
hyvve-sidecar.initContainers: the native sidecar for the pod's initContainers list (empty
unless nativeSidecar). Put it first, so later init containers can already publish.
*/}}
{{- define "hyvve-sidecar.initContainers" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
{{- if $v.nativeSidecar }}{{ include "hyvve-sidecar.container" . }}{{ end -}}
{{- end -}}

{{/*
hyvve-sidecar.volumes: the pod's volumes of the sidecar: config, data, the socket's emptyDir and,
with redis.tls.secretName, the Redis TLS files (mounted in the sidecar container only).
*/}}
{{- define "hyvve-sidecar.volumes" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
{{- $tls := include "hyvve-sidecar.redisTLS" . | fromJson -}}
- name: hyvve-config
  configMap:
    name: {{ include "hyvve-sidecar.fullname" . }}
- name: hyvve-data
  emptyDir:
    sizeLimit: 64Mi
{{- if $v.socket.enabled }}
- name: hyvve-socket
  emptyDir:
    medium: Memory
    sizeLimit: 1Mi
{{- end }}
{{- if $tls.secret }}
- name: hyvve-redis-tls
  secret:
    secretName: {{ $tls.secret | quote }}
    # 0440: the kubelet makes the files root-owned with group fsGroup (podSecurityContext), a
    # supplementary group of the sidecar's non-root user, so the sidecar reads the key and
    # nothing else in its container does; the app container never mounts this volume.
    defaultMode: 288
    items:
      {{- toYaml $tls.items | nindent 6 }}
{{- end }}
{{- end -}}

{{/* hyvve-sidecar.appVolumeMounts: the socket's volume, for the app container (empty without socket). */}}
{{- define "hyvve-sidecar.appVolumeMounts" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
{{- if $v.socket.enabled -}}
- name: hyvve-socket
  mountPath: {{ $v.socket.dir | quote }}
{{- end -}}
{{- end -}}

{{/*
hyvve-sidecar.appEnv: the app container's environment: HYVVE_SIDECAR_URL (the socket, else
TCP), and from the Secret HYVVE_API_TOKEN (to publish) and HYVVE_APP_TOKEN (to check pushes)
when the Secret has them.
*/}}
{{- define "hyvve-sidecar.appEnv" -}}
{{- $v := include "hyvve-sidecar.v" . | fromJson -}}
{{- $secret := tpl (required "hyvve-sidecar: secret.name is required" $v.secret.name) .root -}}
- name: HYVVE_SIDECAR_URL
  value: {{ include "hyvve-sidecar.url" . | quote }}
{{ include "hyvve-sidecar.secretEnv" (dict "env" "HYVVE_API_TOKEN" "secret" $secret "secretKey" $v.secret.keys.apiToken "optional" true) }}
{{ include "hyvve-sidecar.secretEnv" (dict "env" "HYVVE_APP_TOKEN" "secret" $secret "secretKey" $v.secret.keys.appToken "optional" true) }}
{{- end -}}
