#!/usr/bin/env bash
# Builds the images the real-node tests and the demo run, with buildah (vfs storage), and saves
# each as an archive that every node's containerd imports (`ctr images import`); nothing is pulled.
#   - ferrolb's allocator and agent images from the repository's own Dockerfile.allocator and
#     Dockerfile.agent, with the binaries cargo built on the host (stage "prebuilt") and a Debian
#     base made by base.sh;
#   - the pause image (kubernetes' pause.c, static) and the test app (busybox httpd).
# Usage: build.sh <binary dir, e.g. target/debug> <output dir>. Writes <output dir>/<name>.tar
# and <output dir>/images.env (the image references). Rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(realpath "${1:?binary dir}")
out=$(realpath -m "${2:?output dir}")
tag=${FERROLB_IMAGE_TAG:-test}
B=(buildah --storage-driver vfs)
mkdir -p "$out"
# One build at a time per output dir (test binaries and the demo may start together); archives
# are written aside and renamed, so a reader never sees half of one.
exec {lock}>"$out/.lock"
flock "$lock"
bash e2e/images/base.sh
base=localhost/ferrolb-base/debian:bookworm

# build <name> <image ref> <inputs for the change check...> -- <buildah bud args...>
build() {
  local name=$1 ref=$2; shift 2
  local inputs=()
  while [[ $1 != -- ]]; do inputs+=("$1"); shift; done
  shift
  local sum
  sum=$(cat "${inputs[@]}" | sha256sum | cut -d' ' -f1)
  if [[ -s $out/$name.tar && $(cat "$out/$name.sum" 2>/dev/null) == "$sum" ]]; then
    echo "images: $ref unchanged"
    return
  fi
  local start=$SECONDS
  "${B[@]}" bud --quiet --isolation chroot --layers=false -t "$ref" "$@" >"$out/$name.log" 2>&1 \
    || { tail -30 "$out/$name.log" >&2; echo "images: building $ref failed" >&2; exit 1; }
  rm -f "$out/$name.tar.tmp"
  "${B[@]}" push --quiet "$ref" "docker-archive:$out/$name.tar.tmp:$ref" >>"$out/$name.log" 2>&1
  mv "$out/$name.tar.tmp" "$out/$name.tar"
  echo "$sum" >"$out/$name.sum"
  echo "images: built $ref in $((SECONDS - start)) s"
}

# The pause binary, from the kubernetes module the Go tools are built from.
kdir=$(cd e2e/control-plane/kubernetes && go mod download -json k8s.io/kubernetes | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/pause" "$ctx/app"
gcc -Os -static -o "$ctx/pause/pause" "$kdir/build/pause/linux/pause.c"
cp e2e/images/pause/Dockerfile "$ctx/pause/"
build pause localhost/ferrolb/pause:$tag "$ctx/pause/pause" e2e/images/pause/Dockerfile -- "$ctx/pause"

cp /bin/busybox e2e/images/app/index.cgi e2e/images/app/Dockerfile "$ctx/app/"
build app localhost/ferrolb/app:$tag "$ctx/app/busybox" e2e/images/app/index.cgi e2e/images/app/Dockerfile -- "$ctx/app"

# ferrolb's binaries without their debug info (a debug build's are ~250 MB each; the symbols
# stay, so a backtrace still names functions).
mkdir -p "$ctx/bin"
for b in ferrolb-allocator ferrolb-agent bird-sidecar; do
  objcopy --strip-debug "$bin/$b" "$ctx/bin/$b"
done
build allocator localhost/ferrolb/allocator:$tag Dockerfile.allocator "$ctx/bin/ferrolb-allocator" -- \
  -f Dockerfile.allocator --build-arg BINARIES=prebuilt --build-arg RUNTIME_IMAGE=$base \
  --build-context "bin=$ctx/bin" .
build agent localhost/ferrolb/agent:$tag Dockerfile.agent "$ctx/bin/ferrolb-agent" "$ctx/bin/bird-sidecar" -- \
  -f Dockerfile.agent --build-arg BINARIES=prebuilt --build-arg BASE_IMAGE=$base \
  --build-context "bin=$ctx/bin" .

# Each rebuild leaves the image it replaced untagged; with vfs storage each is a full copy
# (hundreds of MB), so they go.
"${B[@]}" rmi --prune >/dev/null 2>&1 || true

cat >"$out/images.env" <<ENV
PAUSE_IMAGE=localhost/ferrolb/pause:$tag
APP_IMAGE=localhost/ferrolb/app:$tag
ALLOCATOR_IMAGE=localhost/ferrolb/allocator:$tag
AGENT_IMAGE=localhost/ferrolb/agent:$tag
ENV
echo "images: archives in $out"
