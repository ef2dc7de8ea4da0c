{{/* Labels on every object. */}}
{{- define "ferrolb.labels" -}}
app.kubernetes.io/name: ferrolb
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Selector labels of one component: include with (list $ "allocator"). */}}
{{- define "ferrolb.selector" -}}
app.kubernetes.io/name: ferrolb
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "ferrolb.image" -}}
{{- $img := index . 0 -}}
{{- printf "%s:%s" $img.repository (default (index . 1).Chart.AppVersion $img.tag) -}}
{{- end }}
