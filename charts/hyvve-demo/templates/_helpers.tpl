{{/* hyvve-demo.labels: labels of every object; pass (dict "root" $ "component" "approvals"). */}}
{{- define "hyvve-demo.labels" -}}
app.kubernetes.io/name: hyvve-demo
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/component: {{ .component | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | quote }}
{{- end -}}

{{/* hyvve-demo.selector: the labels a Deployment selects its pods by. */}}
{{- define "hyvve-demo.selector" -}}
app.kubernetes.io/name: hyvve-demo
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/component: {{ .component | quote }}
{{- end -}}

{{/* hyvve-demo.appSecurityContext: the example apps' containers: non-root, read-only, no capabilities. */}}
{{- define "hyvve-demo.appSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
{{- end -}}
