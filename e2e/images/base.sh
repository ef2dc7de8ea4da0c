#!/usr/bin/env bash
# Makes the Debian base image that the Dockerfiles' runtime stages start from where
# debian:bookworm-slim and distroless cannot be pulled: `debootstrap --variant=minbase bookworm`
# from Debian's packages, imported into buildah as localhost/ferrolb-base/debian:bookworm.
# The rootfs tarball is cached outside the clone (like the Go tools); idempotent.
set -euo pipefail
cache=${FERROLB_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}/images
base=localhost/ferrolb-base/debian:bookworm
tar=$cache/debian-bookworm-minbase.tar
mkdir -p "$cache"
# What a killed run left: a half-made rootfs, perhaps with debootstrap's /proc and /sys mounts.
for old in "$cache"/rootfs.*; do
  [[ -d $old ]] || continue
  { findmnt -rno TARGET | grep -F "$old" || true; } | sort -r | xargs -r -n1 umount -l
  rm -rf --one-file-system "$old"
done
if [[ ! -s $tar ]]; then
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  echo "base: debootstrap --variant=minbase bookworm (once per machine)"
  start=$SECONDS
  # The mirror apt uses here (Debian's packages are reachable; nothing else is).
  mirror=$(grep -rhoE 'https?://[^ ]+/debian/?$|https?://[^ ]+/debian/? ' /etc/apt/sources.list \
    /etc/apt/sources.list.d/ 2>/dev/null | sed -n '1{s/ $//;p}' || true)
  debootstrap --variant=minbase bookworm "$root" "${mirror:-http://deb.debian.org/debian}" >"$cache/debootstrap.log" 2>&1 \
    || { tail -20 "$cache/debootstrap.log" >&2; exit 1; }
  # As a slim image: no apt lists, caches or docs.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/usr/share/doc/* "$root"/usr/share/man/*
  tar -C "$root" --numeric-owner -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
  echo "base: rootfs cached in $tar ($((SECONDS - start)) s)"
fi
if buildah --storage-driver vfs inspect --type image "$base" >/dev/null 2>&1; then
  echo "base: $base present"
  exit 0
fi
ctr=$(buildah --storage-driver vfs from scratch)
trap 'buildah --storage-driver vfs rm "$ctr" >/dev/null 2>&1 || true' EXIT
buildah --storage-driver vfs add "$ctr" "$tar" / >/dev/null
buildah --storage-driver vfs config --cmd /bin/bash --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin "$ctr"
buildah --storage-driver vfs commit -q "$ctr" "$base" >/dev/null
echo "base: imported $base"
