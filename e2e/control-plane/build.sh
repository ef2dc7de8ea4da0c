#!/usr/bin/env bash
# Builds the test control plane's tools from Go modules and caches them outside the clone:
#   ${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb/<tool>-<version>/
# Idempotent: a tool already in the cache is not rebuilt. Test tools only; ferrolb itself is Rust.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
cache=${FERROLB_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}
export GOFLAGS=-buildvcs=false CGO_ENABLED=0

build() { # build <module dir> <cache subdir> "<binaries it yields>" "<extra ldflags>" <package>...
  local dir=$1 out=$cache/$2 bins=$3 ldflags=$4; shift 4
  local missing=0 bin
  for bin in $bins; do [ -x "$out/$bin" ] || missing=1; done
  if [ $missing = 0 ]; then echo "cached: $out"; return; fi
  mkdir -p "$out.tmp"
  echo "building $* into $out (cold builds take minutes)"
  local start=$SECONDS
  (cd "$here/$dir" && go build -trimpath -ldflags="-s -w $ldflags" -o "$out.tmp/" "$@")
  # go.etcd.io/etcd/server/v3 builds a binary named "server"
  if [ -x "$out.tmp/server" ]; then mv "$out.tmp/server" "$out.tmp/etcd"; fi
  rm -rf "$out" && mv "$out.tmp" "$out"
  echo "built $out in $((SECONDS - start)) s"
}

# The version ldflags make the binaries report their release (not v0.0.0-master), so a chart's
# kubeVersion constraint and kubelet/API server version skew checks see the real version.
[[ $KUBERNETES_VERSION =~ ^v([0-9]+)\.([0-9]+)\. ]] || { echo "bad KUBERNETES_VERSION" >&2; exit 1; }
kflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kflags="$kflags -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=${BASH_REMATCH[1]}"
  kflags="$kflags -X $pkg.gitMinor=${BASH_REMATCH[2]} -X $pkg.gitTreeState=clean"
done
# kubelet, kube-proxy and kube-scheduler run the real nodes (containerd + runc from Debian).
build kubernetes "kubernetes-$KUBERNETES_VERSION-nodes" \
  "kube-apiserver kube-controller-manager kubectl kubelet kube-proxy kube-scheduler" "$kflags" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kubectl k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy \
  k8s.io/kubernetes/cmd/kube-scheduler
build etcd "etcd-$ETCD_VERSION" etcd "" go.etcd.io/etcd/server/v3
build helm "helm-$HELM_VERSION" helm "" helm.sh/helm/v3/cmd/helm
# promtool checks and unit-tests the chart's alerting rules (e2e/tests/alerts.rs).
build prometheus "promtool-$PROMETHEUS_VERSION" promtool "" \
  github.com/prometheus/prometheus/cmd/promtool
