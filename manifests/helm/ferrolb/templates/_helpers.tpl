{{- /*
Names. The Contracts fix what a binary looks up by name: the namespace ferrolb-system, the Leases
ferrolb-allocator and ferrolb-node-<node>, the Secret ferrolb-gossip and the ConfigMap
ferrolb-bird; the metrics Services keep theirs too (their names are the `job` label of every
scraped series, which alerts and dashboards match). Those names never follow nameOverride or
fullnameOverride. Everything else is named "<fullname>-<component>" (default fullname: ferrolb),
and nameOverride is the value of the label app.kubernetes.io/name.
*/}}
{{- define "ferrolb.name" -}}
{{- default "ferrolb" .Values.nameOverride -}}
{{- end }}

{{- define "ferrolb.fullname" -}}
{{- default "ferrolb" .Values.fullnameOverride -}}
{{- end }}

{{/* Labels on every object. */}}
{{- define "ferrolb.labels" -}}
app.kubernetes.io/name: {{ include "ferrolb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Selector labels of one component: include with (list $ "allocator"). */}}
{{- define "ferrolb.selector" -}}
app.kubernetes.io/name: {{ include "ferrolb.name" (index . 0) }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- /*
Labels of a component's pods: podLabels, then the selector labels, which a podLabel cannot
replace (the Deployment or DaemonSet would lose its pods). Include with (list $ "agent").
*/}}
{{- define "ferrolb.podLabels" -}}
{{- $ := index . 0 -}}
{{- $component := index . 1 -}}
{{- $own := include "ferrolb.selector" . | fromYaml -}}
{{- $extra := (index $.Values $component).podLabels | default dict -}}
{{- toYaml (merge $own (deepCopy $extra)) -}}
{{- end }}

{{- define "ferrolb.image" -}}
{{- $img := index . 0 -}}
{{- printf "%s:%s" $img.repository (default (index . 1).Chart.AppVersion $img.tag) -}}
{{- end }}

{{- /*
The ServiceAccount of a component: serviceAccount.name, else "<fullname>-<component>". Read
with dig, so values from a release before these existed (helm upgrade --reuse-values) keep
today's names and today's behaviour. Include with (list $ "agent").
*/}}
{{- define "ferrolb.serviceAccountName" -}}
{{- $ := index . 0 -}}
{{- $component := index . 1 -}}
{{- $name := dig $component "serviceAccount" "name" "" $.Values.AsMap -}}
{{- default (printf "%s-%s" (include "ferrolb.fullname" $) $component) $name -}}
{{- end }}

{{- define "ferrolb.rbac" -}}
{{- if dig "rbac" "create" true .Values.AsMap }}true{{ end -}}
{{- end }}

{{- /*
A security context: the hardened defaults (a YAML dict) with the user's fields laid over them,
field by field and one level down (capabilities.add replaces the defaults' add and keeps their
drop): a field the user sets replaces that field (lists as a whole), a field set to null is
removed, every other field keeps its default. Include with (list $ <defaults name> <user's>),
the defaults named as "ferrolb.defaults.<name>" below.
*/}}
{{- define "ferrolb.securityContext" -}}
{{- $out := include (printf "ferrolb.defaults.%s" (index . 1)) (index . 0) | fromYaml -}}
{{- range $k, $v := (index . 2) | default dict -}}
{{- if kindIs "invalid" $v -}}
{{- $_ := unset $out $k -}}
{{- else if and (kindIs "map" $v) (kindIs "map" (get $out $k)) -}}
{{- $inner := get $out $k -}}
{{- range $k2, $v2 := $v -}}
{{- if kindIs "invalid" $v2 -}}
{{- $_ := unset $inner $k2 -}}
{{- else -}}
{{- $_ := set $inner $k2 $v2 -}}
{{- end -}}
{{- end -}}
{{- else -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- end -}}
{{- if $out }}{{ toYaml $out }}{{ end -}}
{{- end }}

{{/* Today's hardening, the defaults of the securityContext values. */}}
{{- define "ferrolb.defaults.allocatorPod" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile: { type: RuntimeDefault }
{{- end }}

{{- define "ferrolb.defaults.agentPod" -}}
{}
{{- end }}

{{- define "ferrolb.defaults.allocator" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: { drop: [ALL] }
{{- end }}

{{- define "ferrolb.defaults.agent" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add: [NET_ADMIN, NET_RAW]
{{- end }}

{{- /* BIRD: routes and sockets (NET_ADMIN), BFD/OSPF raw sockets (NET_RAW), BGP's port 179
(NET_BIND_SERVICE). */}}
{{- define "ferrolb.defaults.birdSidecar" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
  add: [NET_ADMIN, NET_RAW, NET_BIND_SERVICE]
{{- end }}

{{- /*
A workload's update strategy: type, and rollingUpdate only with type RollingUpdate (the API
server refuses it with Recreate). Include with (list <strategy dict> <default dict>).
*/}}
{{- define "ferrolb.strategy" -}}
{{- $s := (index . 0) | default (index . 1) -}}
{{- if $s -}}
{{- $type := $s.type | default "RollingUpdate" -}}
type: {{ $type }}
{{- if and (eq $type "RollingUpdate") $s.rollingUpdate }}
rollingUpdate:
  {{- toYaml $s.rollingUpdate | nindent 2 }}
{{- end }}
{{- end -}}
{{- end }}
