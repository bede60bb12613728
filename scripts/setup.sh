#!/usr/bin/env bash
# The set-up step: system packages, npm deps, release build of the addon, TS build.
# Idempotent; `npm run setup` runs it alone, `npm start` / `npm test` run it when
# scripts/ensure-setup.sh finds anything missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the project drives for real (see README "What runs for real").
APT_PACKAGES=(busybox-static runc docker-registry umoci skopeo debootstrap zstd attr docker.io apache2-utils openssl curl strace)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: npm ci"
  # The lock records every optional platform package of napi-rs' and esbuild's tools (npm
  # skips the other platforms' ones), so `npm ci` takes it as it is. Errors only: two dev tools'
  # dependencies ask for Node >= 22 in their `engines` (EBADENGINE warnings), yet run on Node 20,
  # which the whole suite exercises.
  npm ci --no-audit --no-fund --loglevel=error
fi

echo "setup: building the native addon (release)"
npm run --silent build:native
echo "setup: compiling TypeScript"
npm run --silent build:ts
touch .setup-done
