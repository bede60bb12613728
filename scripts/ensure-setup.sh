#!/usr/bin/env bash
# Runs scripts/setup.sh when anything it provides is missing or out of date.
set -euo pipefail
cd "$(dirname "$0")/.."
need=0
for b in busybox runc umoci skopeo debootstrap zstd dockerd htpasswd openssl curl strace; do command -v "$b" >/dev/null || need=1; done
[ -x /usr/bin/docker-registry ] || need=1
[ -d node_modules ] || need=1
[ -f native/strata.linux-x64-gnu.node ] || need=1
[ -f dist/ts/index.js ] || need=1
[ -f dist/cli/strata.js ] && [ -f dist/cli/read.js ] || need=1
[ -f .setup-done ] || need=1
# Rebuild when sources changed since the last set-up.
if [ "$need" = 0 ] && [ -n "$(find crates ts scripts/bundle-cli.js Cargo.toml package.json -newer .setup-done -type f 2>/dev/null | head -1)" ]; then need=1; fi
if [ "$need" = 1 ]; then bash scripts/setup.sh; fi
