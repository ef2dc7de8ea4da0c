#!/usr/bin/env bash
# Installs what the e2e harness needs from Debian: BIRD 2, FRR and the network tools the tests
# drive (ip/bridge, sysctl/kill, ping, nft, tcpdump, arping, ndisc6, curl), and what real nodes
# need: containerd + runc, the CNI bridge/host-local plugins, kube-proxy's backends (iptables,
# ipvsadm, conntrack), buildah for the images, debootstrap for their Debian base, busybox-static
# for the test app and gcc for the pause binary. Idempotent: runs `apt-get update` and `apt-get install` only when a package is
# missing, and says what it did. Package services are never started in the host namespace: the
# harness runs its own router instances inside the test namespaces.
set -euo pipefail

# package -> a command it provides (checked as well, so a half-removed package is reinstalled)
declare -A PROVIDES=(
  [bird2]=bird
  [frr]=/usr/lib/frr/bgpd
  [nftables]=nft
  [iproute2]=ip
  [procps]=sysctl
  [iputils-ping]=ping
  [tcpdump]=tcpdump
  [arping]=arping
  [ndisc6]=ndisc6
  [curl]=curl
  [containerd]=containerd
  [runc]=runc
  [containernetworking-plugins]=/usr/lib/cni/bridge
  [iptables]=iptables
  [ipvsadm]=ipvsadm
  [conntrack]=conntrack
  [buildah]=buildah
  [debootstrap]=debootstrap
  [busybox-static]=/bin/busybox
  [gcc]=gcc
  [libc6-dev]=/usr/include/stdio.h
)
ORDER=(bird2 frr nftables iproute2 procps iputils-ping tcpdump arping ndisc6 curl containerd runc
  containernetworking-plugins iptables ipvsadm conntrack buildah debootstrap busybox-static gcc
  libc6-dev)

if [[ $(id -u) -ne 0 ]]; then
  echo "install-packages: must run as root (apt-get install)" >&2
  exit 1
fi

installed() {
  [[ $(dpkg-query -W -f='${Status}' "$1" 2>/dev/null) == "install ok installed" ]]
}

has_cmd() {
  if [[ $1 == /* ]]; then [[ -e $1 ]]; else command -v "$1" >/dev/null 2>&1; fi
}

missing=()
for pkg in "${ORDER[@]}"; do
  if installed "$pkg" && has_cmd "${PROVIDES[$pkg]}"; then
    echo "install-packages: $pkg already installed ($(dpkg-query -W -f='${Version}' "$pkg"))"
  else
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-packages: nothing to do"
  exit 0
fi

echo "install-packages: installing ${missing[*]}"

# Keep the packages' init scripts from starting bird/frr/containerd in the host namespace: policy-rc.d
# exit code 101 means "action forbidden". Only ours is removed afterwards.
policy=/usr/sbin/policy-rc.d
ours_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  ours_policy=1
fi
cleanup() { if [[ $ours_policy -eq 1 ]]; then rm -f "$policy"; fi; }
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
echo "install-packages: apt-get update"
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

for pkg in "${missing[@]}"; do
  if ! installed "$pkg" || ! has_cmd "${PROVIDES[$pkg]}"; then
    echo "install-packages: $pkg did not install (${PROVIDES[$pkg]} missing)" >&2
    exit 1
  fi
  echo "install-packages: installed $pkg ($(dpkg-query -W -f='${Version}' "$pkg"))"
done
