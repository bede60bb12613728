#!/usr/bin/env bash
# The one place that installs crane (go-containerregistry's CLI), a peer of the registry
# benchmarks: built with `go install` at a pinned version into bench/.cache/go/bin (GOPATH and
# the module cache stay under bench/.cache/go too). Prints the binary's path. Idempotent.
#
#   scripts/peers/crane.sh            # -> /.../bench/.cache/go/bin/crane
set -euo pipefail
VERSION=v0.20.2
REPO=$(cd "$(dirname "$0")/../.." && pwd)
GODIR=$REPO/bench/.cache/go
BIN=$GODIR/bin/crane
if [ -x "$BIN" ] && [ "$(cat "$GODIR/crane.version" 2>/dev/null)" = "$VERSION" ]; then
  echo "$BIN"; exit 0
fi
command -v go >/dev/null || { echo "crane.sh: go is needed (Debian golang-go, or a Go toolchain on PATH)" >&2; exit 1; }
mkdir -p "$GODIR"
GOPATH=$GODIR GOBIN=$GODIR/bin GOFLAGS=-modcacherw CGO_ENABLED=0 \
  go install "github.com/google/go-containerregistry/cmd/crane@$VERSION" >&2
echo "$VERSION" >"$GODIR/crane.version"
echo "$BIN"
