#!/usr/bin/env bash
# Renders the chart into the plain manifest manifests/ferrolb.yaml (deterministic: no gossip
# Secret, which is random; docs/install.md shows how to create it).
#   manifests/render.sh            rewrite manifests/ferrolb.yaml
#   manifests/render.sh --stdout   print it instead (the freshness test compares the two)
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${FERROLB_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}"
HELM_VERSION="$(sed -n 's/^HELM_VERSION=//p' e2e/control-plane/versions.env)"
KUBERNETES_VERSION="$(sed -n 's/^KUBERNETES_VERSION=//p' e2e/control-plane/versions.env)"
HELM="${HELM:-$CACHE/helm-$HELM_VERSION/helm}"
[ -x "$HELM" ] || { echo "helm not found at $HELM; run 'make tools'" >&2; exit 1; }

render() {
  cat <<'HEAD'
# ferrolb: plain manifests, rendered from manifests/helm/ferrolb by manifests/render.sh with
# gossip.createSecret=false. Do not edit: edit the chart and run manifests/render.sh.
# Before the agents can gossip, create the Secret ferrolb-gossip (docs/install.md).
---
apiVersion: v1
kind: Namespace
metadata:
  name: ferrolb-system
  labels:
    app.kubernetes.io/name: ferrolb
    # The agent runs on the host network with NET_ADMIN and NET_RAW: PodSecurity "privileged".
    pod-security.kubernetes.io/enforce: privileged
HEAD
  "$HELM" template ferrolb manifests/helm/ferrolb \
    --namespace ferrolb-system \
    --kube-version "${KUBERNETES_VERSION#v}" \
    --include-crds \
    --set gossip.createSecret=false
}

if [ "${1:-}" = "--stdout" ]; then
  render
else
  render > manifests/ferrolb.yaml.tmp
  mv manifests/ferrolb.yaml.tmp manifests/ferrolb.yaml
  echo "wrote manifests/ferrolb.yaml"
fi
